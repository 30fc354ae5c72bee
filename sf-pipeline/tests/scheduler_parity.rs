//! The scheduler fixture on every backend this build has: Flex always, wgpu when compiled in.

use crate::common;

use burn::tensor::Device;
use sf_device::fixture::workspace_fixtures;
use sf_pipeline::parity::{ParityReport, run_dir, run_file};

fn run_scheduler(device: &Device) -> ParityReport {
    let mut report = ParityReport::default();
    let path = workspace_fixtures().join("scheduler.safetensors");
    assert!(
        run_file(&path, device, &mut report),
        "scheduler fixture not recognised"
    );
    for r in &report.results {
        println!("{r}");
    }
    report
}

fn assert_all_pass(report: &ParityReport) {
    assert!(
        report.results.len() >= 8,
        "only {} checks ran",
        report.results.len()
    );
    let failed = report.failures();
    assert!(failed.is_empty(), "failed checks:\n{failed}");
}

#[test]
fn scheduler_fixture_on_flex() {
    let report = run_scheduler(&Device::flex());
    assert_all_pass(&report);
    // The table is rebuilt bit-for-bit as PyTorch builds it.
    let table = &report.results[0];
    assert_eq!(table.check, "self_forcing.sigmas");
    assert_eq!(table.max_abs_diff, 0.0, "{table}");
    assert!(
        !report.skipped.is_empty(),
        "UniPC parts should be reported as skipped"
    );
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn scheduler_fixture_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        assert_all_pass(&run_scheduler(&device));
    }
}

#[test]
fn runner_lists_unknown_files_and_fails_corrupt_fixtures() {
    let dir = std::env::temp_dir().join(format!("sf-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let good = std::fs::read(workspace_fixtures().join("scheduler.safetensors")).unwrap();
    std::fs::write(dir.join("scheduler.safetensors"), &good[..good.len() / 2]).unwrap();
    let report = run_dir(&dir, &Device::flex()).unwrap();
    assert_eq!(report.unrecognised, vec![dir.join("notes.txt")]);
    assert_eq!(report.failed(), 1, "{:?}", report.results);
    assert!(report.results[0].note.is_some());
    std::fs::remove_dir_all(&dir).ok();
}
