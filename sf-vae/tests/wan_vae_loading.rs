//! Wan2.1 VAE checkpoints: `.pth` and `.safetensors`, decoder-only, the RMS-norm `gamma`s,
//! the real key manifest, and one clear error for bad files.

use crate::common::wan::{config, decode_raw, fixture, io, load, max_abs_diff, tensor};

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sf_device::Dtype;
use sf_testkit::{Fixture, Manifest, to_f32s};
use sf_vae::VaeError;
use sf_vae::wan::{ConvStrategy, VaeParts, WanVae, WanVaeConfig, expected_keys, load_wan_vae};

#[test]
fn expected_keys_equal_the_real_manifest() {
    let manifest = Manifest::open("wan2_1_vae_pth.json");
    let config = WanVaeConfig::wan2_1();
    manifest.assert_key_table(&expected_keys(&config, VaeParts::Full).unwrap());
    let want = manifest.shapes(None);
    let params = |keys: &[(String, Vec<usize>)]| -> u64 {
        keys.iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    };
    let decoder = expected_keys(&config, VaeParts::DecoderOnly).unwrap();
    assert_eq!(
        params(&decoder),
        manifest.json["decoder_plus_conv2_params"].as_u64().unwrap()
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
    use sf_vae::wan::VaeBlock;
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
    let z = tensor(&fx, "z", &device);
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
    let video = tensor(&fx, "encode.video", &device);
    let err = decoder_only.encode(video, ConvStrategy::Auto).unwrap_err();
    assert!(matches!(err, VaeError::Config(_)), "{err}");
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
