//! TAEHV: parity with upstream `taehv.py` (fixtures, [`sf_testkit::checks::taehv`]), streaming,
//! trimming, TGrow patching, the checkpoint key layout (fixture and real `taew2_1` manifest) and
//! clear errors for bad files.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Distribution, Tensor};
use sf_device::Dtype;
use sf_device::checkpoint::{TensorFile, list_tensors};
use sf_testkit::checks::taehv;
use sf_testkit::{
    CheckResult, Fixture, Manifest, Tolerance, compare_f32, open_workspace_fixture, to_f32s,
    workspace_fixtures,
};
use sf_vae::taehv::{
    EncoderMemory, Taehv, TaehvConfig, TaehvDecoder, check_checkpoint, expected_keys, load_taehv,
    module_paths,
};
use sf_vae::{VaeError, VideoDecoder};

fn weights() -> PathBuf {
    workspace_fixtures().join("taehv_tiny.safetensors")
}

fn tiny_config() -> TaehvConfig {
    sf_testkit::configs::taehv(&weights()).unwrap()
}

fn load(device: &Device) -> Taehv {
    load_taehv(weights(), &tiny_config(), device, Dtype::F32).unwrap()
}

fn check(results: &[CheckResult]) {
    for r in results {
        println!("{r}");
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(ToString::to_string)
        .collect();
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

fn cmp(check: &str, out: Tensor<5>, reference: Tensor<5>) -> CheckResult {
    assert_eq!(out.dims(), reference.dims(), "{check}");
    compare_f32(
        "taehv",
        check,
        &to_f32s(out),
        &to_f32s(reference),
        Tolerance::F32,
    )
}

/// TAEHV's `[B, T, C, h, w]` latents in the rollout's layout `[B, C, T, h, w]`, which the
/// streaming decoder takes.
fn rollout_layout(latents: Tensor<5>) -> Tensor<5> {
    latents.swap_dims(1, 2)
}

/// Decodes `latents` (TAEHV's layout) chunk by chunk (`plan` = latents per chunk) and concatenates the frames.
fn stream(decoder: &mut TaehvDecoder, latents: &Tensor<5>, plan: &[usize]) -> Tensor<5> {
    let t_up = decoder.model().config().t_upscale();
    let trim = decoder.model().config().frames_to_trim();
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, &f) in plan.iter().enumerate() {
        let frames = decoder
            .decode_chunk(rollout_layout(latents.clone().narrow(1, start, f)))
            .unwrap();
        let want = if i == 0 { t_up * f - trim } else { t_up * f };
        assert_eq!(frames.dims()[1], want, "chunk {i} of plan {plan:?}");
        parts.push(frames);
        start += f;
    }
    assert_eq!(start, latents.dims()[1], "plan {plan:?} covers the latents");
    Tensor::cat(parts, 1)
}

/// Whole-video and streamed raw and upstream decodes ([`sf_testkit::checks::taehv`]).
fn parity(device: &Device) {
    taehv::io(&open_workspace_fixture("taehv_tiny_io.safetensors"), device).assert_complete();
}

#[test]
fn parity_with_upstream_on_flex() {
    parity(&Device::flex());
    taehv::weights(
        &open_workspace_fixture("taehv_tiny.safetensors"),
        &Device::flex(),
    )
    .assert_complete();
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn parity_with_upstream_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        parity(&device);
    }
}

#[test]
fn streaming_equals_whole_decode() {
    let device = Device::flex();
    let model = load(&device);
    let config = model.config().clone();
    let latents = Tensor::<5>::random(
        [2, 7, config.latent_channels, 3, 5],
        Distribution::Normal(0.0, 1.5),
        &device,
    );
    let whole = model.decode_video(latents.clone()).unwrap();
    assert_eq!(whole.dims()[1], 4 * 7 - 3);
    let mut decoder = TaehvDecoder::new(model);
    let mut memory_sizes = Vec::new();
    for plan in [
        &[1, 1, 1, 1, 1, 1, 1][..],
        &[2, 2, 2, 1],
        &[3, 3, 1],
        &[1, 3, 2, 1],
        &[7],
    ] {
        decoder.reset();
        let streamed = stream(&mut decoder, &latents, plan);
        memory_sizes.push(decoder.memory_bytes());
        check(&[cmp(&format!("plan {plan:?}"), streamed, whole.clone())]);
    }
    // The memory between chunks is one frame per MemBlock, whatever the video length.
    assert!(memory_sizes.iter().all(|b| *b == memory_sizes[0] && *b > 0));
}

