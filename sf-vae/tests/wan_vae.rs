//! Wan2.1 VAE: parity with `fixtures/vae_tiny_io.safetensors` (decode, streaming, encode) on
//! Flex and wgpu, checkpoint loading (`.pth`, `.safetensors`, decoder-only, the RMS-norm
//! `gamma`s), the real key manifest, and clear errors for bad files and inputs.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{
    CheckResult, Fixture, Tolerance, compare_f32, to_f32s, workspace_fixtures,
};
use sf_vae::wan::{
    ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, WanVaeDecoder, expected_keys,
    load_wan_vae,
};
use sf_vae::{VaeError, VideoDecoder};

fn fixture(name: &str) -> PathBuf {
    workspace_fixtures().join(name)
}

fn io() -> Fixture {
    Fixture::open(fixture("vae_tiny_io.safetensors")).unwrap()
}

fn config() -> WanVaeConfig {
    let weights = Fixture::open(fixture("vae_tiny.safetensors")).unwrap();
    WanVaeConfig::from_fixture_config(weights.config()).unwrap()
}

fn load(file: &str, parts: VaeParts, device: &Device) -> WanVae {
    load_wan_vae(fixture(file), &config(), parts, device, Dtype::F32).unwrap()
}

/// A fixture tensor `[B, C, T, H, W]` as time-major `[B, T, C, H, W]`.
fn time_major(fx: &Fixture, name: &str, device: &Device) -> Tensor<5> {
    fx.tensor::<5>(name, device).unwrap().swap_dims(1, 2)
}

/// Compares time-major `out` with the fixture's `[B, C, T, H, W]` tensor under the f32 rule.
fn check(fx: &Fixture, label: &str, out: Tensor<5>, name: &str) -> CheckResult {
    let r = compare_f32(
        "vae_tiny_io",
        label,
        &to_f32s(out.swap_dims(1, 2)),
        &fx.f32s(name).unwrap(),
        Tolerance::F32,
    );
    println!("{r}");
    r
}

fn max_abs_diff(a: Tensor<5>, b: Tensor<5>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    to_f32s(a)
        .iter()
        .zip(to_f32s(b))
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn decode_raw(vae: &WanVae, z: Tensor<5>, strategy: ConvStrategy) -> Tensor<5> {
    let options = DecodeOptions {
        strategy,
        zero_history: false,
    };
    let mut cache = options.new_cache(&vae.device());
    vae.decode_step(z, &mut cache).unwrap()
}

/// Every decode and encode case of the fixture, on `device`.
fn parity_cases(device: &Device, strategy: ConvStrategy) -> Vec<CheckResult> {
    let fx = io();
    let vae = load("vae_tiny.safetensors", VaeParts::Full, device);
    let z = time_major(&fx, "z", device);
    let options = DecodeOptions {
        strategy,
        zero_history: false,
    };
    let mut results = vec![
        check(
            &fx,
            "video_raw",
            decode_raw(&vae, z.clone(), strategy),
            "video_raw",
        ),
        check(
            &fx,
            "video",
            vae.decode(z.clone(), options).unwrap(),
            "video",
        ),
        check(
            &fx,
            "video_first_latent_frame_raw",
            decode_raw(&vae, z.narrow(1, 0, 1), strategy),
            "video_first_latent_frame_raw",
        ),
    ];
    let video = time_major(&fx, "encode.video", device);
    results.push(check(
        &fx,
        "encode.mu",
        vae.encode(video, strategy).unwrap(),
        "encode.mu",
    ));
    results
}

#[test]
fn auto_strategy_is_the_fastest_measured_per_backend() {
    // docs/decoders.md: burn-flex's conv3d beats both conv2d lowerings on the CPU.
    assert_eq!(
        ConvStrategy::Auto.resolve(&Device::flex()),
        ConvStrategy::Conv3d
    );
    assert_eq!(
        ConvStrategy::Conv2dSum.resolve(&Device::flex()),
        ConvStrategy::Conv2dSum
    );
}

#[test]
fn decode_and_encode_match_fixture_on_flex() {
    let device = Device::flex();
    for strategy in [
        ConvStrategy::Auto,
        ConvStrategy::Conv3d,
        ConvStrategy::Conv2dSum,
        ConvStrategy::Conv2dStacked,
    ] {
        for r in parity_cases(&device, strategy) {
            assert!(r.passed, "{strategy:?}: {r}");
        }
    }
    // The end-to-end case: the `global` rollout's latents, decoded and clamped.
    let fx = io();
    let vae = load("vae_tiny.safetensors", VaeParts::Full, &device);
    let latents = time_major(&fx, "rollout_latents", &device);
    let video = vae.decode(latents, DecodeOptions::default()).unwrap();
    let r = check(&fx, "rollout_video", video, "rollout_video");
    assert!(r.passed, "{r}");
}

#[cfg(feature = "wgpu")]
#[test]
fn decode_and_encode_match_fixture_on_wgpu() {
    let Some(device) = common::wgpu_device() else {
        return;
    };
    for r in parity_cases(&device, ConvStrategy::Auto) {
        assert!(r.passed, "{r}");
    }
}

/// Decodes `latents` through a [`WanVaeDecoder`] in chunks of the given sizes.
fn stream(vae: WanVae, latents: &Tensor<5>, sizes: &[usize], zero_history: bool) -> Vec<Tensor<5>> {
    let options = DecodeOptions {
        zero_history,
        ..DecodeOptions::default()
    };
    let mut decoder = WanVaeDecoder::new(vae, options);
    assert_eq!(decoder.kind(), sf_vae::DecoderKind::WanVae);
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let chunk = latents.clone().narrow(1, start, n);
            start += n;
            decoder.decode_chunk(chunk).unwrap()
        })
        .collect()
}

