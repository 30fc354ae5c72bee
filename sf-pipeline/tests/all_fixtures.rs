//! Every fixture the parity runner recognises, on Flex and on wgpu (software Vulkan in CI).

use crate::common;

use burn::tensor::Device;
use sf_device::fixture::workspace_fixtures;
use sf_pipeline::parity::run_dir;

fn run_all(device: &Device) {
    let report = run_dir(&workspace_fixtures(), device).unwrap();
    let failed = report.failures();
    println!("{} passed, {} failed", report.passed(), report.failed());
    assert!(failed.is_empty(), "failed checks:\n{failed}");
    // Scheduler, DiT (io, diffusers, weights, Self-Forcing checkpoint) and four rollouts.
    assert!(report.passed() >= 60, "only {} checks ran", report.passed());
}

#[test]
fn every_recognised_fixture_on_flex() {
    run_all(&Device::flex());
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn every_recognised_fixture_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        run_all(&device);
    }
}
