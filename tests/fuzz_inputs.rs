//! Property tests: no input makes the checkpoint readers, the tokenizer front end or the
//! configuration parser panic or allocate without bound. Each returns a value or an error.

use std::io::Read;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sf_device::checkpoint::{TensorFile, list_tensors};
use sf_device::fixture::workspace_fixtures;
use sf_pipeline::sf_models::{CheckpointFormat, WanConfig, load_wan_model};
use sf_pipeline::sf_text::UmT5Tokenizer;
use sf_pipeline::sf_vae::taehv::{TaehvConfig, load_taehv};
use sf_pipeline::{ModelConfigs, sf_device};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(workspace_fixtures().join(name)).unwrap()
}

fn tokenizer() -> &'static UmT5Tokenizer {
    static TOKENIZER: std::sync::OnceLock<UmT5Tokenizer> = std::sync::OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut xz = Vec::new();
        std::fs::File::open(workspace_fixtures().join("umt5_tokenizer.json.xz"))
            .unwrap()
            .read_to_end(&mut xz)
            .unwrap();
        let mut json = Vec::new();
        lzma_rs::xz_decompress(&mut xz.as_slice(), &mut json).unwrap();
        UmT5Tokenizer::from_bytes(&json, 64).unwrap()
    })
}

/// `bytes` with `edits` (position fraction, new byte) applied and cut at `keep` (fraction).
fn mutate(mut bytes: Vec<u8>, edits: &[(f64, u8)], keep: f64) -> Vec<u8> {
    let n = bytes.len();
    for &(at, b) in edits {
        let i = ((at * n as f64) as usize).min(n - 1);
        bytes[i] = b;
    }
    bytes.truncate(((keep * n as f64) as usize).max(1));
    bytes
}

fn dit_config() -> WanConfig {
    let fx = sf_device::fixture::Fixture::open(workspace_fixtures().join("dit_tiny.safetensors"))
        .unwrap();
    WanConfig::from_fixture_config(fx.config()).unwrap()
}

fn load_dit(path: &Path, format: &CheckpointFormat) -> bool {
    load_wan_model(
        path,
        format,
        &dit_config(),
        &burn::tensor::Device::flex(),
        sf_device::Dtype::F32,
    )
    .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_readers(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let path = write("random.bin", &bytes);
        let _ = list_tensors(&path, &TensorFile::Safetensors);
        let _ = list_tensors(&path, &TensorFile::Pickle { top_level_key: None });
        let _ = list_tensors(&path, &TensorFile::from_extension(&path));
    }

    #[test]
    fn mutated_safetensors_load_or_fail_cleanly(
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
        keep in 0.0f64..1.2,
    ) {
        let bytes = mutate(fixture_bytes("taehv_tiny.safetensors"), &edits, keep.min(1.0));
        let path = write("mutated.safetensors", &bytes);
        let _ = list_tensors(&path, &TensorFile::Safetensors);
        let cfg = TaehvConfig::from_fixture_config(
            sf_device::fixture::Fixture::open(workspace_fixtures().join("taehv_tiny.safetensors"))
                .unwrap()
                .config(),
        )
        .unwrap();
        let _ = load_taehv(&path, &cfg, &burn::tensor::Device::flex(), sf_device::Dtype::F32);
        let dit = mutate(fixture_bytes("dit_tiny.safetensors"), &edits, keep.min(1.0));
        let dit_path = write("mutated_dit.safetensors", &dit);
        let _ = load_dit(&dit_path, &CheckpointFormat::WanSafetensors);
    }

    #[test]
    fn mutated_pickles_load_or_fail_cleanly(
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
        keep in 0.0f64..1.2,
    ) {
        let bytes = mutate(fixture_bytes("selfforcing_tiny.pt"), &edits, keep.min(1.0));
        let path = write("mutated.pt", &bytes);
        let _ = list_tensors(&path, &TensorFile::Pickle { top_level_key: Some("generator_ema".into()) });
        let intact = edits.is_empty() && keep >= 1.0;
        let loaded = load_dit(&path, &CheckpointFormat::self_forcing_ema());
        if intact {
            prop_assert!(loaded, "the intact file loads");
        }
    }

    #[test]
    fn any_prompt_tokenizes_to_the_text_length(prompt in "\\PC{0,400}") {
        let t = tokenizer().encode(&prompt).unwrap();
        prop_assert_eq!(t.ids.len(), 64);
        prop_assert_eq!(t.mask.len(), 64);
        prop_assert!(t.len >= 1 && t.len <= 64);
        prop_assert_eq!(t.mask.iter().filter(|&&m| m != 0).count(), t.len);
    }

    #[test]
    fn any_json_config_parses_or_fails_cleanly(
        json in "\\{(\"[a-z_]{1,12}\":(-?[0-9]{1,12}|null|true|\"[a-z]{0,5}\"|\\{\\}),?){0,8}\\}",
        dim in 0usize..5000,
        heads in 0usize..40,
    ) {
        if let Ok(c) = serde_json::from_str::<ModelConfigs>(&json) {
            let _ = c.validate();
        }
        let mut configs = ModelConfigs::default();
        configs.dit.dim = dim;
        configs.dit.num_heads = heads;
        let path = write("config.json", serde_json::to_string(&configs).unwrap().as_bytes());
        if let Ok(c) = ModelConfigs::from_json_file(&path) {
            let _ = c.sizes();
        }
    }
}

#[test]
fn a_huge_declared_header_is_refused_without_allocating() {
    let mut bytes = (u64::MAX / 2).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let path = write("huge.safetensors", &bytes);
    let err = list_tensors(&path, &TensorFile::Safetensors).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}
