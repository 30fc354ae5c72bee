//! A tiny model directory in the upstream layout, built from the fixtures (shared by the
//! end-to-end tests and the web demo's tests).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sf_device::fixture::{Fixture, workspace_fixtures};
use sf_device::safetensors;
use sf_pipeline::ModelConfigs;
use sf_pipeline::sf_text::UmT5Config;
use sf_pipeline::{sf_models, sf_text, sf_vae};

pub const HEIGHT: usize = 32;
pub const WIDTH: usize = 48;

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture_config(name: &str) -> serde_json::Value {
    Fixture::open(workspace_fixtures().join(name))
        .unwrap()
        .config()
        .clone()
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
    let fixtures = workspace_fixtures();
    let wan = root.join("wan_models/Wan2.1-T2V-1.3B");
    std::fs::create_dir_all(wan.join("google/umt5-xxl")).unwrap();
    std::fs::create_dir_all(root.join("checkpoints")).unwrap();

    let mut xz = Vec::new();
    std::fs::File::open(fixtures.join("umt5_tokenizer.json.xz"))
        .unwrap()
        .read_to_end(&mut xz)
        .unwrap();
    let mut json = Vec::new();
    lzma_rs::xz_decompress(&mut xz.as_slice(), &mut json).unwrap();
    std::fs::write(wan.join("google/umt5-xxl/tokenizer.json"), &json).unwrap();
    let vocab = sf_text::UmT5Tokenizer::from_bytes(&json, 8)
        .unwrap()
        .vocab_size();

    let dit =
        sf_models::WanConfig::from_fixture_config(&fixture_config("dit_tiny.safetensors")).unwrap();
    let mut text = UmT5Config::from_fixture_config(&fixture_config("t5_tiny.safetensors")).unwrap();
    text.vocab = vocab;
    text.dim = dit.text_dim;
    text.dim_attn = dit.text_dim;
    write_random_t5(&wan.join("models_t5_umt5-xxl-enc-bf16.pth"), &text);

    std::fs::copy(fixtures.join("vae_tiny.pth"), wan.join("Wan2.1_VAE.pth")).unwrap();
    std::fs::copy(
        fixtures.join("selfforcing_tiny.pt"),
        root.join("checkpoints/self_forcing_dmd.pt"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("taehv_tiny.safetensors"),
        root.join("checkpoints/taew2_1.pth"),
    )
    .unwrap();
    let configs = ModelConfigs {
        dit,
        text_encoder: text,
        wan_vae: sf_vae::wan::WanVaeConfig::from_fixture_config(&fixture_config(
            "vae_tiny.safetensors",
        ))
        .unwrap(),
        taehv: sf_vae::taehv::TaehvConfig::from_fixture_config(&fixture_config(
            "taehv_tiny.safetensors",
        ))
        .unwrap(),
        rollout: Default::default(),
    };
    (root, configs)
}
