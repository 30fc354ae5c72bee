//! Loading TAEHV weights (`taew2_1.pth` pickle or `taew2_1.safetensors`, upstream key names).
//!
//! This file holds the layer table ([`expected_keys`], [`module_paths`]) and TAEHV's two
//! special cases, as data for [`sf_device::Checkpoint`], which checks and loads (every missing,
//! unexpected and mis-shaped tensor in one [`VaeError::Checkpoint`]; parameters cast on the
//! host, then moved):
//! - the encoder is expected, and loaded, when the file has `encoder.*` tensors (all of them);
//! - a TGrow weight with more output rows than the configuration needs (a checkpoint trained
//!   with more temporal upscaling) keeps its LAST rows, as upstream `patch_tgrow_layers` does.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use sf_device::Dtype;
use sf_device::checkpoint::{self, Checkpoint, TensorFile};

use super::config::{BLOCKS_PER_STAGE, STAGES, TaehvConfig};
use super::model::Taehv;
use crate::VaeError;

/// One parameterised layer: its checkpoint prefix, its module path and its weight shape.
struct Layer {
    key: String,
    path: String,
    weight: Vec<usize>,
    bias: bool,
}

fn layer(key: String, path: String, weight: [usize; 4], bias: bool) -> Layer {
    Layer {
        key,
        path,
        weight: weight.to_vec(),
        bias,
    }
}

/// The three convolutions of a MemBlock `n → n` (`conv.0`, `conv.2`, `conv.4`).
fn memblock(layers: &mut Vec<Layer>, key: &str, path: &str, n: usize) {
    for (i, c_in) in [2 * n, n, n].into_iter().enumerate() {
        layers.push(layer(
            format!("{key}.conv.{}", 2 * i),
            format!("{path}.conv.{i}"),
            [n, c_in, 3, 3],
            true,
        ));
    }
}

/// Every parameterised layer in `state_dict()` order (encoder first, as upstream).
fn layers(config: &TaehvConfig, with_encoder: bool) -> Vec<Layer> {
    let mut out = Vec::new();
    let (lat, pix) = (config.latent_channels, config.pixel_channels());
    if with_encoder {
        let w = config.encoder_width;
        out.push(layer(
            "encoder.0".into(),
            "encoder.conv_in".into(),
            [w, pix, 3, 3],
            true,
        ));
        for s in 0..STAGES {
            let base = 2 + 5 * s;
            let path = format!("encoder.stages.{s}");
            out.push(layer(
                format!("encoder.{base}.conv"),
                format!("{path}.tpool.conv"),
                [w, w * config.tpool_stride(s), 1, 1],
                false,
            ));
            out.push(layer(
                format!("encoder.{}", base + 1),
                format!("{path}.conv"),
                [w, w, 3, 3],
                false,
            ));
            for k in 0..BLOCKS_PER_STAGE {
                let key = format!("encoder.{}", base + 2 + k);
                memblock(&mut out, &key, &format!("{path}.blocks.{k}"), w);
            }
        }
        let last = 2 + 5 * STAGES;
        out.push(layer(
            format!("encoder.{last}"),
            "encoder.conv_out".into(),
            [lat, w, 3, 3],
            true,
        ));
    }
    let n = config.n_f;
    out.push(layer(
        "decoder.1".into(),
        "decoder.conv_in".into(),
        [n[0], lat, 3, 3],
        true,
    ));
    for s in 0..STAGES {
        let base = 3 + 6 * s;
        let path = format!("decoder.stages.{s}");
        for k in 0..BLOCKS_PER_STAGE {
            let key = format!("decoder.{}", base + k);
            memblock(&mut out, &key, &format!("{path}.blocks.{k}"), n[s]);
        }
        out.push(layer(
            format!("decoder.{}.conv", base + 4),
            format!("{path}.tgrow.conv"),
            [n[s] * config.tgrow_stride(s), n[s], 1, 1],
            false,
        ));
        out.push(layer(
            format!("decoder.{}", base + 5),
            format!("{path}.conv"),
            [n[s + 1], n[s], 3, 3],
            false,
        ));
    }
    let last = 4 + 6 * STAGES;
    out.push(layer(
        format!("decoder.{last}"),
        "decoder.conv_out".into(),
        [pix, n[3], 3, 3],
        true,
    ));
    out
}

