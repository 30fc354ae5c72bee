//! The same DiT from the other checkpoint layouts ([`sf_testkit::checks::dit`]): diffusers
//! names, and the Self-Forcing pickle (`generator_ema` / `generator`, bf16, `model.`-prefixed
//! keys) upcast to f32 or kept in bf16; a wrong top-level key is an error.

use crate::common::{fixture, fixture_path, load, tiny_config};

use burn::tensor::{Device, FloatDType};
use sf_device::Dtype;
use sf_models::{CheckpointFormat, ModelError, load_wan_model};
use sf_testkit::checks::dit;

#[test]
fn diffusers_names_give_the_same_model() {
    let device = Device::flex();
    dit::diffusers(&fixture("dit_tiny_diffusers.safetensors"), &device).assert_complete();
}

#[test]
fn self_forcing_checkpoint_both_entries_and_bf16_compute() {
    // f32 forwards of both entries, the EMA rollout and the EMA forward in bf16 compute.
    let checks = dit::selfforcing(&fixture("selfforcing_tiny_io.safetensors"), &Device::flex());
    checks.assert_passed();
    assert!(
        checks
            .results
            .iter()
            .any(|r| r.check.contains("bf16 compute")),
        "Flex has bf16: the bf16-compute check must run"
    );
}

#[test]
fn self_forcing_weights_are_upcast_or_kept_in_bf16() {
    let model = load("selfforcing_tiny.pt", CheckpointFormat::self_forcing_ema());
    assert_eq!(model.dtype(), FloatDType::F32, "upcast on request");
    let model = load_wan_model(
        fixture_path("selfforcing_tiny.pt"),
        &CheckpointFormat::self_forcing_generator(),
        &tiny_config(),
        &Device::flex(),
        Dtype::Bf16,
    )
    .unwrap();
    assert_eq!(model.dtype(), FloatDType::BF16);
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
