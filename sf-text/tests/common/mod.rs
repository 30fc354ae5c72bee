//! Helpers shared by the sf-text integration tests.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

use sf_device::fixture::workspace_fixtures;

/// The wgpu device (software Vulkan in CI), or `None` when there is none.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub use sf_device::fixture::wgpu_test_device as wgpu_device;

/// A fixture file of the workspace.
pub fn fixture(name: &str) -> PathBuf {
    workspace_fixtures().join(name)
}

/// The real `google/umt5-xxl` tokenizer.json, decompressed from the fixture's `.json.xz`.
pub fn umt5_tokenizer_json() -> Vec<u8> {
    let compressed = std::fs::read(fixture("umt5_tokenizer.json.xz")).unwrap();
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut out).unwrap();
    out
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-text-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
