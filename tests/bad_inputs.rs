//! Every bad input a user can give the pipeline, through its public API: each is a clear error
//! (what went wrong and what to do), never a panic. `docs/reliability.md` has the table.

use crate::tiny_models;

use std::path::{Path, PathBuf};

use sf_pipeline::{
    DecoderKind, GenerationRequest, ModelConfigs, ModelLocation, Pipeline, PipelineBuilder,
    sf_device,
};
use tiny_models::{HEIGHT, WIDTH, tiny_model_dir};

fn builder(root: &Path, configs: ModelConfigs) -> PipelineBuilder {
    Pipeline::builder()
        .device("cpu".parse().unwrap())
        .models(ModelLocation::Local(root.to_path_buf()))
        .configs(configs)
        .decoder(DecoderKind::Taehv)
        .resolution(HEIGHT, WIDTH)
}

/// The build error's text; panics if the build succeeds.
fn build_error(b: PipelineBuilder) -> String {
    match b.build() {
        Ok(_) => panic!("the pipeline was built"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "'{n}' not in: {text}");
    }
}

fn dit_path(root: &Path) -> PathBuf {
    root.join("checkpoints/self_forcing_dmd.pt")
}

#[test]
fn corrupt_truncated_and_foreign_checkpoints() {
    let (root, configs) = tiny_model_dir("bad-ckpt");
    let dit = dit_path(&root);
    let good = std::fs::read(&dit).unwrap();

    // Truncated pickle.
    std::fs::write(&dit, &good[..good.len() / 3]).unwrap();
    let e = build_error(builder(&root, configs.clone()));
    assert_mentions(&e, &["self_forcing_dmd.pt"]);

    // Garbage instead of a pickle.
    std::fs::write(&dit, b"this is not a checkpoint at all").unwrap();
    let e = build_error(builder(&root, configs.clone()));
    assert_mentions(&e, &["self_forcing_dmd.pt"]);

    // Another model's checkpoint (the VAE) where the DiT belongs: the keys are listed.
    std::fs::copy(root.join("wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth"), &dit).unwrap();
    let e = build_error(builder(&root, configs.clone()));
    assert_mentions(&e, &["self_forcing_dmd.pt", "generator_ema"]);
    assert!(
        e.len() < 2000,
        "the error stays readable: {} bytes",
        e.len()
    );
    std::fs::write(&dit, &good).unwrap();

    // A truncated safetensors decoder.
    let taehv = root.join("checkpoints/taew2_1.pth");
    let bytes = std::fs::read(&taehv).unwrap();
    std::fs::write(&taehv, &bytes[..bytes.len() - 100]).unwrap();
    let e = build_error(builder(&root, configs.clone()));
    assert_mentions(&e, &["taew2_1.pth"]);
    std::fs::write(&taehv, &bytes).unwrap();

    // A corrupt tokenizer.
    let tok = root.join("wan_models/Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json");
    let json = std::fs::read(&tok).unwrap();
    std::fs::write(&tok, &json[..1000]).unwrap();
    let e = build_error(builder(&root, configs.clone()));
    assert_mentions(&e, &["tokenizer.json"]);
    std::fs::write(&tok, &json).unwrap();

    builder(&root, configs)
        .build()
        .expect("restored files load");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn wrong_shapes_and_bad_configs() {
    let (root, configs) = tiny_model_dir("bad-shapes");
    // A config whose width does not match the checkpoint: mis-shaped keys are listed.
    let mut wide = configs.clone();
    wide.dit.ffn_dim *= 2;
    let e = build_error(builder(&root, wide));
    assert_mentions(&e, &["ffn"]);
    // An inconsistent config (heads do not divide the width).
    let mut heads = configs.clone();
    heads.dit.num_heads = 5;
    let e = build_error(builder(&root, heads));
    assert_mentions(&e, &["head"]);
    // Sizes the model cannot make.
    for (h, w) in [(30, 48), (32, 50), (0, 48)] {
        let e = build_error(builder(&root, configs.clone()).resolution(h, w));
        assert_mentions(&e, &["multiples of 16"]);
    }
    // A precision the device cannot run, and a device that is not there.
    let e = build_error(builder(&root, configs.clone()).precision("dit=f8".to_string()));
    assert!(!e.is_empty());
    let e = build_error(builder(&root, configs.clone()).device("cuda:7".parse().unwrap()));
    assert_mentions(&e, &["cuda"]);
    // A memory plan that does not fit.
    let e = build_error(builder(&root, configs.clone()).memory_budget(1024));
    assert_mentions(&e, &["needs about", "available"]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_requests() {
    let (root, configs) = tiny_model_dir("bad-requests");
    let mut p = builder(&root, configs).build().unwrap();
    let e = p.stream(&GenerationRequest::new("")).err().unwrap();
    assert_mentions(&e.to_string(), &["empty"]);
    let e = p
        .stream(&GenerationRequest::new("a cat").latent_frames(0))
        .err()
        .unwrap();
    assert_mentions(&e.to_string(), &["latent_frames"]);
    let e = p
        .stream(&GenerationRequest::new("a cat").latent_frames(40))
        .err()
        .unwrap();
    assert_mentions(&e.to_string(), &["multiple of 3"]);
    let e = p
        .stream(&GenerationRequest::new("a cat").latent_frames(30))
        .err()
        .unwrap();
    assert_mentions(&e.to_string(), &["kv-window"]);
    // A prompt longer than the text length is truncated, with a warning the caller sees.
    let long = "a very long prompt about a cat ".repeat(200);
    let video = p
        .generate(&GenerationRequest::new(long).latent_frames(3))
        .unwrap();
    let warning = video.summary.prompt_warning.expect("a truncation warning");
    assert_mentions(&warning, &["dropped"]);
    assert_eq!(video.frames.len(), 9);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn nan_in_the_latents_stops_with_an_error() {
    let (root, configs) = tiny_model_dir("bad-nan");
    // NaN weights in the DiT's head make the first chunk's latents NaN. The file is
    // safetensors under the `.pt` name: the loader reads the kind from the content.
    let path = root.join("checkpoints/nan.safetensors");
    write_dit_with_nan(&path);
    std::fs::rename(&path, dit_path(&root)).unwrap();
    let mut p = builder(&root, configs)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = p
        .stream(&GenerationRequest::new("a cat").latent_frames(6))
        .unwrap();
    let first = stream.next().expect("one item");
    let e = first.expect_err("NaN latents are an error");
    assert_mentions(&e.to_string(), &["NaN"]);
    assert!(stream.next().is_none(), "the run stops after the error");
    std::fs::remove_dir_all(&root).ok();
}

/// Copies the tiny Wan-named DiT safetensors (same config as the tiny Self-Forcing one) with
/// NaN as the first value of `head.head.weight`.
fn write_dit_with_nan(to: &Path) {
    let from = sf_testkit::workspace_fixtures().join("dit_tiny.safetensors");
    let header = sf_device::safetensors::read_header(&from)
        .unwrap()
        .to_json();
    let mut bytes = std::fs::read(&from).unwrap();
    let data_start = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let entry = &header["head.head.weight"];
    assert_eq!(entry["dtype"], "F32");
    let at = data_start + entry["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(to, bytes).unwrap();
}
