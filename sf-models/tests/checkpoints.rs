//! The same DiT from the other checkpoint layouts: diffusers names, and the Self-Forcing pickle
//! (`generator_ema` / `generator`, bf16, `model.`-prefixed keys).

use crate::common;

use burn::tensor::{Device, FloatDType};
use common::{check_tensor, fixture, fixture_path, load, tiny_config, uniform_t};
use sf_device::Dtype;
use sf_models::{CheckpointFormat, ModelError, WanModel, load_wan_model};

fn outputs(model: &WanModel, io: &str, prefix: &str) {
    let device = Device::flex();
    let fx = fixture(io);
    let x = fx.tensor::<5>("x", &device).unwrap();
    let frames = x.dims()[2];
    let context = fx.tensor::<3>("context", &device).unwrap();
    let out = model
        .forward(x.clone(), &uniform_t(&fx, frames), context.clone(), None, 0)
        .unwrap();
    check_tensor(&fx, &format!("{prefix}out_uniform"), out);
    let per_block = fixture("dit_tiny_io.safetensors").config()["num_frame_per_block"]
        .as_u64()
        .unwrap() as usize;
    let out = model
        .forward_block_causal(x, &fx.f32s("t_frames").unwrap(), context, per_block)
        .unwrap();
    check_tensor(&fx, &format!("{prefix}out_block_causal"), out);
}

#[test]
fn diffusers_names_give_the_same_model() {
    let model = load(
        "dit_tiny_diffusers.safetensors",
        CheckpointFormat::DiffusersSafetensors,
    );
    outputs(&model, "dit_tiny_io.safetensors", "");
}

#[test]
fn self_forcing_generator_ema() {
    let model = load("selfforcing_tiny.pt", CheckpointFormat::self_forcing_ema());
    assert_eq!(
        model.dtype(),
        FloatDType::F32,
        "bf16 weights are upcast on request"
    );
    outputs(&model, "selfforcing_tiny_io.safetensors", "generator_ema.");
}

#[test]
fn self_forcing_generator() {
    let model = load(
        "selfforcing_tiny.pt",
        CheckpointFormat::self_forcing_generator(),
    );
    outputs(&model, "selfforcing_tiny_io.safetensors", "generator.");
}

#[test]
fn self_forcing_keeps_bf16_when_asked() {
    let model = load_wan_model(
        fixture_path("selfforcing_tiny.pt"),
        &CheckpointFormat::self_forcing_ema(),
        &tiny_config(),
        &Device::flex(),
        Dtype::Bf16,
    )
    .unwrap();
    assert_eq!(model.dtype(), FloatDType::BF16);
    // A bf16 forward runs (activations in bf16, norms/modulation in f32) and stays close.
    let device = Device::flex();
    let fx = fixture("selfforcing_tiny_io.safetensors");
    let x = fx.tensor::<5>("x", &device).unwrap();
    let frames = x.dims()[2];
    let out = model
        .forward(
            x,
            &uniform_t(&fx, frames),
            fx.tensor::<3>("context", &device).unwrap(),
            None,
            0,
        )
        .unwrap();
    let reference = fx.f32s("generator_ema.out_uniform").unwrap();
    let result = sf_device::fixture::compare_f32(
        "selfforcing_tiny_io.safetensors",
        "generator_ema.out_uniform (bf16 compute)",
        &sf_device::fixture::to_f32s(out),
        &reference,
        sf_device::fixture::Tolerance::BF16_COMPUTE,
    );
    println!("{result}");
    assert!(result.passed, "{result}");
}

#[test]
fn unknown_top_level_key_is_an_error() {
    let err = load_wan_model(
        fixture_path("selfforcing_tiny.pt"),
        &CheckpointFormat::SelfForcingPt {
            top_level_key: "critic".into(),
        },
        &tiny_config(),
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
}
