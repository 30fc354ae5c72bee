//! The expected checkpoint keys: the real preset equals the umT5-XXL manifest exactly, the tiny
//! fixtures pass the check, and a wrong file gets one error listing every problem.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use sf_device::safetensors;
use sf_testkit::checks::text;
use sf_testkit::{Manifest, open_workspace_fixture};
use sf_text::{TextError, UmT5Config, check_checkpoint, expected_keys};

#[test]
fn real_preset_equals_the_manifest() {
    let manifest = Manifest::open("umt5_xxl_enc_bf16_pth.json");
    let config = UmT5Config::umt5_xxl();
    assert_eq!(
        sf_testkit::configs::umt5(manifest.config()).unwrap(),
        config
    );
    let keys = expected_keys(&config);
    manifest.assert_key_table(&keys);
    let params: u64 = keys
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(params, config.num_params());
}

#[test]
fn tiny_fixtures_pass_the_check() {
    let weights = open_workspace_fixture("t5_tiny.safetensors");
    text::weights(&weights, &burn::tensor::Device::flex()).assert_complete();
    text::pth_keys(&common::fixture("t5_tiny.pth")).assert_complete();
    let config = common::tiny_config();
    // A configuration the file does not have: every block-1 tensor is unexpected.
    let one_layer = UmT5Config {
        num_layers: 1,
        ..config
    };
    let err = check_checkpoint(&common::fixture("t5_tiny.pth"), &one_layer).unwrap_err();
    let TextError::Checkpoint { problems, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(problems.unexpected.len(), 10);
    assert!(problems.missing.is_empty());
}

#[test]
fn shared_position_table_moves_to_the_top() {
    let config = UmT5Config {
        shared_pos: true,
        num_layers: 2,
        ..UmT5Config::umt5_xxl()
    };
    let names: BTreeSet<String> = expected_keys(&config).into_iter().map(|(k, _)| k).collect();
    assert!(names.contains("pos_embedding.embedding.weight"));
    assert!(
        !names
            .iter()
            .any(|k| k.starts_with("blocks.") && k.contains("pos_embedding"))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let config = common::tiny_config();
    let dir = common::temp_dir("keys");
    let path = dir.join("broken.safetensors");
    let mut tensors: Vec<(String, &str, Vec<usize>)> = expected_keys(&config)
        .into_iter()
        .filter(|(k, _)| k != "norm.weight")
        .map(|(k, s)| {
            if k == "blocks.0.attn.q.weight" {
                (k, "F32", vec![s[0], s[1] + 1])
            } else if k == "blocks.1.ffn.gate.0.weight" {
                ("blocks.1.ffn.gate.weight".to_string(), "F32", s)
            } else {
                (k, "F32", s)
            }
        })
        .collect();
    tensors.push(("extra.weight".into(), "F32", vec![2]));
    let mut w = safetensors::Writer::create(&path, &tensors, &BTreeMap::new()).unwrap();
    for (name, _, shape) in &tensors {
        w.write(name, &vec![0u8; 4 * shape.iter().product::<usize>()])
            .unwrap();
    }
    w.finish().unwrap();
    let err = check_checkpoint(&path, &config).unwrap_err();
    let text = err.to_string();
    let TextError::Checkpoint { problems, .. } = &err else {
        panic!("{text}")
    };
    assert_eq!(
        problems.missing,
        ["blocks.1.ffn.gate.0.weight", "norm.weight"]
    );
    assert_eq!(
        problems.unexpected,
        ["blocks.1.ffn.gate.weight", "extra.weight"]
    );
    assert_eq!(problems.mismatched.len(), 1);
    assert!(text.contains("blocks.0.attn.q.weight"), "{text}");
    let device = burn::tensor::Device::flex();
    let precision = sf_text::Precision::uniform(sf_text::Dtype::F32);
    assert!(matches!(
        sf_text::UmT5Encoder::load(&path, &config, &device, precision),
        Err(TextError::Checkpoint { .. })
    ));
    assert!(matches!(
        sf_text::LayerStreamingEncoder::open(dir.join("absent.pth"), &config, &device, precision),
        Err(TextError::Load { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}
