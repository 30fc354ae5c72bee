//! Checkpoint key lists against the real-model manifests, module paths, and loader errors.

use crate::common;

use std::collections::BTreeMap;

use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use common::{fixture_path, tiny_config};
use safetensors::tensor::TensorView;
use safetensors::{Dtype as StDtype, SafeTensors};
use sf_device::Dtype;
use sf_models::{CheckpointFormat, ModelError, WanConfig, WanModel, expected_keys, load_wan_model};
use sf_models::{list_tensors, module_path};
use sf_testkit::Manifest;

#[test]
fn preset_keys_equal_the_real_manifests() {
    let config = WanConfig::wan2_1_t2v_1_3b();
    let keys = expected_keys(&config);
    let wan = Manifest::open("wan2_1_t2v_1_3b_dit.json");
    wan.assert_key_table(&keys);
    // The manifest's config is the preset.
    assert_eq!(sf_testkit::configs::dit(wan.config()).unwrap(), config);

    let sf = Manifest::open("self_forcing_dmd_pt.json");
    let prefixed: BTreeMap<String, Vec<usize>> = keys
        .iter()
        .map(|(k, s)| (format!("model.{k}"), s.clone()))
        .collect();
    assert_eq!(prefixed, sf.shapes(Some("generator_ema")));
    assert_eq!(prefixed, sf.shapes(Some("generator")));
}

#[test]
fn tiny_keys_equal_the_fixture_files() {
    let config = tiny_config();
    let ours: BTreeMap<String, Vec<usize>> = expected_keys(&config).into_iter().collect();
    let file = list_tensors(
        &fixture_path("dit_tiny.safetensors"),
        &CheckpointFormat::WanSafetensors,
    )
    .unwrap();
    assert_eq!(ours, file);
    let pt = list_tensors(
        &fixture_path("selfforcing_tiny.pt"),
        &CheckpointFormat::self_forcing_ema(),
    )
    .unwrap();
    let stripped: BTreeMap<String, Vec<usize>> = pt
        .into_iter()
        .map(|(k, s)| (k.strip_prefix("model.").unwrap().to_string(), s))
        .collect();
    assert_eq!(ours, stripped);
}

#[test]
fn module_paths_cover_every_key() {
    let config = tiny_config();
    let model = WanModel::new(&config, &Device::flex()).unwrap();
    let params: BTreeMap<String, usize> = model
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let n = t.shape.num_elements();
            (t.name, n)
        })
        .collect();
    let expected: BTreeMap<String, usize> = expected_keys(&config)
        .into_iter()
        .map(|(k, s)| (module_path(&k), s.iter().product::<usize>()))
        .collect();
    assert_eq!(params, expected);
}

/// Rewrites `dit_tiny.safetensors` without `drop`, with `reshape` given a wrong shape and with
/// an extra tensor.
fn broken_copy(dir: &std::path::Path, drop: &str, reshape: &str) -> std::path::PathBuf {
    let bytes = std::fs::read(fixture_path("dit_tiny.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let extra = vec![0u8; 4 * 3];
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    for (name, view) in st.tensors() {
        if name == drop {
            continue;
        }
        if name == reshape {
            let n = view.shape().iter().product::<usize>();
            let data = &view.data()[..4 * (n - 1)];
            views.push((
                name,
                TensorView::new(StDtype::F32, vec![n - 1], data).unwrap(),
            ));
            continue;
        }
        views.push((name, view));
    }
    views.push((
        "blocks.0.self_attn.extra".into(),
        TensorView::new(StDtype::F32, vec![3], &extra).unwrap(),
    ));
    let out = safetensors::serialize(views, None).unwrap();
    let path = dir.join("broken.safetensors");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn bad_checkpoints_list_every_problem_in_one_error() {
    let dir = std::env::temp_dir().join(format!("sf-models-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = broken_copy(&dir, "blocks.1.norm3.bias", "head.head.bias");
    let err = load_wan_model(
        &path,
        &CheckpointFormat::WanSafetensors,
        &tiny_config(),
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_err();
    let text = err.to_string();
    println!("{text}");
    match err {
        ModelError::Checkpoint { problems, .. } => {
            assert_eq!(problems.missing, ["blocks.1.norm3.bias"]);
            assert_eq!(problems.unexpected, ["blocks.0.self_attn.extra"]);
            let want = tiny_config().head_out_dim();
            assert_eq!(
                problems.mismatched,
                [("head.head.bias".to_string(), vec![want], vec![want - 1])]
            );
        }
        other => panic!("expected a checkpoint error, got {other}"),
    }
    for needle in [
        "blocks.1.norm3.bias",
        "blocks.0.self_attn.extra",
        "head.head.bias",
    ] {
        assert!(text.contains(needle), "{needle} not in {text}");
    }

    // A config that does not match the file (different depth) also lists the keys.
    let deeper = WanConfig {
        num_layers: 3,
        ..tiny_config()
    };
    let err = load_wan_model(
        fixture_path("dit_tiny.safetensors"),
        &CheckpointFormat::WanSafetensors,
        &deeper,
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_err();
    match &err {
        ModelError::Checkpoint { problems, .. } => {
            assert!(problems.missing.iter().all(|k| k.starts_with("blocks.2.")));
            assert_eq!(problems.missing.len(), 27);
        }
        other => panic!("expected a checkpoint error, got {other}"),
    }

    // Not a checkpoint at all, and a missing file: errors, not panics.
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    for (path, format) in [
        (junk.clone(), CheckpointFormat::WanSafetensors),
        (junk, CheckpointFormat::self_forcing_ema()),
        (dir.join("absent.pt"), CheckpointFormat::self_forcing_ema()),
    ] {
        let err = load_wan_model(&path, &format, &tiny_config(), &Device::flex(), Dtype::F32)
            .unwrap_err();
        assert!(matches!(err, ModelError::Load { .. }), "{err}");
    }
    // Names of the wrong format are all unexpected.
    let err = load_wan_model(
        fixture_path("dit_tiny_diffusers.safetensors"),
        &CheckpointFormat::WanSafetensors,
        &tiny_config(),
        &Device::flex(),
        Dtype::F32,
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Checkpoint { .. }), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
