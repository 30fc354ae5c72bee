//! Wan VAE fixtures shared by the `wan_vae*` tests.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_testkit::{Fixture, open_workspace_fixture, to_f32s, workspace_fixture};
use sf_vae::wan::{ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, load_wan_vae};

/// A file of `fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    workspace_fixture(name)
}

/// `vae_tiny_io.safetensors`: inputs and upstream outputs.
pub fn io() -> Fixture {
    open_workspace_fixture("vae_tiny_io.safetensors")
}

/// The tiny VAE's configuration, from its weights' metadata.
pub fn config() -> WanVaeConfig {
    sf_testkit::configs::wan_vae(&fixture("vae_tiny.safetensors")).unwrap()
}

/// The tiny VAE from `file`, in f32.
pub fn load(file: &str, parts: VaeParts, device: &Device) -> WanVae {
    load_wan_vae(fixture(file), &config(), parts, device, Dtype::F32).unwrap()
}

/// A fixture tensor, in the VAE's (and upstream's) layout `[B, C, T, H, W]`.
pub fn tensor(fx: &Fixture, name: &str, device: &Device) -> Tensor<5> {
    fx.tensor::<5>(name, device).unwrap()
}

/// The largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: Tensor<5>, b: Tensor<5>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    to_f32s(a)
        .iter()
        .zip(to_f32s(b))
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// `decode_step` of `z` from a fresh cache with `strategy`.
pub fn decode_raw(vae: &WanVae, z: Tensor<5>, strategy: ConvStrategy) -> Tensor<5> {
    let options = DecodeOptions {
        strategy,
        zero_history: false,
    };
    let mut cache = options.new_cache(&vae.device());
    vae.decode_step(z, &mut cache).unwrap()
}
