//! Runs every golden fixture file it recognises in a directory (`sf_testkit::runner`) and prints
//! one line per check, every skipped reference with the reason, and the files it does not know.
//!
//! ```text
//! cargo run --features wgpu --example parity -- fixtures [--device cpu|wgpu|vulkan|metal|cuda[:N]]
//! ```
//!
//! `--help` lists the flags.
//!
//! Exits 0 when at least one check ran and every check passed; 1 when a check failed, no file
//! was recognised or a recognised file yielded no check; 2 on a usage or device error.

#[path = "common/measure.rs"]
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sf_device::DeviceRequest;
use sf_testkit::run_dir;

/// Runs every golden fixture file it recognises in a directory and prints one line per check.
#[derive(Parser, Debug)]
#[command(name = "parity")]
struct Args {
    /// The directory of fixture files (e.g. fixtures)
    #[arg(value_name = "FIXTURES_DIR")]
    dir: PathBuf,
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<DeviceRequest>,
}

fn main() -> ExitCode {
    let Args { dir, device } = Args::parse();
    let selected = match measure::device(device) {
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
