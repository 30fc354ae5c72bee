//! Helpers shared by the sf-pipeline integration tests.
#![allow(dead_code)]

use burn::tensor::Device;

/// The wgpu device (software Vulkan in CI), or `None` with a printed reason when there is no
/// adapter. With `SF_REQUIRE_WGPU` set, a missing adapter fails the test instead.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub fn wgpu_device() -> Option<Device> {
    use sf_device::{BackendKind, DeviceRequest, select};
    match select(&DeviceRequest::backend(BackendKind::Wgpu)) {
        Ok(selected) => {
            println!("wgpu device: {}", selected.info);
            Some(selected.device)
        }
        Err(err) if std::env::var("SF_REQUIRE_WGPU").is_err() => {
            println!("skipping: no wgpu adapter ({err}); set SF_REQUIRE_WGPU=1 to fail instead");
            None
        }
        Err(err) => panic!("SF_REQUIRE_WGPU is set but no wgpu adapter is usable: {err}"),
    }
}
