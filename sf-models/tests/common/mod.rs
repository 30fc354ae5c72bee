//! Helpers shared by the sf-models integration tests.
#![allow(dead_code)]

use burn::tensor::Device;
use sf_device::Dtype;
use sf_models::{CheckpointFormat, WanConfig, WanModel, load_wan_model};
pub use sf_testkit::{open_workspace_fixture as fixture, workspace_fixture as fixture_path};

/// The tiny DiT configuration, read from `dit_tiny.safetensors`' metadata.
pub fn tiny_config() -> WanConfig {
    sf_testkit::configs::dit(&fixture_path("dit_tiny.safetensors")).unwrap()
}

/// Loads a tiny DiT checkpoint in f32 on Flex.
pub fn load(file: &str, format: CheckpointFormat) -> WanModel {
    load_wan_model(
        fixture_path(file),
        &format,
        &tiny_config(),
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}
