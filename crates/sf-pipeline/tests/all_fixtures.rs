//! Every fixture the parity runner recognises, on Flex and on wgpu (software Vulkan in CI).

use burn::tensor::Device;
use sf_device::fixture::workspace_fixtures;
use sf_pipeline::parity::run_dir;

fn run_all(device: &Device) {
    let report = run_dir(&workspace_fixtures(), device).unwrap();
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(ToString::to_string)
        .collect();
    println!("{} passed, {} failed", report.passed(), report.failed());
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
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
    use sf_device::{BackendKind, DeviceRequest, select};
    match select(&DeviceRequest::backend(BackendKind::Wgpu)) {
        Ok(selected) => run_all(&selected.device),
        Err(err) if std::env::var("SF_REQUIRE_WGPU").is_err() => {
            println!("skipping: no wgpu adapter ({err})")
        }
        Err(err) => panic!("SF_REQUIRE_WGPU is set but no wgpu adapter is usable: {err}"),
    }
}
