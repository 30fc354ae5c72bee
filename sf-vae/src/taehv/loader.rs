//! Loading TAEHV weights (`taew2_1.pth` pickle or `taew2_1.safetensors`, upstream key names).
//!
//! Every load first compares the file's tensors with [`expected_keys`] and reports all missing,
//! unexpected and mis-shaped tensors in one [`VaeError::Checkpoint`]. The encoder is loaded when
//! the file has `encoder.*` tensors (all of them). A TGrow weight with more output rows than the
//! configuration needs (a checkpoint trained with more temporal upscaling) keeps its LAST rows,
//! as upstream `patch_tgrow_layers` does. Parameters are read and cast on the host, then moved.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::store::{ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore, bridge};
use burn::tensor::{Device, Tensor};
use sf_device::checkpoint::{self, TensorFile};
use sf_device::{Dtype, cast_module};

use super::config::{BLOCKS_PER_STAGE, STAGES, TaehvConfig};
use super::model::Taehv;
use crate::{CheckpointProblems, VaeError};

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

/// Compares a checkpoint's tensors with [`expected_keys`]; all problems in one error. The
/// encoder's tensors are expected when any `encoder.*` tensor is present.
pub fn check_checkpoint(path: &Path, config: &TaehvConfig) -> Result<CheckpointInfo, VaeError> {
    config.validate()?;
    let mut found = checkpoint::list_tensors(path, &TensorFile::from_extension(path))?;
    let has_encoder = found.keys().any(|k| k.starts_with("encoder."));
    let expected: BTreeMap<String, Vec<usize>> =
        expected_keys(config, has_encoder).into_iter().collect();
    let mut patched_tgrow = Vec::new();
    for key in tgrow_keys(config) {
        if let (Some(want), Some(shape)) = (expected.get(&key), found.get_mut(&key))
            && shape.len() == want.len()
            && shape[0] > want[0]
            && shape[1..] == want[1..]
        {
            *shape = want.clone();
            patched_tgrow.push(key);
        }
    }
    let problems = checkpoint::compare_keys(&found, &expected, str::to_string);
    if problems.is_empty() {
        Ok(CheckpointInfo {
            has_encoder,
            patched_tgrow,
        })
    } else {
        Err(VaeError::Checkpoint {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Keeps the last `rows` output rows of a TGrow weight `[R, C, 1, 1]` (upstream
/// `patch_tgrow_layers`); unchanged when it has `rows` or fewer.
pub fn patch_tgrow_weight(weight: Tensor<4>, rows: usize) -> Tensor<4> {
    let have = weight.dims()[0];
    if have > rows {
        weight.narrow(0, have - rows, rows)
    } else {
        weight
    }
}

fn not_tgrow(path: &str, _container: &str) -> bool {
    !path.contains(".tgrow.")
}

/// Applies every non-TGrow tensor through `store`, then the (patched) TGrow weights.
fn apply_store<S: ModuleStore>(
    store: &mut S,
    model: &mut Taehv,
    path: &Path,
    host: &Device,
) -> Result<(), VaeError>
where
    S::Error: std::fmt::Display,
{
    let load = |message: String| VaeError::Load {
        path: path.to_path_buf(),
        message,
    };
    let result = model.load_from(store).map_err(|e| load(e.to_string()))?;
    let mut problems = CheckpointProblems {
        missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
        unexpected: result.unused.clone(),
        mismatched: Vec::new(),
        other: result.errors.iter().map(|e| e.to_string()).collect(),
    };
    for s in 0..model.decoder.stages.len() {
        let name = format!("decoder.stages.{s}.tgrow.conv.weight");
        let rows = model.decoder.stages[s].tgrow.conv.weight.dims()[0];
        let data = match store.get_tensor(&name).map_err(|e| load(e.to_string()))? {
            Some(t) => bridge::to_data(t).map_err(|e| load(format!("{name}: {e}")))?,
            None => {
                problems.missing.push(name);
                continue;
            }
        };
        let dtype = data.dtype();
        let weight = Tensor::<4>::from_data(data, (host, dtype));
        model.decoder.stages[s].tgrow.conv.weight =
            Param::from_tensor(patch_tgrow_weight(weight, rows));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(VaeError::Checkpoint {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Loads TAEHV for `config` from `path` (`.safetensors`, otherwise a `torch.save` pickle of the
/// state dict), casts it to `dtype` on the host and moves it to `device`.
pub fn load_taehv(
    path: impl AsRef<Path>,
    config: &TaehvConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<Taehv, VaeError> {
    let path = path.as_ref();
    let info = check_checkpoint(path, config)?;
    let host = Device::flex();
    let mut model = Taehv::new(config, info.has_encoder, &host)?;
    let patterns: Vec<(String, String)> = layers(config, info.has_encoder)
        .into_iter()
        .map(|l| {
            (
                format!("^{}\\.", l.key.replace('.', "\\.")),
                format!("{}.", l.path),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = patterns
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let remapper = checkpoint::remapper(&refs).map_err(VaeError::Config)?;
    match TensorFile::from_extension(path) {
        TensorFile::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .remap(remapper)
                .map_indices_contiguous(false)
                .with_predicate(not_tgrow)
                .allow_partial(true)
                .validate(false);
            apply_store(&mut store, &mut model, path, &host)?;
        }
        TensorFile::Pickle { .. } => {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper)
                .map_indices_contiguous(false)
                .with_predicate(not_tgrow)
                .allow_partial(true)
                .validate(false);
            apply_store(&mut store, &mut model, path, &host)?;
        }
    }
    let model = cast_module(model, dtype);
    Ok(if *device == host {
        model
    } else {
        model.to_device(device)
    })
}