#[test]
fn streaming_equals_offline_for_any_chunking() {
    let device = Device::flex();
    let fx = io();
    let latents = time_major(&fx, "rollout_latents", &device);
    let frames = latents.dims()[1];
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let offline = (vae
        .decode(latents.clone(), DecodeOptions::default())
        .unwrap()
        + 1.0)
        / 2.0;
    let expected_t = 1 + 4 * (frames - 1);
    assert_eq!(offline.dims()[1], expected_t);
    let plans: Vec<Vec<usize>> = vec![vec![1; frames], vec![2; frames / 2], vec![2, 1, 3]];
    for sizes in plans {
        assert_eq!(sizes.iter().sum::<usize>(), frames, "{sizes:?}");
        let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
        let chunks = stream(vae, &latents, &sizes, false);
        for (i, (chunk, n)) in chunks.iter().zip(&sizes).enumerate() {
            let want = if i == 0 { 1 + 4 * (n - 1) } else { 4 * n };
            assert_eq!(chunk.dims()[1], want, "chunk {i} of {sizes:?}");
        }
        let streamed = Tensor::cat(chunks, 1);
        let diff = max_abs_diff(streamed.clone(), offline.clone());
        println!("chunks {sizes:?}: max|streamed - offline| = {diff:e}");
        assert_eq!(diff, 0.0, "chunks {sizes:?}");
        let values = to_f32s(streamed);
        assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // The [0, 1] output is (clamped fixture video + 1) / 2.
    let reference: Vec<f32> = fx
        .f32s("rollout_video")
        .unwrap()
        .iter()
        .map(|v| (v + 1.0) / 2.0)
        .collect();
    let r = compare_f32(
        "vae_tiny_io",
        "decode_chunk [0, 1]",
        &to_f32s(offline.swap_dims(1, 2)),
        &reference,
        Tolerance::F32,
    );
    assert!(r.passed, "{r}");
}

#[test]
fn reset_starts_a_new_video() {
    let device = Device::flex();
    let fx = io();
    let z = time_major(&fx, "z", &device);
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let mut decoder = WanVaeDecoder::new(vae, DecodeOptions::default());
    let first = decoder.decode_chunk(z.clone()).unwrap();
    let second = decoder.decode_chunk(z.clone()).unwrap();
    assert_eq!(first.dims()[1], 9);
    assert_eq!(second.dims()[1], 12);
    decoder.reset();
    let again = decoder.decode_chunk(z).unwrap();
    assert_eq!(max_abs_diff(first, again), 0.0);
}

#[test]
fn zero_history_variant_keeps_frame_counts() {
    let device = Device::flex();
    let fx = io();
    let latents = time_major(&fx, "rollout_latents", &device);
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let exact = stream(vae, &latents, &[3, 3], false);
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let zero = stream(vae, &latents, &[3, 3], true);
    for (a, b) in exact.iter().zip(&zero) {
        assert_eq!(a.dims(), b.dims());
    }
    let values = to_f32s(Tensor::cat(zero.clone(), 1));
    assert!(
        values
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
    );
    // Its first frames use a different temporal context, so they differ from the exact decode.
    let diff = max_abs_diff(exact[0].clone(), zero[0].clone());
    println!("zero-history vs exact, first chunk: max|diff| = {diff:e}");
    assert!(diff > 1e-4, "the zero-history cache made no difference");
}

#[test]
fn expected_keys_equal_the_real_manifest() {
    let text = std::fs::read_to_string(fixture("manifests/wan2_1_vae_pth.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: BTreeMap<String, Vec<usize>> = manifest["tensors"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect();
    let config = WanVaeConfig::wan2_1();
    let keys = expected_keys(&config, VaeParts::Full).unwrap();
    assert_eq!(
        keys.len(),
        manifest["num_tensors"].as_u64().unwrap() as usize
    );
    let got: BTreeMap<String, Vec<usize>> = keys.into_iter().collect();
    assert_eq!(got, want);
    let params = |keys: &[(String, Vec<usize>)]| -> u64 {
        keys.iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    };
    let full = expected_keys(&config, VaeParts::Full).unwrap();
    assert_eq!(params(&full), manifest["total_params"].as_u64().unwrap());
    let decoder = expected_keys(&config, VaeParts::DecoderOnly).unwrap();
    assert_eq!(
        params(&decoder),
        manifest["decoder_plus_conv2_params"].as_u64().unwrap()
    );
    assert!(decoder.iter().all(|(k, _)| sf_vae::wan::is_decoder_key(k)));
    // The fixture config shrinks only `dim`: the same key set as the real file.
    let tiny: Vec<String> = expected_keys(&self::config(), VaeParts::Full)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(tiny.len(), want.len());
    assert!(tiny.iter().all(|k| want.contains_key(k)));
}

fn gammas(vae: &WanVae) -> Vec<(&'static str, Vec<f32>)> {
    use sf_vae::wan::blocks::VaeBlock;
    let residual = match &vae.decoder.middle[0] {
        VaeBlock::Residual(r) => r.norm1.gamma.val(),
        other => panic!("decoder.middle.0 is {other:?}"),
    };
    let attention = match &vae.decoder.middle[1] {
        VaeBlock::Attention(a) => a.norm.gamma.val(),
        other => panic!("decoder.middle.1 is {other:?}"),
    };
    let encoder_head = vae.encoder.as_ref().unwrap().head_norm.gamma.val();
    vec![
        ("decoder.middle.0.residual.0.gamma", to_f32s(residual)),
        ("decoder.middle.1.norm.gamma", to_f32s(attention)),
        (
            "decoder.head.0.gamma",
            to_f32s(vae.decoder.head_norm.gamma.val()),
        ),
        ("encoder.head.0.gamma", to_f32s(encoder_head)),
    ]
}

#[test]
fn gammas_load_from_pth_and_safetensors() {
    let device = Device::flex();
    let weights = Fixture::open(fixture("vae_tiny.safetensors")).unwrap();
    for file in ["vae_tiny.pth", "vae_tiny.safetensors"] {
        let vae = load(file, VaeParts::Full, &device);
        for (key, loaded) in gammas(&vae) {
            let stored = weights.f32s(key).unwrap();
            assert!(
                stored.iter().any(|v| (v - 1.0).abs() > 1e-3),
                "{key} is all ones: it would not prove the load"
            );
            assert_eq!(loaded, stored, "{file}: {key}");
        }
    }
}

#[test]
fn pth_and_safetensors_and_decoder_only_decode_the_same() {
    let device = Device::flex();
    let fx = io();
    let z = time_major(&fx, "z", &device);
    let reference = decode_raw(
        &load("vae_tiny.safetensors", VaeParts::Full, &device),
        z.clone(),
        ConvStrategy::Auto,
    );
    for (file, parts) in [
        ("vae_tiny.pth", VaeParts::Full),
        ("vae_tiny.pth", VaeParts::DecoderOnly),
        ("vae_tiny.safetensors", VaeParts::DecoderOnly),
    ] {
        let vae = load(file, parts, &device);
        assert_eq!(vae.encoder.is_some(), parts == VaeParts::Full);
        let out = decode_raw(&vae, z.clone(), ConvStrategy::Auto);
        assert_eq!(
            max_abs_diff(out, reference.clone()),
            0.0,
            "{file} {parts:?}"
        );
    }
    let decoder_only = load("vae_tiny.pth", VaeParts::DecoderOnly, &device);
    let video = time_major(&fx, "encode.video", &device);
    let err = decoder_only.encode(video, ConvStrategy::Auto).unwrap_err();
    assert!(matches!(err, VaeError::Config(_)), "{err}");
}

#[test]
fn bf16_weights_decode_close_to_f32() {
    let device = Device::flex();
    let fx = io();
    let z = time_major(&fx, "z", &device);
    let vae = load_wan_vae(
        fixture("vae_tiny.safetensors"),
        &config(),
        VaeParts::DecoderOnly,
        &device,
        Dtype::Bf16,
    )
    .unwrap();
    let out = vae.decode(z, DecodeOptions::default()).unwrap();
    let r = compare_f32(
        "vae_tiny_io",
        "video (bf16 weights and compute)",
        &to_f32s(out.swap_dims(1, 2)),
        &fx.f32s("video").unwrap(),
        Tolerance {
            rel: 0.1,
            abs: 1e-2,
        },
    );
    println!("{r}");
    assert!(r.passed, "{r}");
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sf-wan-vae-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies a safetensors file with its header edited by `edit`; the data of the tensors left in
/// the header is copied and their offsets recomputed.
fn edited_safetensors(
    src: &Path,
    dst: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let bytes = std::fs::read(src).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let data = &bytes[8 + n..];
    let mut entries: Vec<(String, usize, usize)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let o = &v["data_offsets"];
            let start = o[0].as_u64().unwrap() as usize;
            (k.clone(), start, o[1].as_u64().unwrap() as usize)
        })
        .collect();
    entries.sort_by_key(|e| e.1);
    let mut body = Vec::new();
    for (name, start, end) in entries {
        let from = body.len();
        body.extend_from_slice(&data[start..end]);
        header[&name]["data_offsets"] = serde_json::json!([from, body.len()]);
    }
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(body);
    std::fs::write(dst, out).unwrap();
}

fn load_error(path: &Path, config: &WanVaeConfig) -> String {
    let err = load_wan_vae(path, config, VaeParts::Full, &Device::flex(), Dtype::F32).unwrap_err();
    err.to_string()
}

#[test]
fn bad_checkpoints_give_one_clear_error() {
    let dir = temp_dir("errors");
    let src = fixture("vae_tiny.safetensors");
    let config = config();

    // A renamed tensor (missing + unexpected) and a wrong shape (with the same number of
    // elements, so the header stays consistent with the data), reported together.
    let edited = dir.join("edited.safetensors");
    edited_safetensors(&src, &edited, |h| {
        let v = h.remove("decoder.head.2.bias").unwrap();
        h.insert("decoder.head.2.offset".into(), v);
        h["conv2.weight"]["shape"] = serde_json::json!([16, 8, 1, 1, 2]);
    });
    let err = load_wan_vae(
        &edited,
        &config,
        VaeParts::Full,
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_err();
    let VaeError::Checkpoint { problems, .. } = &err else {
        panic!("expected a checkpoint error, got {err}");
    };
    assert_eq!(problems.missing, vec!["decoder.head.2.bias".to_string()]);
    assert_eq!(
        problems.unexpected,
        vec!["decoder.head.2.offset".to_string()]
    );
    assert_eq!(
        problems.mismatched,
        vec![(
            "conv2.weight".to_string(),
            vec![16, 16, 1, 1, 1],
            vec![16, 8, 1, 1, 2]
        )]
    );
    let text = err.to_string();
    assert!(text.contains("decoder.head.2.bias") && text.contains("expected [16, 16, 1, 1, 1]"));

    // The tiny file against the real configuration: every conv has the wrong shape.
    let text = load_error(&src, &WanVaeConfig::wan2_1());
    assert!(
        text.contains("wrong shape (") && text.contains("decoder.conv1.weight"),
        "{text}"
    );

    // A decoder-only file cannot give the full VAE, but loads decoder-only.
    let decoder_only = dir.join("decoder_only.safetensors");
    edited_safetensors(&src, &decoder_only, |h| {
        h.retain(|k, _| k == "__metadata__" || sf_vae::wan::is_decoder_key(k))
    });
    let text = load_error(&decoder_only, &config);
    assert!(
        text.contains("missing (") && text.contains("encoder.conv1.weight"),
        "{text}"
    );
    load_wan_vae(
        &decoder_only,
        &config,
        VaeParts::DecoderOnly,
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap();

    // Truncated files and a missing file.
    let bytes = std::fs::read(&src).unwrap();
    let short = dir.join("short.safetensors");
    std::fs::write(&short, &bytes[..1000]).unwrap();
    let text = load_error(&short, &config);
    assert!(text.contains("truncated"), "{text}");
    let pth = std::fs::read(fixture("vae_tiny.pth")).unwrap();
    let short_pth = dir.join("short.pth");
    std::fs::write(&short_pth, &pth[..pth.len() / 2]).unwrap();
    let text = load_error(&short_pth, &config);
    assert!(text.contains("short.pth"), "{text}");
    let text = load_error(&dir.join("absent.pth"), &config);
    assert!(text.contains("does not exist"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_inputs_are_errors() {
    let device = Device::flex();
    let vae = load("vae_tiny.safetensors", VaeParts::Full, &device);
    let wrong_channels = Tensor::<5>::zeros([1, 2, 8, 4, 6], &device);
    let err = vae
        .decode(wrong_channels, DecodeOptions::default())
        .unwrap_err();
    assert!(matches!(err, VaeError::InvalidInput(_)), "{err}");
    let two_frames = Tensor::<5>::zeros([1, 2, 3, 32, 48], &device);
    let err = vae.encode(two_frames, ConvStrategy::Auto).unwrap_err();
    assert!(err.to_string().contains("1 + 4k"), "{err}");
    let odd_size = Tensor::<5>::zeros([1, 1, 3, 30, 48], &device);
    assert!(vae.encode(odd_size, ConvStrategy::Auto).is_err());
    let mut bad = serde_json::to_value(WanVaeConfig::wan2_1()).unwrap();
    bad["z_dim"] = 8.into();
    assert!(WanVaeConfig::from_fixture_config(&bad).is_err());
}
