//! A tiny model directory in the upstream layout, built from the fixtures (shared by the
//! end-to-end tests, the web demo's tests and the benches). It panics when the fixtures are
//! not there: it is test scaffolding.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sf_device::safetensors;
use sf_pipeline::ModelConfigs;
use sf_text::UmT5Config;

use crate::checks::tokenizer::decompress;
use crate::configs;
use crate::fixture::workspace_fixture;

/// Video height the tiny models are run at (latent 4).
pub const HEIGHT: usize = 32;
/// Video width the tiny models are run at (latent 6).
pub const WIDTH: usize = 48;

/// A fresh, empty scratch directory for `name` (unique to this process).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes random umT5 weights (original Wan names, f32) for `config` as safetensors.
fn write_random_t5(path: &Path, config: &UmT5Config) {
    let keys = sf_text::expected_keys(config);
    let declared: Vec<(String, &str, Vec<usize>)> = keys
        .iter()
        .map(|(k, s)| (k.clone(), "F32", s.clone()))
        .collect();
    let mut w = safetensors::Writer::create(path, &declared, &BTreeMap::new()).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (name, shape) in &keys {
        let n: usize = shape.iter().product();
        let norm = name.ends_with("norm1.weight")
            || name.ends_with("norm2.weight")
            || name.as_str() == "norm.weight";
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                let v = if norm { 1.0 } else { 0.2 * u };
                v.to_le_bytes()
            })
            .collect();
        w.write(name, &bytes).unwrap();
    }
    w.finish().unwrap();
}

/// The upstream layout with the tiny fixture models; returns the root and the configs.
pub fn tiny_model_dir(name: &str) -> (PathBuf, ModelConfigs) {
    let root = scratch(name);
    let wan = root.join("wan_models/Wan2.1-T2V-1.3B");
    std::fs::create_dir_all(wan.join("google/umt5-xxl")).unwrap();
    std::fs::create_dir_all(root.join("checkpoints")).unwrap();

    let json = decompress(&workspace_fixture("umt5_tokenizer.json.xz")).unwrap();
    std::fs::write(wan.join("google/umt5-xxl/tokenizer.json"), &json).unwrap();
    let vocab = sf_text::UmT5Tokenizer::from_bytes(&json, 8)
        .unwrap()
        .vocab_size();

    let dit = configs::dit(&workspace_fixture("dit_tiny.safetensors")).unwrap();
    let mut text = configs::umt5(&workspace_fixture("t5_tiny.safetensors")).unwrap();
    text.vocab = vocab;
    text.dim = dit.text_dim;
    text.dim_attn = dit.text_dim;
    write_random_t5(&wan.join("models_t5_umt5-xxl-enc-bf16.pth"), &text);

    let copy = |fixture: &str, to: PathBuf| std::fs::copy(workspace_fixture(fixture), to).unwrap();
    copy("vae_tiny.pth", wan.join("Wan2.1_VAE.pth"));
    copy(
        "selfforcing_tiny.pt",
        root.join("checkpoints/self_forcing_dmd.pt"),
    );
    copy(
        "taehv_tiny.safetensors",
        root.join("checkpoints/taew2_1.pth"),
    );
    let configs = ModelConfigs {
        dit,
        text_encoder: text,
        wan_vae: configs::wan_vae(&workspace_fixture("vae_tiny.safetensors")).unwrap(),
        taehv: configs::taehv(&workspace_fixture("taehv_tiny.safetensors")).unwrap(),
        rollout: Default::default(),
    };
    (root, configs)
}

/// Adds LongLive's files to a tiny model directory: `longlive_models/models/longlive_base.pt`
/// (the tiny Self-Forcing pickle, whose `generator` entry is the base) and
/// `longlive_models/models/lora.pt` (`lora_tiny.pt`).
pub fn add_longlive(root: &Path) {
    let models = root.join("longlive_models/models");
    std::fs::create_dir_all(&models).unwrap();
    let copy = |fixture: &str, to: PathBuf| std::fs::copy(workspace_fixture(fixture), to).unwrap();
    copy("selfforcing_tiny.pt", models.join("longlive_base.pt"));
    copy("lora_tiny.pt", models.join("lora.pt"));
}

/// [`tiny_model_dir`] with LongLive's files besides Self-Forcing's ([`add_longlive`]).
pub fn tiny_longlive_dir(name: &str) -> (PathBuf, ModelConfigs) {
    let (root, configs) = tiny_model_dir(name);
    add_longlive(&root);
    (root, configs)
}
