//! Helpers shared by the sf-pipeline integration tests.
#![allow(dead_code, unused_imports)]

/// The wgpu device (software Vulkan in CI), or `None` when there is none.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub use sf_testkit::wgpu_test_device as wgpu_device;
