//! Wan VAE fixtures and comparisons shared by the `wan_vae*` tests.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{
    CheckResult, Fixture, Tolerance, compare_f32, to_f32s, workspace_fixtures,
};
use sf_vae::wan::{ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, load_wan_vae};

/// A file of `fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    workspace_fixtures().join(name)
}

/// `vae_tiny_io.safetensors`: inputs and upstream outputs.
pub fn io() -> Fixture {
    Fixture::open(fixture("vae_tiny_io.safetensors")).unwrap()
}

/// The tiny VAE's configuration, from its weights' metadata.
pub fn config() -> WanVaeConfig {
    let weights = Fixture::open(fixture("vae_tiny.safetensors")).unwrap();
    WanVaeConfig::from_fixture_config(weights.config()).unwrap()
}

/// The tiny VAE from `file`, in f32.
pub fn load(file: &str, parts: VaeParts, device: &Device) -> WanVae {
    load_wan_vae(fixture(file), &config(), parts, device, Dtype::F32).unwrap()
}

/// A fixture tensor, in the VAE's (and upstream's) layout `[B, C, T, H, W]`.
pub fn tensor(fx: &Fixture, name: &str, device: &Device) -> Tensor<5> {
    fx.tensor::<5>(name, device).unwrap()
}

/// Compares `out` with the fixture's tensor under the f32 rule.
pub fn check(fx: &Fixture, label: &str, out: Tensor<5>, name: &str) -> CheckResult {
    let r = compare_f32(
        "vae_tiny_io",
        label,
        &to_f32s(out),
        &fx.f32s(name).unwrap(),
        Tolerance::F32,
    );
    println!("{r}");
    r
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
