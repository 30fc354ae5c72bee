//! Loading umT5 weights from `models_t5_umt5-xxl-enc-bf16.pth` (a `torch.save` pickle of the
//! state dict) or a safetensors file with the same names.
//!
//! The key table ([`expected_keys`]) uses the checkpoint's names, which are the module paths:
//! `blocks.7.attn.q.weight` is [`UmT5Encoder::blocks`]`[7]`.[`T5Block::attn`].`q.weight`; the one
//! exception is the gate's `Sequential` index (`ffn.gate.0.` is [`T5Block::ffn`]`.gate.`).
//! [`sf_device::Checkpoint`] checks and loads with it (every missing, unexpected and mis-shaped
//! tensor in one [`TextError::Checkpoint`], Linear weights transposed by the PyTorch adapter, kept
//! in their storage dtype and moved to the device). This module knows the modules; they do not
//! know it.

use std::path::Path;

use burn::tensor::Device;
use sf_device::checkpoint::{Checkpoint, TensorFile};
use sf_device::{Dtype, Precision};

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

/// What a module for `config` reads from `path`, stored as `file`.
fn checkpoint(path: &Path, file: TensorFile, config: &UmT5Config) -> Checkpoint<'static> {
    Checkpoint::new(path, file, expected_keys(config)).module_paths([GATE])
}

/// Compares the file's tensors with [`expected_keys`] (all problems in one error) and returns
/// how the file stores them.
pub fn check_checkpoint(path: &Path, config: &UmT5Config) -> Result<TensorFile, TextError> {
    let file = TensorFile::from_extension(path);
    checkpoint(path, file.clone(), config).check()?;
    Ok(file)
}

/// Checks `config`, and that `device` can hold and compute in `precision`.
pub(crate) fn check_request(
    config: &UmT5Config,
    device: &Device,
    precision: Precision,
) -> Result<(), TextError> {
    config.validate()?;
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

impl UmT5Encoder {
    /// Loads the weights of `path` (a `.safetensors` file, or a `torch.save` pickle such as
    /// `models_t5_umt5-xxl-enc-bf16.pth`), keeps them in `precision.storage` and computes in
    /// `precision.compute`. The file's tensors are checked first (one error lists every problem).
    pub fn load(
        path: impl AsRef<Path>,
        config: &UmT5Config,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, TextError> {
        let path = path.as_ref();
        check_request(config, device, precision)?;
        let encoder = UmT5Encoder::new(config, &Device::flex())?;
        // Loaded on the host, then placed: the token embedding may need row blocks there.
        let encoder = checkpoint(path, TensorFile::from_extension(path), config).load(
            encoder,
            precision.storage,
            &Device::flex(),
        )?;
        Ok(encoder
            .place(device)?
            .with_compute_dtype(precision.compute.float_dtype()))
    }
}

/// Block `index` alone, read from `path` (only its tensors are checked and read), stored in
/// `storage` on `device`.
pub(crate) fn load_block(
    path: &Path,
    file: &TensorFile,
    config: &UmT5Config,
    index: usize,
    storage: Dtype,
    device: &Device,
) -> Result<T5Block, TextError> {
    let prefix = format!("blocks.{index}.");
    let own = format!(r"^blocks\.{index}\.");
    let block = T5Block::new(config, &Device::flex());
    let weights = checkpoint(path, file.clone(), config)
        .only(move |k| k.starts_with(&prefix))
        .module_paths([GATE, (own.as_str(), "")]);
    Ok(weights.load(block, storage, device)?)
}

/// The top-level tensors other than the token embedding (`norm`, a shared `pos_embedding`)
/// into `module`, stored in `storage` on `device`.
pub(crate) fn load_top_level<M: burn::store::ModuleSnapshot>(
    module: M,
    path: &Path,
    file: &TensorFile,
    config: &UmT5Config,
    storage: Dtype,
    device: &Device,
) -> Result<M, TextError> {
    let weights = checkpoint(path, file.clone(), config)
        .only(|k| !k.starts_with("blocks.") && k != "token_embedding.weight");
    Ok(weights.load(module, storage, device)?)
}
