//! Weight files are checked when the pipeline is built: a file cut anywhere is reported by
//! `build()`, naming the file, before any prompt is encoded (the text encoder is loaded only at
//! the first prompt, so its header is checked completely up front: every tensor's offsets against
//! the file's size).

use crate::tiny_models;

use std::path::Path;

use sf_pipeline::{DecoderKind, ModelConfigs, ModelLocation, Pipeline};
use tiny_models::{HEIGHT, WIDTH, tiny_model_dir};

fn build(
    root: &Path,
    configs: &ModelConfigs,
    decoder: DecoderKind,
    low_memory: bool,
) -> Result<Pipeline, String> {
    Pipeline::builder()
        .device("cpu".parse().unwrap())
        .models(ModelLocation::Local(root.to_path_buf()))
        .configs(configs.clone())
        .decoder(decoder)
        .resolution(HEIGHT, WIDTH)
        .low_memory(low_memory)
        .build()
        .map_err(|e| e.to_string())
}

/// Cuts `file` (under `root`) by each of `cuts` bytes in turn: `build()` must fail naming it and
/// saying it is truncated (or, for a ZIP archive, unreadable); the intact file builds again.
fn check_cuts(
    root: &Path,
    configs: &ModelConfigs,
    file: &str,
    decoder: DecoderKind,
    cuts: &[usize],
) {
    let path = root.join(file);
    let intact = std::fs::read(&path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    for &cut in cuts {
        std::fs::write(&path, &intact[..intact.len() - cut]).unwrap();
        for low_memory in [false, true] {
            let err = build(root, configs, decoder, low_memory)
                .err()
                .unwrap_or_else(|| panic!("{name} cut by {cut} bytes built a pipeline"));
            let text = err;
            assert!(text.contains(&name), "{name} not named: {text}");
            assert!(
                text.contains("truncated") || text.contains("ZIP") || text.contains("zip"),
                "{name} cut by {cut}: {text}"
            );
        }
    }
    std::fs::write(&path, &intact).unwrap();
}

#[test]
fn a_truncated_text_encoder_fails_the_build_naming_the_file() {
    let (root, configs) = tiny_model_dir("truncated-t5");
    // The intact directory builds: the failures below are the cut's.
    build(&root, &configs, DecoderKind::WanVae, true).unwrap();
    let t5 = "wan_models/Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth";
    let len = std::fs::metadata(root.join(t5)).unwrap().len() as usize;
    check_cuts(&root, &configs, t5, DecoderKind::WanVae, &[1, len / 2]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn truncated_dit_and_decoder_files_fail_the_build_naming_the_file() {
    let (root, configs) = tiny_model_dir("truncated-models");
    for (file, decoder) in [
        ("checkpoints/self_forcing_dmd.pt", DecoderKind::WanVae),
        (
            "wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
            DecoderKind::WanVae,
        ),
        ("checkpoints/taew2_1.pth", DecoderKind::Taehv),
    ] {
        let len = std::fs::metadata(root.join(file)).unwrap().len() as usize;
        check_cuts(&root, &configs, file, decoder, &[1, len / 2]);
    }
    build(&root, &configs, DecoderKind::Taehv, false).unwrap();
    std::fs::remove_dir_all(&root).ok();
}
