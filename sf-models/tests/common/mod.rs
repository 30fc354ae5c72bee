//! Helpers shared by the sf-models integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{Fixture, Tolerance, compare_f32, to_f32s, workspace_fixtures};
use sf_models::loader::config_from_safetensors_metadata;
use sf_models::{CheckpointFormat, WanConfig, WanModel, load_wan_model};

/// A file of the workspace's fixture folder.
pub fn fixture_path(name: &str) -> PathBuf {
    workspace_fixtures().join(name)
}

/// Opens a fixture.
pub fn fixture(name: &str) -> Fixture {
    Fixture::open(fixture_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The tiny DiT configuration, read from `dit_tiny.safetensors`' metadata.
pub fn tiny_config() -> WanConfig {
    config_from_safetensors_metadata(fixture_path("dit_tiny.safetensors")).unwrap()
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

/// Asserts `out` matches the reference values under the f32 rule and prints the difference.
pub fn check<const D: usize>(file: &str, check: &str, out: Tensor<D>, reference: &[f32]) {
    let dims = out.dims();
    let result = compare_f32(file, check, &to_f32s(out), reference, Tolerance::F32);
    println!("{result}  shape {dims:?}");
    assert!(result.passed, "{result}");
}

/// Asserts `out` matches the fixture tensor `name` (shape and values).
pub fn check_tensor<const D: usize>(fx: &Fixture, name: &str, out: Tensor<D>) {
    let shape = fx.shape(name).unwrap();
    assert_eq!(out.dims().to_vec(), shape, "{name}: shape");
    check(&fx.file_name(), name, out, &fx.f32s(name).unwrap());
}

/// `t_uniform` repeated for each of `frames` frames (batch 1).
pub fn uniform_t(fx: &Fixture, frames: usize) -> Vec<f32> {
    vec![fx.f32s("t_uniform").unwrap()[0]; frames]
}
