//! The `generate` and `stream` examples as a user runs them: the built binaries on the tiny
//! fixture models (`--models DIR --model-config FILE.json --device cpu --height 32 --width 48`).
//! Checks before loading, outputs that are never destroyed, signals, and output outside a
//! terminal (closed stdout, 80 columns, no encoder chatter).

//!
//! Modules: `checks` (help, checks before loading, a failed load), `runs` (whole runs: batches,
//! PNG folders, free names, a closed stdout, 80 columns), `schedule` (`--prompt-schedule`,
//! `--endless`), `signals` (Ctrl-C).

mod checks;
mod longlive;
mod runs;
mod schedule;
mod signals;

use crate::mp4;
use crate::tiny_models::{HEIGHT, WIDTH, tiny_model_dir};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The example `name` built from this checkout: `cargo test` builds the examples into
/// `target/debug/examples/` (beside the test binary's `target/debug/deps/`) as `NAME-HASH`,
/// linked to `NAME`. Several checkouts may share a target directory, so the binary is the newest
/// one whose `--version` names this checkout; one older than its sources is refused.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples");
    let here = env!("CARGO_MANIFEST_DIR");
    let rebuild = "run `cargo test --workspace --features wgpu` (it builds the examples)";
    let mut candidates: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: {rebuild}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            file.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hash| hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    candidates.sort();
    let (built, bin) = candidates
        .into_iter()
        .rev()
        .find(|(_, bin)| {
            Command::new(bin).arg("--version").output().is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout).contains(&format!("(built from {here})"))
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "no {name} built from {here} in {}: {rebuild}",
                dir.display()
            )
        });
    // Its sources, from the dep-info beside it (paths relative to the workspace root).
    let deps = std::fs::read_to_string(bin.with_extension("d")).unwrap_or_default();
    let sources = deps
        .lines()
        .next()
        .and_then(|l| l.split_once(": "))
        .map_or("", |(_, files)| files);
    for source in sources.split_whitespace() {
        let source = Path::new(here).join(source);
        let changed = std::fs::metadata(&source)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        assert!(
            changed <= built,
            "{} is older than {}: {rebuild}",
            bin.display(),
            source.display()
        );
    }
    bin
}

/// A finished run of an example.
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Ran {
    pub fn all(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

pub(crate) fn run_in(dir: &Path, name: &str, args: &[String]) -> Ran {
    let start = Instant::now();
    let out = Command::new(example(name))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

pub(crate) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The tiny upstream layout with its configs as JSON; returns the root and the model flags.
pub(crate) fn tiny(name: &str) -> (PathBuf, Vec<String>) {
    let (root, configs) = tiny_model_dir(name);
    let config = root.join("configs.json");
    std::fs::write(&config, serde_json::to_string_pretty(&configs).unwrap()).unwrap();
    let flags = vec![
        "--models".into(),
        root.display().to_string(),
        "--model-config".into(),
        config.display().to_string(),
        "--device".into(),
        "cpu".into(),
        "--height".into(),
        HEIGHT.to_string(),
        "--width".into(),
        WIDTH.to_string(),
        "--decoder".into(),
        "taehv".into(),
    ];
    (root, flags)
}

/// The model flags (pairs) with `more` after them; a flag of `more` replaces the model flag.
pub(crate) fn with(flags: &[String], more: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = flags
        .chunks(2)
        .filter(|pair| !more.contains(&pair[0].as_str()))
        .flatten()
        .cloned()
        .collect();
    out.extend(strings(more));
    out
}

/// Frames of a finished (progressive) MP4, decoded back; every sample must decode.
pub(crate) fn mp4_frames(path: &Path) -> usize {
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let top = mp4::boxes(&file, 0);
    let moov = top.iter().find(|b| b.name() == "moov").expect("moov");
    let trak = mp4::child(moov, "trak").expect("trak");
    let size = mp4::track_size(&mp4::child(&trak, "tkhd").expect("tkhd"));
    assert_eq!(size, (WIDTH as u32, HEIGHT as u32));
    let stbl = mp4::path(&trak, &["mdia", "minf", "stbl"]).expect("stbl");
    let samples = mp4::progressive_samples(&file, &stbl);
    let (sps, pps) = mp4::avc_parameter_sets(&mp4::child(&stbl, "stsd").expect("stsd"));
    let decoded = mp4::decode(&samples, &sps, &pps);
    assert_eq!(decoded.len(), samples.len(), "{}", path.display());
    decoded.len()
}

/// The path and frame count of a `saved:` line.
pub(crate) fn saved(stdout: &str) -> Vec<(PathBuf, usize)> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("saved:"))
        .map(|rest| {
            let (path, frames) = rest
                .trim()
                .rsplit_once(" (")
                .expect("saved: PATH (N frames)");
            let n = frames.trim_end_matches(" frames)").parse().unwrap();
            (PathBuf::from(path), n)
        })
        .collect()
}

pub(crate) fn assert_console_fits(ran: &Ran) {
    for line in ran.stdout.lines().chain(ran.stderr.lines()) {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns ({}): {line}\n{}",
            line.chars().count(),
            ran.all()
        );
    }
    let lower = ran.stderr.to_lowercase();
    assert!(
        !lower.contains("openh264") && !lower.contains("bitrate"),
        "encoder output on the console:\n{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.all());
}

/// Files under `dir` (recursively), hidden ones included.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