/// Every tensor of an upstream TAEHV checkpoint for `config` (with or without the encoder),
/// with its PyTorch shape, in `state_dict()` order.
pub fn expected_keys(config: &TaehvConfig, with_encoder: bool) -> Vec<(String, Vec<usize>)> {
    let mut keys = Vec::new();
    for l in layers(config, with_encoder) {
        keys.push((format!("{}.weight", l.key), l.weight.clone()));
        if l.bias {
            keys.push((format!("{}.bias", l.key), vec![l.weight[0]]));
        }
    }
    keys
}

/// The [`Taehv`] parameter path of every upstream key (`decoder.3.conv.2.weight` →
/// `decoder.stages.0.blocks.0.conv.1.weight`).
pub fn module_paths(config: &TaehvConfig, with_encoder: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in layers(config, with_encoder) {
        out.insert(format!("{}.weight", l.key), format!("{}.weight", l.path));
        if l.bias {
            out.insert(format!("{}.bias", l.key), format!("{}.bias", l.path));
        }
    }
    out
}

/// The checkpoint keys of the TGrow weights (`decoder.{7,13,19}.conv.weight`).
fn tgrow_keys(config: &TaehvConfig) -> Vec<String> {
    layers(config, false)
        .into_iter()
        .filter(|l| l.path.contains(".tgrow."))
        .map(|l| format!("{}.weight", l.key))
        .collect()
}

/// What [`check_checkpoint`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The file has the encoder's tensors.
    pub has_encoder: bool,
    /// TGrow weights with more rows than needed, whose last rows will be kept.
    pub patched_tgrow: Vec<String>,
}

/// What TAEHV for `config` reads from `path`, and whether that includes the encoder (any
/// `encoder.*` tensor in the file).
fn checkpoint(path: &Path, config: &TaehvConfig) -> Result<(Checkpoint<'static>, bool), VaeError> {
    config.validate()?;
    let file = TensorFile::from_extension(path);
    let has_encoder = checkpoint::list_tensors(path, &file)?
        .keys()
        .any(|k| k.starts_with("encoder."));
    let layers = layers(config, has_encoder);
    // One exact remap per layer: `decoder.3.conv.2.` -> `decoder.stages.0.blocks.0.conv.1.`.
    let to_module = layers.iter().map(|l| {
        (
            format!("^{}\\.", l.key.replace('.', "\\.")),
            format!("{}.", l.path),
        )
    });
    let weights = Checkpoint::new(path, file, expected_keys(config, has_encoder))
        .module_paths(to_module)
        .keep_last_rows(tgrow_keys(config));
    Ok((weights, has_encoder))
}

/// Compares a checkpoint's tensors with [`expected_keys`]; all problems in one error. The
/// encoder's tensors are expected when any `encoder.*` tensor is present.
pub fn check_checkpoint(path: &Path, config: &TaehvConfig) -> Result<CheckpointInfo, VaeError> {
    let (weights, has_encoder) = checkpoint(path, config)?;
    Ok(CheckpointInfo {
        has_encoder,
        patched_tgrow: weights.check()?.trimmed,
    })
}

/// Loads TAEHV for `config` from `path` (`.safetensors`, otherwise a `torch.save` pickle of the
/// state dict), casts it to `dtype` on the host and moves it to `device`.
pub fn load_taehv(
    path: impl AsRef<Path>,
    config: &TaehvConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<Taehv, VaeError> {
    let (weights, has_encoder) = checkpoint(path.as_ref(), config)?;
    let model = Taehv::new(config, has_encoder, &Device::flex())?;
    Ok(weights.load(model, dtype, device)?)
}
