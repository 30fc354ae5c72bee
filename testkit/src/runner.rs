//! The parity runner behind the `parity` example: recognises the golden fixture files of a
//! directory laid out like `fixtures/`, dispatches each to its checks ([`crate::checks`]) and
//! collects one line per check.
//!
//! The report passes only when at least one check ran and none failed: a directory without a
//! recognised fixture fails, and so does a recognised file that yields no check (every one of
//! its references skipped). Skipped references are listed with the reason.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::checks::{
    Checks, Skipped, dit, lora, rollout, scheduler, switch, taehv, text, tokenizer, wan_vae,
};
use crate::compare::CheckResult;
use crate::fixture::{Fixture, file_name};

/// The outcome of running a directory (or some files).
#[derive(Debug, Default)]
pub struct ParityReport {
    /// Every check that ran, in order.
    pub results: Vec<CheckResult>,
    /// Every reference that was not compared, with the reason.
    pub skipped: Vec<Skipped>,
    /// Files nobody recognises.
    pub unrecognised: Vec<PathBuf>,
}

impl ParityReport {
    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Checks that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// Whether at least one check ran and every one passed (the runner's exit status).
    pub fn ok(&self) -> bool {
        !self.results.is_empty() && self.failed() == 0
    }

    /// The report lines of the failed checks, one per line (empty when all passed).
    pub fn failures(&self) -> String {
        self.results
            .iter()
            .filter(|r| !r.passed)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Adds one file's checks; a file that yielded no check adds a failure.
    pub fn add(&mut self, checks: Checks) {
        if checks.results.is_empty() {
            let reasons: Vec<String> = checks
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.what, s.reason))
                .collect();
            let why = if reasons.is_empty() {
                "recognised, but no check ran".to_string()
            } else {
                format!(
                    "recognised, but every check was skipped ({})",
                    reasons.join("; ")
                )
            };
            self.results
                .push(CheckResult::error(&checks.file, "any check", why));
        }
        self.results.extend(checks.results);
        self.skipped.extend(checks.skipped);
    }
}

/// How a recognised file is checked.
#[derive(Clone, Copy)]
enum Recognised {
    /// A safetensors fixture, opened first.
    Fixture(fn(&Fixture, &Device) -> Checks),
    /// Any other file, by path.
    File(fn(&Path, &Device) -> Checks),
}

/// The fixture files this runner knows, by file name (`fixtures/FORMAT.md` §2).
fn recognise(name: &str) -> Option<Recognised> {
    use Recognised::{File, Fixture};
    let io = name.ends_with("_io.safetensors");
    Some(match name {
        "scheduler.safetensors" => Fixture(scheduler::checks),
        tokenizer::GOLDEN => File(|path, _| tokenizer::golden(path)),
        "umt5_tokenizer.json.xz" => File(|path, _| tokenizer::compressed(path)),
        _ if name.starts_with("t5_") && name.ends_with(".pth") => {
            File(|path, _| text::pth_keys(path))
        }
        _ if !name.ends_with(".safetensors") => return None,
        // LongLive's switch files (§2.13) before the Self-Forcing rollouts (§2.4); a rollout file
        // whose metadata lists switch indices is sent on by `rollout::checks`.
        _ if name.starts_with("rollout_switch_") => Fixture(switch::checks),
        _ if name.starts_with("rollout_") => Fixture(rollout::checks),
        _ if name.starts_with("selfforcing_") && io => Fixture(dit::selfforcing),
        _ if name.starts_with("dit_") && io => Fixture(dit::io),
        _ if name.starts_with("lora_") && io => Fixture(lora::io),
        _ if name.starts_with("dit_") && name.ends_with("_diffusers.safetensors") => {
            Fixture(dit::diffusers)
        }
        _ if name.starts_with("dit_") => Fixture(dit::weights),
        _ if name.starts_with("t5_") && io => Fixture(text::io),
        _ if name.starts_with("t5_") => Fixture(text::weights),
        _ if name.starts_with("vae_") && io => Fixture(wan_vae::io),
        _ if name.starts_with("vae_") => Fixture(wan_vae::weights),
        _ if name.starts_with("taehv_") && io => Fixture(taehv::io),
        _ if name.starts_with("taehv_") => Fixture(taehv::weights),
        _ => return None,
    })
}

fn run(path: &Path, how: Recognised, device: &Device) -> Checks {
    let name = file_name(path);
    match how {
        Recognised::Fixture(check) => match Fixture::open(path) {
            Ok(fx) => check(&fx, device),
            Err(err) => {
                let mut c = Checks::new(&name);
                c.push(CheckResult::error(&name, "load", err));
                c
            }
        },
        Recognised::File(check) => check(path, device),
    }
}

/// Runs every recognised file of `dir` (sorted by name) on `device`. A directory with no
/// recognised file gets a failed result.
pub fn run_dir(dir: &Path, device: &Device) -> std::io::Result<ParityReport> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    let mut report = ParityReport::default();
    let mut recognised = 0;
    for path in entries {
        if run_file(&path, device, &mut report) {
            recognised += 1;
        } else {
            report.unrecognised.push(path);
        }
    }
    if recognised == 0 {
        report.results.push(CheckResult::error(
            &dir.display().to_string(),
            "recognised fixtures",
            "no file in this directory is a fixture the runner knows (fixtures/FORMAT.md)",
        ));
    }
    Ok(report)
}

/// Runs one file into `report` if it is recognised; `false` (and nothing added) if it is not.
pub fn run_file(path: &Path, device: &Device, report: &mut ParityReport) -> bool {
    match recognise(&file_name(path)) {
        Some(how) if path.is_file() => {
            report.add(run(path, how, device));
            true
        }
        _ => false,
    }
}
