//! LoRA merged at load ([`sf_testkit::checks::lora`] on Flex and wgpu), the same adapters from a
//! bare state dict, the policy's dtype, and one error for every adapter that does not fit.

use crate::common::{fixture, fixture_path, tiny_config};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::pytorch_reader::{DType as PtDType, PytorchReader};
use burn::tensor::{Device, FloatDType};
use sf_device::Dtype;
use sf_device::safetensors::Writer;
use sf_models::{
    CheckpointFormat, DitLora, ModelError, WanModel, check_checkpoint_with_lora,
    load_wan_model_with_lora,
};
use sf_testkit::checks::lora;
use sf_testkit::fixture::to_f32s;

/// A factor: name, safetensors dtype, shape, bytes.
type Factor = (String, &'static str, Vec<usize>, Vec<u8>);

/// The `generator_lora` factors of `lora_tiny.pt` (bf16).
fn factors() -> Vec<Factor> {
    let reader =
        PytorchReader::with_top_level_key(fixture_path("lora_tiny.pt"), "generator_lora").unwrap();
    let mut out: Vec<Factor> = reader
        .tensors()
        .iter()
        .map(|(name, t)| {
            assert_eq!(t.dtype(), PtDType::BF16, "{name}");
            (name.clone(), "BF16", t.shape().to_vec(), t.read().unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-lora-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("lora.safetensors")
}

/// `factors` as a bare safetensors state dict.
fn write(path: &Path, factors: &[Factor]) {
    let declared: Vec<(String, &str, Vec<usize>)> = factors
        .iter()
        .map(|(n, d, s, _)| (n.clone(), *d, s.clone()))
        .collect();
    let mut w = Writer::create(path, &declared, &BTreeMap::new()).unwrap();
    for (name, _, _, bytes) in factors {
        w.write(name, bytes).unwrap();
    }
    w.finish().unwrap();
}

fn load(lora: &DitLora, dtype: Dtype) -> Result<WanModel, ModelError> {
    load_wan_model_with_lora(
        fixture_path("dit_tiny.safetensors"),
        &CheckpointFormat::WanSafetensors,
        Some(lora),
        &tiny_config(),
        &Device::flex(),
        dtype,
    )
}

fn flow(model: &WanModel) -> Vec<f32> {
    let fx = fixture("lora_tiny_io.safetensors");
    let device = Device::flex();
    let out = model
        .forward(
            fx.tensor::<5>("x", &device).unwrap(),
            &fx.f32s("t").unwrap(),
            fx.tensor::<3>("context", &device).unwrap(),
            None,
            0,
        )
        .unwrap();
    to_f32s(out)
}

#[test]
fn merged_lora_fixture_on_flex() {
    lora::io(&fixture("lora_tiny_io.safetensors"), &Device::flex()).assert_complete();
}

#[test]
fn merged_lora_fixture_on_wgpu() {
    if let Some(device) = sf_testkit::wgpu_test_device() {
        lora::io(&fixture("lora_tiny_io.safetensors"), &device).assert_complete();
    }
}

#[test]
fn a_bare_state_dict_merges_like_the_generator_lora_entry() {
    let path = scratch("bare");
    write(&path, &factors());
    let bare = load(&DitLora::new(&path).alpha(8.0), Dtype::F32).unwrap();
    let entry = load(
        &DitLora::new(fixture_path("lora_tiny.pt")).alpha(8.0),
        Dtype::F32,
    )
    .unwrap();
    assert_eq!(flow(&bare), flow(&entry));
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

#[test]
fn the_merge_is_cast_to_the_policy_dtype() {
    let lora = DitLora::new(fixture_path("lora_tiny.pt"));
    assert_eq!(load(&lora, Dtype::Bf16).unwrap().dtype(), FloatDType::BF16);
    assert_eq!(load(&lora, Dtype::F32).unwrap().dtype(), FloatDType::F32);
}

#[test]
fn every_adapter_that_does_not_fit_is_reported_at_once() {
    let mut factors = factors();
    let find = |f: &[Factor], name: &str| f.iter().position(|x| x.0 == name).unwrap();
    let p = "base_model.model.blocks";
    // Missing: one factor gone.
    let gone = format!("{p}.1.ffn.2.lora_B.weight");
    factors.remove(find(&factors, &gone));
    // Wrong shape: lora_A of a q projection with 31 inputs instead of 32.
    let i = find(&factors, &format!("{p}.0.self_attn.q.lora_A.weight"));
    factors[i].2 = vec![4, 31];
    factors[i].3.truncate(4 * 31 * 2);
    // Wrong rank pair: lora_B of rank 3 against lora_A of rank 4.
    let i = find(&factors, &format!("{p}.0.cross_attn.v.lora_B.weight"));
    factors[i].2 = vec![32, 3];
    factors[i].3.truncate(32 * 3 * 2);
    // Unexpected: an adapter of a Linear outside the blocks, and a non-PEFT name.
    let a_head = (
        "base_model.model.head.head.lora_A.weight".to_string(),
        "BF16",
        vec![4, 32],
        vec![0; 4 * 32 * 2],
    );
    let stray = (
        "blocks.0.ffn.0.lora_A.weight".to_string(),
        "BF16",
        vec![4, 32],
        vec![0; 256],
    );
    factors.extend([a_head, stray]);
    let path = scratch("broken");
    write(&path, &factors);

    let lora = DitLora::new(&path);
    let checked = check_checkpoint_with_lora(
        &fixture_path("dit_tiny.safetensors"),
        &CheckpointFormat::WanSafetensors,
        Some(&lora),
        &tiny_config(),
    )
    .unwrap_err();
    let err = load(&lora, Dtype::F32).unwrap_err();
    assert_eq!(err.to_string(), checked.to_string());
    let ModelError::Lora { problems, .. } = &err else {
        panic!("not a LoRA error: {err}");
    };
    assert_eq!(problems.missing, [gone]);
    assert_eq!(
        problems.unexpected,
        [
            "base_model.model.head.head.lora_A.weight",
            "blocks.0.ffn.0.lora_A.weight"
        ]
    );
    assert_eq!(
        problems.mismatched,
        [(
            format!("{p}.0.self_attn.q.lora_A.weight"),
            vec![4, 32],
            vec![4, 31]
        )]
    );
    assert_eq!(problems.other.len(), 1, "{:?}", problems.other);
    assert!(problems.other[0].contains("rank 4") && problems.other[0].contains("rank 3"));
    let text = err.to_string();
    assert!(
        text.contains("missing (1)") && text.contains("unexpected (2)"),
        "{text}"
    );
    assert!(text.contains("models/lora.pt"), "says what to use: {text}");
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

#[test]
fn a_lora_of_another_model_or_a_bad_alpha_is_refused() {
    // The base checkpoint is not a LoRA: every tensor unexpected, every factor missing.
    let err = load(
        &DitLora::new(fixture_path("dit_tiny.safetensors")),
        Dtype::F32,
    )
    .unwrap_err();
    let ModelError::Lora { problems, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(problems.missing.len(), 40);
    assert!(!problems.unexpected.is_empty());
    for alpha in [0.0, -8.0, f64::NAN] {
        let err = load(
            &DitLora::new(fixture_path("lora_tiny.pt")).alpha(alpha),
            Dtype::F32,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("alpha must be a positive number"),
            "{err}"
        );
    }
    let err = load(&DitLora::new("/nonexistent/lora.pt"), Dtype::F32).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}
