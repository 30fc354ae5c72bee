//! Loading umT5 weights from `models_t5_umt5-xxl-enc-bf16.pth` (a `torch.save` pickle of the
//! state dict) or a safetensors file with the same names.
//!
//! Every load first compares the file's tensor names and shapes with [`expected_keys`] and
//! reports all missing, unexpected and mis-shaped tensors in one [`TextError::Checkpoint`].
//! Tensors are applied through `burn::store` (Linear weights transposed by the PyTorch adapter;
//! `ffn.gate.0` becomes the module's `ffn.gate`) on the CPU, kept in their storage dtype and
//! moved to the device.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::Device;
use sf_device::checkpoint::{self, TensorFile};
use sf_device::{CheckpointProblems, Dtype, Precision, cast_module};

use crate::block::T5Block;
use crate::encoder::UmT5Encoder;
use crate::{TextError, UmT5Config};

/// Checkpoint name -> module path: the Sequential index of the gate is dropped.
const GATE: (&str, &str) = (r"^blocks\.(\d+)\.ffn\.gate\.0\.", "blocks.${1}.ffn.gate.");

/// Every tensor of a Wan `T5Encoder` checkpoint for `config` with its PyTorch shape, in the order
/// of `T5Encoder.state_dict()`.
pub fn expected_keys(config: &UmT5Config) -> Vec<(String, Vec<usize>)> {
    let c = config;
    let (d, a, f) = (c.dim, c.dim_attn, c.dim_ffn);
    let mut keys = vec![("token_embedding.weight".to_string(), vec![c.vocab, d])];
    if c.shared_pos {
        keys.push((
            "pos_embedding.embedding.weight".into(),
            vec![c.num_buckets, c.num_heads],
        ));
    }
    for i in 0..c.num_layers {
        let p = format!("blocks.{i}");
        keys.push((format!("{p}.norm1.weight"), vec![d]));
        for proj in ["q", "k", "v"] {
            keys.push((format!("{p}.attn.{proj}.weight"), vec![a, d]));
        }
        keys.push((format!("{p}.attn.o.weight"), vec![d, a]));
        keys.push((format!("{p}.norm2.weight"), vec![d]));
        keys.push((format!("{p}.ffn.gate.0.weight"), vec![f, d]));
        keys.push((format!("{p}.ffn.fc1.weight"), vec![f, d]));
        keys.push((format!("{p}.ffn.fc2.weight"), vec![d, f]));
        if !c.shared_pos {
            keys.push((
                format!("{p}.pos_embedding.embedding.weight"),
                vec![c.num_buckets, c.num_heads],
            ));
        }
    }
    keys.push(("norm.weight".into(), vec![d]));
    keys
}

fn read_error(e: checkpoint::ReadError) -> TextError {
    TextError::Load {
        path: e.path,
        message: e.message,
    }
}

/// Compares the file's tensors with [`expected_keys`] (all problems in one error) and returns
/// how the file stores them.
pub fn check_checkpoint(path: &Path, config: &UmT5Config) -> Result<TensorFile, TextError> {
    let file = TensorFile::from_extension(path);
    let found = checkpoint::list_tensors(path, &file).map_err(read_error)?;
    let expected: BTreeMap<String, Vec<usize>> = expected_keys(config).into_iter().collect();
    let problems = checkpoint::compare_keys(&found, &expected, str::to_string);
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(TextError::Checkpoint {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// Applies the tensors of `path` to `module` (on the CPU), renaming with `patterns`.
pub(crate) fn apply<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    file: &TensorFile,
    patterns: &[(&str, &str)],
) -> Result<ApplyResult, TextError> {
    let remapper = checkpoint::remapper(patterns).map_err(TextError::Config)?;
    let load = |message: String| TextError::Load {
        path: path.to_path_buf(),
        message,
    };
    let result = match file {
        TensorFile::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| load(e.to_string()))?
        }
        TensorFile::Pickle { top_level_key } => {
            let mut store = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            if let Some(key) = top_level_key {
                store = store.with_top_level_key(key.as_str());
            }
            module
                .load_from(&mut store)
                .map_err(|e| load(e.to_string()))?
        }
    };
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(TextError::Checkpoint {
            path: path.to_path_buf(),
            problems: CheckpointProblems {
                missing: result.missing.iter().map(|(p, _)| p.clone()).collect(),
                other: result.errors.iter().map(|e| e.to_string()).collect(),
                ..CheckpointProblems::default()
            },
        });
    }
    Ok(result)
}

/// Casts to `storage` on the CPU, then moves to `device`.
pub(crate) fn place<M: Module>(module: M, storage: Dtype, device: &Device) -> M {
    let module = cast_module(module, storage);
    if *device == Device::flex() {
        module
    } else {
        module.to_device(device)
    }
}

/// Checks that `device` can hold and compute in `precision`.
pub(crate) fn check_precision(device: &Device, precision: Precision) -> Result<(), TextError> {
    for dtype in [precision.storage, precision.compute] {
        if !device.supports_dtype(dtype.float_dtype()) {
            return Err(TextError::UnsupportedDtype {
                dtype,
                device: format!("{device:?}"),
            });
        }
    }
    Ok(())
}

/// [`UmT5Encoder::load`].
pub(crate) fn load_encoder(
    path: &Path,
    config: &UmT5Config,
    device: &Device,
    precision: Precision,
) -> Result<UmT5Encoder, TextError> {
    config.validate()?;
    check_precision(device, precision)?;
    let file = check_checkpoint(path, config)?;
    let mut encoder = UmT5Encoder::new(config, &Device::flex())?;
    apply(&mut encoder, path, &file, &[GATE])?;
    Ok(place(encoder, precision.storage, device)
        .with_compute_dtype(precision.compute.float_dtype()))
}

/// Block `index` alone, read from `path` (only its tensors are read), stored in `storage` on
/// `device`.
pub(crate) fn load_block(
    path: &Path,
    file: &TensorFile,
    config: &UmT5Config,
    index: usize,
    storage: Dtype,
    device: &Device,
) -> Result<T5Block, TextError> {
    let own = format!(r"^blocks\.{index}\.");
    let mut block = T5Block::new(config, &Device::flex());
    apply(&mut block, path, file, &[GATE, (own.as_str(), "")])?;
    Ok(place(block, storage, device))
}