#[test]
fn trimming_and_clamping() {
    let device = Device::flex();
    let model = load(&device);
    let latents = Tensor::<5>::random([1, 3, 16, 2, 3], Distribution::Normal(0.0, 3.0), &device);
    let raw = model.decode_raw(latents.clone()).unwrap();
    let video = model.decode_video(latents.clone()).unwrap();
    assert_eq!(raw.dims()[1], 12);
    assert_eq!(video.dims()[1], 9);
    let expected = raw.clone().narrow(1, 3, 9).clamp(0.0, 1.0);
    assert_eq!(to_f32s(video.clone()), to_f32s(expected));
    let values = to_f32s(video);
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    // Random weights put raw values outside [0, 1]: the clamp is exercised.
    assert!(to_f32s(raw).iter().any(|v| !(0.0..=1.0).contains(v)));

    // One latent: 1 frame first, 4 afterwards; reset starts a new video.
    let mut decoder = TaehvDecoder::new(model);
    let first = decoder
        .decode_chunk(rollout_layout(latents.clone().narrow(1, 0, 1)))
        .unwrap();
    assert_eq!(first.dims()[1], 1);
    let second = decoder
        .decode_chunk(rollout_layout(latents.clone().narrow(1, 1, 1)))
        .unwrap();
    assert_eq!(second.dims()[1], 4);
    decoder.reset();
    let again = decoder
        .decode_chunk(rollout_layout(latents.narrow(1, 0, 1)))
        .unwrap();
    assert_eq!(to_f32s(again), to_f32s(first));
}

#[test]
fn tgrow_rows_beyond_the_configuration_keep_the_last_ones() {
    // The fixture's stage-1 TGrow doubles time ([32, 16, 1, 1]); a configuration without that
    // upscaling needs [16, 16, 1, 1] and must take the LAST 16 rows.
    let mut config = tiny_config();
    config.decoder_time_upscale = [false, false, true];
    let info = check_checkpoint(&weights(), &config).unwrap();
    assert_eq!(
        info.patched_tgrow,
        vec!["decoder.13.conv.weight".to_string()]
    );
    assert!(!info.has_encoder);
    let device = Device::flex();
    let model = load_taehv(weights(), &config, &device, Dtype::F32).unwrap();
    let file = Fixture::open(weights()).unwrap();
    let stored = file.f32s("decoder.13.conv.weight").unwrap();
    let loaded = to_f32s(model.decoder.stages[1].tgrow.conv.weight.val());
    assert_eq!(loaded.len(), 16 * 16);
    assert_eq!(loaded, stored[16 * 16..].to_vec());
    let latents = Tensor::<5>::random([1, 2, 16, 2, 3], Distribution::Default, &device);
    assert_eq!(model.decode_raw(latents).unwrap().dims()[1], 2 * 2);
}

