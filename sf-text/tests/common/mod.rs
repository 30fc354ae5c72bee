//! Helpers shared by the sf-text integration tests.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

/// The wgpu device (software Vulkan in CI), or `None` when there is none.
#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
pub use sf_testkit::wgpu_test_device as wgpu_device;
pub use sf_testkit::workspace_fixture as fixture;

/// The tiny encoder's configuration, from `t5_tiny.safetensors`' metadata.
pub fn tiny_config() -> sf_text::UmT5Config {
    sf_testkit::configs::umt5(&fixture("t5_tiny.safetensors")).unwrap()
}

/// The real `google/umt5-xxl` tokenizer.json, decompressed from the fixture's `.json.xz`.
pub fn umt5_tokenizer_json() -> Vec<u8> {
    sf_testkit::checks::tokenizer::decompress(&fixture("umt5_tokenizer.json.xz")).unwrap()
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-text-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
