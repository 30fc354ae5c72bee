//! Runs every golden fixture file it recognises in a directory (`sf_testkit::runner`) and prints
//! one line per check, every skipped reference with the reason, and the files it does not know.
//!
//! ```text
//! cargo run --features wgpu --example parity -- fixtures [--device cpu|wgpu|vulkan|metal|cuda[:N]]
//! ```
//!
//! Exits 0 when at least one check ran and every check passed; 1 when a check failed, no file
//! was recognised or a recognised file yielded no check; 2 on a usage or device error.

use std::path::PathBuf;
use std::process::ExitCode;

use sf_device::{DeviceRequest, select};
use sf_testkit::run_dir;

fn main() -> ExitCode {
    let mut dir = None;
    let mut device = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = args.next(),
            "-h" | "--help" => {
                println!("usage: parity <fixtures dir> [--device cpu|wgpu|vulkan|metal|cuda[:N]]");
                return ExitCode::SUCCESS;
            }
            _ if arg.starts_with("--device=") => device = Some(arg["--device=".len()..].into()),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("unexpected argument '{arg}'; see --help");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: parity <fixtures dir> [--device ...]");
        return ExitCode::from(2);
    };
    let selected = device
        .map(|d| d.parse::<DeviceRequest>())
        .transpose()
        .and_then(DeviceRequest::resolve)
        .and_then(|request| select(&request));
    let selected = match selected {
        Ok(s) => s,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    println!("device: {}", selected.info);
    let report = match run_dir(&dir, &selected.device) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: cannot read {}: {err}", dir.display());
            return ExitCode::from(2);
        }
    };
    for r in &report.results {
        println!("{r}");
    }
    for skipped in &report.skipped {
        println!("{skipped}");
    }
    for path in &report.unrecognised {
        println!("not recognised: {}", path.display());
    }
    println!(
        "{} passed, {} failed, {} skipped",
        report.passed(),
        report.failed(),
        report.skipped.len()
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
