//! A bare PEFT LoRA state dict written as a `torch.save` archive (the pickle writer of
//! [`super`]) merges like LongLive's `generator_lora` entry.

use std::path::Path;

use sf_pipeline::sf_device;
use sf_testkit::workspace_fixtures;

/// LongLive's `lora.pt` holds its adapters under `generator_lora`; a bare PEFT state dict (the
/// same tensors at the top level) merges to the same weights. Under another entry name the
/// factors are not found: every adapter is reported.
#[test]
fn a_bare_peft_lora_merges_like_the_generator_lora_entry() {
    use burn::store::{ModuleSnapshot, bridge};
    use sf_pipeline::sf_models::{
        CheckpointFormat, DitLora, ModelError, load_wan_model, load_wan_model_with_lora,
    };

    let tensors = super::descs(
        &workspace_fixtures().join("lora_tiny.pt"),
        Some("generator_lora"),
    );
    let pickled =
        |key: Option<&str>| super::archive(&super::Pickle::state_dict(&tensors, key).out, &tensors);
    let bare = super::write("lora_bare.pt", &pickled(None));
    let other = super::write("lora_other.pt", &pickled(Some("adapters")));
    let load = |lora: &Path| {
        load_wan_model_with_lora(
            workspace_fixtures().join("dit_tiny.safetensors"),
            &CheckpointFormat::WanSafetensors,
            Some(&DitLora::new(lora).alpha(8.0)),
            &crate::fuzz_inputs::model_configs().dit,
            &burn::tensor::Device::flex(),
            sf_device::Dtype::F32,
        )
    };
    let weights = |lora: &Path| -> Vec<(String, Vec<u8>)> {
        let model = load(lora).unwrap_or_else(|e| panic!("{e}"));
        model
            .collect(None, None, false)
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    bridge::to_data(t).unwrap().into_bytes().to_vec(),
                )
            })
            .collect()
    };
    let entry = weights(&workspace_fixtures().join("lora_tiny.pt"));
    assert_eq!(weights(&bare), entry);
    let base = load_wan_model(
        workspace_fixtures().join("dit_tiny.safetensors"),
        &CheckpointFormat::WanSafetensors,
        &crate::fuzz_inputs::model_configs().dit,
        &burn::tensor::Device::flex(),
        sf_device::Dtype::F32,
    )
    .unwrap();
    let q = "blocks.0.self_attn.q.weight";
    let base_q = base.collect(None, None, false);
    let base_q = base_q.iter().find(|t| t.name == q).unwrap();
    let merged_q = &entry.iter().find(|(n, _)| n == q).unwrap().1;
    assert_ne!(
        &bridge::to_data(base_q).unwrap().into_bytes().to_vec(),
        merged_q
    );

    let err = load(&other).map(drop).unwrap_err();
    let ModelError::Lora { problems, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        (problems.missing.len(), problems.unexpected.len()),
        (40, 40),
        "{err}"
    );
    for path in [bare, other] {
        std::fs::remove_file(path).ok();
    }
}