/// Writes an F32 safetensors file by hand (8-byte header length, JSON header, data).
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + 4 * values.len();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_string(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(' ');
    }
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json.as_bytes());
    for (_, _, values) in tensors {
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(path, bytes).unwrap();
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-taehv-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixture's tensors, with extra leading rows on the stage-0 TGrow weight.
#[test]
fn oversized_tgrow_in_a_file_is_patched() {
    let file = Fixture::open(weights()).unwrap();
    let mut tensors = Vec::new();
    for name in file.names() {
        let mut shape = file.shape(name).unwrap();
        let mut values = file.f32s(name).unwrap();
        if name == "decoder.7.conv.weight" {
            let extra: Vec<f32> = (0..values.len()).map(|i| (i as f32).sin() * 9.0).collect();
            values = [extra, values].concat();
            shape[0] *= 2;
        }
        tensors.push((name.to_string(), shape, values));
    }
    let dir = temp_dir("tgrow");
    let path = dir.join("taehv_tgrow.safetensors");
    write_safetensors(&path, &tensors);
    let config = tiny_config();
    let info = check_checkpoint(&path, &config).unwrap();
    assert_eq!(
        info.patched_tgrow,
        vec!["decoder.7.conv.weight".to_string()]
    );
    let device = Device::flex();
    let patched = load_taehv(&path, &config, &device, Dtype::F32).unwrap();
    let original = load(&device);
    let latents = Tensor::<5>::random([1, 2, 16, 2, 3], Distribution::Default, &device);
    assert_eq!(
        to_f32s(patched.decode_raw(latents.clone()).unwrap()),
        to_f32s(original.decode_raw(latents).unwrap())
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn expected_keys_match_the_real_taew2_1_manifest() {
    let m = Manifest::open("taew2_1_pth.json");
    let keys = expected_keys(&TaehvConfig::taew2_1(), true);
    assert_eq!(keys.len(), 128);
    m.assert_key_table(&keys);
    let params = |enc: bool| -> u64 {
        expected_keys(&TaehvConfig::taew2_1(), enc)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    };
    assert_eq!(params(false), m.json["decoder_params"].as_u64().unwrap());
    assert_eq!(
        params(true) - params(false),
        m.json["encoder_params"].as_u64().unwrap()
    );
}

#[test]
fn expected_keys_match_the_fixture_weights() {
    let found = list_tensors(&weights(), &TensorFile::Safetensors).unwrap();
    let ours: BTreeMap<String, Vec<usize>> =
        expected_keys(&tiny_config(), false).into_iter().collect();
    assert_eq!(ours, found);
}

fn module_tensors(model: &Taehv) -> BTreeMap<String, Vec<f32>> {
    model
        .collect(None, None, false)
        .iter()
        .map(|t| {
            let data = bridge::to_data(t).unwrap();
            (
                t.name.clone(),
                data.convert::<f32>().try_to_vec::<f32>().unwrap(),
            )
        })
        .collect()
}

fn tiny_with_encoder() -> TaehvConfig {
    TaehvConfig {
        encoder_width: 8,
        ..tiny_config()
    }
}

#[test]
fn every_checkpoint_key_reaches_its_parameter_with_the_encoder() {
    let config = tiny_with_encoder();
    let keys = expected_keys(&config, true);
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, s))| {
            let n: usize = s.iter().product();
            let values = (0..n)
                .map(|j| ((i * 1000 + j) as f32 * 0.37).sin())
                .collect();
            (k.clone(), s.clone(), values)
        })
        .collect();
    let dir = temp_dir("encoder");
    let path = dir.join("taehv_full.safetensors");
    write_safetensors(&path, &tensors);
    let info = check_checkpoint(&path, &config).unwrap();
    assert!(info.has_encoder && info.patched_tgrow.is_empty());
    let model = load_taehv(&path, &config, &Device::flex(), Dtype::F32).unwrap();
    assert!(model.encoder.is_some());
    let loaded = module_tensors(&model);
    let paths = module_paths(&config, true);
    assert_eq!(
        loaded.len(),
        keys.len(),
        "the module has exactly the checkpoint's tensors"
    );
    for (key, _, values) in &tensors {
        let path = &paths[key];
        assert_eq!(&loaded[path], values, "{key} -> {path}");
    }

    // A file with only part of the encoder lists every missing encoder tensor.
    let partial: Vec<_> = tensors
        .iter()
        .filter(|(k, _, _)| !k.starts_with("encoder.") || k.starts_with("encoder.0."))
        .cloned()
        .collect();
    write_safetensors(&path, &partial);
    let err = load_taehv(&path, &config, &Device::flex(), Dtype::F32).unwrap_err();
    match &err {
        VaeError::Checkpoint { problems, .. } => {
            assert_eq!(problems.missing.len(), keys.len() - partial.len(), "{err}");
        }
        other => panic!("expected a checkpoint error, got {other}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn encoder_shapes_padding_determinism_and_streaming() {
    let device = Device::flex();
    let config = tiny_with_encoder();
    let model = Taehv::new(&config, true, &device).unwrap();
    let frames = Tensor::<5>::random([1, 5, 3, 16, 24], Distribution::Default, &device);
    let latents = model.encode_video(frames.clone()).unwrap();
    assert_eq!(latents.dims(), [1, 2, 16, 2, 3]);
    assert_eq!(
        to_f32s(latents.clone()),
        to_f32s(model.encode_video(frames.clone()).unwrap())
    );
    // Padding repeats the last frame up to a multiple of 4.
    let last = frames.clone().narrow(1, 4, 1);
    let padded = Tensor::cat(vec![frames.clone(), last.clone(), last.clone(), last], 1);
    let explicit = model.encode_video(padded.clone()).unwrap();
    assert_eq!(to_f32s(latents), to_f32s(explicit.clone()));
    // Frames fed piece by piece give the same latents.
    let encoder = model.encoder.as_ref().unwrap();
    let mut memory = EncoderMemory::default();
    let mut parts = Vec::new();
    for (start, len) in [(0, 1), (1, 2), (3, 4), (7, 1)] {
        if let Some(z) = encoder.forward(padded.clone().narrow(1, start, len), &mut memory) {
            parts.push(z);
        }
    }
    check(&[cmp("encoder streamed", Tensor::cat(parts, 1), explicit)]);
    // Wrong inputs are errors.
    let gray = Tensor::<5>::zeros([1, 4, 1, 16, 16], &device);
    assert!(matches!(
        model.encode_video(gray),
        Err(VaeError::InvalidInput(_))
    ));
}

fn checkpoint_error(path: &Path, config: &TaehvConfig) -> String {
    let err = load_taehv(path, config, &Device::flex(), Dtype::F32).unwrap_err();
    assert!(
        matches!(err, VaeError::Checkpoint { .. } | VaeError::Load { .. }),
        "{err}"
    );
    err.to_string()
}

#[test]
fn bad_files_give_clear_errors() {
    let config = tiny_config();
    let fixtures = workspace_fixtures();
    let e = checkpoint_error(&fixtures.join("no_such_taehv.safetensors"), &config);
    assert!(e.contains("does not exist"), "{e}");

    let dir = temp_dir("bad");
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"definitely not a checkpoint").unwrap();
    let e = checkpoint_error(&garbage, &config);
    assert!(e.contains("not a safetensors file"), "{e}");
    let garbage_pth = dir.join("garbage.pth");
    std::fs::write(&garbage_pth, b"definitely not a checkpoint").unwrap();
    let e = checkpoint_error(&garbage_pth, &config);
    assert!(e.contains("garbage.pth"), "{e}");
    std::fs::remove_dir_all(&dir).ok();

    // Another model's weights: every TAEHV tensor missing, every other one unexpected.
    let e = checkpoint_error(&fixtures.join("dit_tiny.safetensors"), &config);
    assert!(
        e.contains("missing (64)") && e.contains("unexpected ("),
        "{e}"
    );
    // A pickle with `encoder.*` tensors: the TAEHV encoder is expected too (64 + 64 tensors).
    let e = checkpoint_error(&fixtures.join("vae_tiny.pth"), &config);
    assert!(
        e.contains("missing (128)") && e.contains("unexpected (194)"),
        "{e}"
    );

    // A configuration that does not fit: all mis-shaped tensors at once.
    let narrow = TaehvConfig {
        n_f: [32, 16, 8, 4],
        ..config.clone()
    };
    let e = checkpoint_error(&weights(), &narrow);
    assert!(e.contains("wrong shape (2)"), "{e}");
    assert!(
        e.contains("decoder.20.weight: expected [4, 8, 3, 3], found [8, 8, 3, 3]"),
        "{e}"
    );
    assert!(
        e.contains("decoder.22.weight: expected [3, 4, 3, 3], found [3, 8, 3, 3]"),
        "{e}"
    );

    // A TGrow weight with fewer rows than needed cannot be patched.
    let more_time = TaehvConfig {
        decoder_time_upscale: [true, true, true],
        ..config
    };
    let e = checkpoint_error(&weights(), &more_time);
    assert!(
        e.contains("decoder.7.conv.weight: expected [64, 32, 1, 1], found [32, 32, 1, 1]"),
        "{e}"
    );
}
