//! The scheduler fixture ([`sf_testkit::checks::scheduler`]) on every backend this build has:
//! Flex always, wgpu when compiled in.

use crate::common;

use burn::tensor::Device;
use sf_testkit::checks::scheduler;
use sf_testkit::{Checks, open_workspace_fixture};

fn run_scheduler(device: &Device) -> Checks {
    let checks = scheduler::checks(&open_workspace_fixture("scheduler.safetensors"), device);
    checks.assert_passed();
    // The table, warping, lookups, add_noise, flow-to-x0 and the Euler step.
    assert_eq!(checks.results.len(), 8, "{:#?}", checks.results);
    checks
}

#[test]
fn scheduler_fixture_on_flex() {
    let checks = run_scheduler(&Device::flex());
    // The table is rebuilt bit-for-bit as PyTorch builds it.
    let table = &checks.results[0];
    assert_eq!(table.check, "self_forcing.sigmas");
    assert_eq!(table.max_abs_diff, 0.0, "{table}");
    let skipped: Vec<&str> = checks.skipped.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        skipped,
        ["unipc.*", "unipc_diffusers.*"],
        "reported as skipped"
    );
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn scheduler_fixture_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        run_scheduler(&device);
    }
}
