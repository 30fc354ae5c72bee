//! The parity runner behind the `parity` example: recognises the golden fixture files of a
//! directory laid out like `fixtures/`, runs their checks on a device and reports one line per
//! check. Every check reads the configuration it needs from the fixture's own metadata.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sf_device::fixture::{CheckResult, Fixture};

use crate::PipelineError;

mod dit;
mod rollout;
mod scheduler;
mod taehv;
mod text;
mod vae;

pub use rollout::{FixtureNoise, ReplayDenoiser, rollout_config_from_fixture};

/// The outcome of running a directory.
#[derive(Debug, Default)]
pub struct ParityReport {
    /// Every check that ran, in order.
    pub results: Vec<CheckResult>,
    /// Files nobody recognises.
    pub unrecognised: Vec<PathBuf>,
    /// Recognised parts that are deliberately not checked, with the reason.
    pub skipped: Vec<(String, String)>,
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

    /// The report lines of the failed checks, one per line (empty when all passed).
    pub fn failures(&self) -> String {
        self.results
            .iter()
            .filter(|r| !r.passed)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

type CheckFn = fn(&Fixture, &Device, &mut ParityReport) -> Result<(), PipelineError>;

/// The fixture files this build knows, by file name.
fn recogniser(file_name: &str) -> Option<CheckFn> {
    match file_name {
        "scheduler.safetensors" => Some(scheduler::checks),
        _ if !file_name.ends_with(".safetensors") => None,
        _ if file_name.starts_with("rollout_") => Some(rollout::checks),
        _ if file_name.starts_with("selfforcing_") && file_name.ends_with("_io.safetensors") => {
            Some(dit::selfforcing_checks)
        }
        _ if file_name.starts_with("dit_") && file_name.ends_with("_io.safetensors") => {
            Some(dit::io_checks)
        }
        _ if file_name.starts_with("dit_") && file_name.ends_with("_diffusers.safetensors") => {
            Some(dit::diffusers_checks)
        }
        _ if file_name.starts_with("dit_") => Some(dit::weights_check),
        _ if file_name.starts_with("t5_") && file_name.ends_with("_io.safetensors") => {
            Some(text::io_checks)
        }
        _ if file_name.starts_with("t5_") => Some(text::weights_check),
        _ if file_name.starts_with("vae_") => Some(vae::checks),
        _ if file_name.starts_with("taehv_") => Some(taehv::checks),
        _ => None,
    }
}

/// Runs every recognised file of `dir` (sorted by name) on `device`.
pub fn run_dir(dir: &Path, device: &Device) -> std::io::Result<ParityReport> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut report = ParityReport::default();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match recogniser(&name) {
            Some(check) => run_file_with(&path, &name, check, device, &mut report),
            // Text files that are not safetensors fixtures (`.pth`, tokenizer JSON).
            None if text::run_other(&path, &name, &mut report) => {}
            None => report.unrecognised.push(path),
        }
    }
    Ok(report)
}

/// Runs one file if it is recognised; `false` if it is not.
pub fn run_file(path: &Path, device: &Device, report: &mut ParityReport) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match recogniser(&name) {
        Some(check) => {
            run_file_with(path, &name, check, device, report);
            true
        }
        None => text::run_other(path, &name, report),
    }
}

fn run_file_with(
    path: &Path,
    name: &str,
    check: CheckFn,
    device: &Device,
    report: &mut ParityReport,
) {
    let outcome = Fixture::open(path)
        .map_err(PipelineError::from)
        .and_then(|fx| check(&fx, device, report));
    if let Err(err) = outcome {
        report.results.push(CheckResult::error(name, "load", err));
    }
}
