//! Low-memory encoding: [`LayerStreamingEncoder`] keeps only the final norm resident and reads
//! each block from the checkpoint when it runs, so the peak is about one block (386 MB in bf16
//! for umT5-XXL, plus its f32 copy one matrix at a time) instead of the whole 11.4 GB.
//!
//! The token embedding (2.1 GB in bf16) is never loaded: a safetensors file is read row by row
//! for the prompt's ids; a pickle stores it as one storage, which is read once per call, its
//! rows gathered and the rest dropped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::pytorch_reader::{DType as PtDType, PytorchReader};
use burn::tensor::{Device, FloatDType, Int, Tensor, TensorData};
use sf_device::Precision;
use sf_device::checkpoint::TensorFile;
use sf_device::safetensors::{self, float_size, floats_to_f32, read_range};

use crate::attention::RelativePositionBias;
use crate::encoder::{batch_tensors, host_inputs, run_blocks, zero_padding};
use crate::loader::{check_checkpoint, check_request, load_block, load_top_level};
use crate::norm::T5LayerNorm;
use crate::{TextError, Tokenized, UmT5Config};

/// The small tensors kept resident (checkpoint names `norm`, `pos_embedding`).
#[derive(Module, Debug)]
struct Resident {
    norm: T5LayerNorm,
    pos_embedding: Option<RelativePositionBias>,
}

/// The umT5 encoder reading one block at a time from its checkpoint (see the module docs).
#[derive(Debug)]
pub struct LayerStreamingEncoder {
    path: PathBuf,
    file: TensorFile,
    config: UmT5Config,
    device: Device,
    precision: Precision,
    resident: Resident,
}

const EMBEDDING: &str = "token_embedding.weight";

impl LayerStreamingEncoder {
    /// Checks the checkpoint's tensors against `config` (one error lists every problem) and loads
    /// the final norm; blocks are read during each encode.
    pub fn open(
        path: impl AsRef<Path>,
        config: &UmT5Config,
        device: &Device,
        precision: Precision,
    ) -> Result<Self, TextError> {
        let path = path.as_ref();
        check_request(config, device, precision)?;
        let file = check_checkpoint(path, config)?;
        let c = config;
        let host = Device::flex();
        let resident = Resident {
            norm: T5LayerNorm::new(c.dim, c.eps, &host),
            pos_embedding: c.shared_pos.then(|| {
                RelativePositionBias::new(c.num_buckets, c.num_heads, c.max_distance, &host)
            }),
        };
        let resident = load_top_level(resident, path, &file, config, precision.storage, device)?;
        Ok(LayerStreamingEncoder {
            path: path.to_path_buf(),
            file,
            config: config.clone(),
            device: device.clone(),
            precision,
            resident,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &UmT5Config {
        &self.config
    }

    /// Embedding rows of `ids` as f32 `[B, L, dim]` on the device.
    fn embed(&self, ids: &[i64], shape: [usize; 2]) -> Result<Tensor<3>, TextError> {
        let dim = self.config.dim;
        let bad = |message: String| TextError::Load {
            path: self.path.clone(),
            message,
        };
        let mut rows: HashMap<i64, Vec<f32>> = HashMap::new();
        match &self.file {
            TensorFile::Safetensors => {
                let header = safetensors::read_header(&self.path)?;
                let entry = header
                    .tensor(EMBEDDING)
                    .ok_or_else(|| bad(format!("no tensor {EMBEDDING}")))?;
                let size = float_size(&entry.dtype)
                    .ok_or_else(|| bad(format!("{EMBEDDING} has dtype {}", entry.dtype)))?;
                let row_bytes = size * dim as u64;
                for &id in ids {
                    if let std::collections::hash_map::Entry::Vacant(slot) = rows.entry(id) {
                        let start = header.start(entry) + id as u64 * row_bytes;
                        let bytes = read_range(&self.path, start, row_bytes)?;
                        slot.insert(floats_to_f32(&entry.dtype, &bytes).unwrap_or_default());
                    }
                }
            }
            TensorFile::Pickle { top_level_key } => {
                let reader = match top_level_key {
                    Some(key) => PytorchReader::with_top_level_key(&self.path, key),
                    None => PytorchReader::new(&self.path),
                }
                .map_err(|e| bad(e.to_string()))?;
                let tensor = reader
                    .get(EMBEDDING)
                    .ok_or_else(|| bad(format!("no tensor {EMBEDDING}")))?;
                // The reader hands out native-endian bytes: little-endian on every supported target.
                let dtype = match tensor.dtype() {
                    PtDType::F32 => "F32",
                    PtDType::F16 => "F16",
                    PtDType::BF16 => "BF16",
                    other => return Err(bad(format!("{EMBEDDING} has dtype {other:?}"))),
                };
                let all = tensor.read().map_err(|e| bad(e.to_string()))?;
                let row_bytes = all.len() / self.config.vocab;
                for &id in ids {
                    let at = id as usize * row_bytes;
                    rows.entry(id).or_insert_with(|| {
                        floats_to_f32(dtype, &all[at..at + row_bytes]).unwrap_or_default()
                    });
                }
            }
        }
        let mut values = Vec::with_capacity(ids.len() * dim);
        for id in ids {
            values.extend_from_slice(&rows[id]);
        }
        if values.len() != ids.len() * dim {
            return Err(bad(format!("{EMBEDDING} rows are not {dim} wide")));
        }
        let [b, l] = shape;
        Ok(Tensor::from_data(
            TensorData::new(values, [b, l, dim]),
            &self.device,
        ))
    }

    /// [`crate::UmT5Encoder::forward_with_intermediates`], reading the blocks from the file.
    pub fn forward_with_intermediates(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
        keep: bool,
    ) -> Result<(Tensor<3>, Vec<Tensor<3>>), TextError> {
        let (ids_host, _) = host_inputs(&ids, &mask, self.config.vocab)?;
        let x = self.embed(&ids_host, ids.dims())?;
        run_blocks(
            self.config.num_layers,
            x,
            &mask,
            self.resident.pos_embedding.as_ref(),
            |i| {
                load_block(
                    &self.path,
                    &self.file,
                    &self.config,
                    i,
                    self.precision.storage,
                    &self.device,
                )
                .map(Cow::Owned)
            },
            &self.resident.norm,
            self.precision.compute.float_dtype(),
            keep,
        )
    }

    /// Final-norm output `[B, L, dim]` (f32) for every position (see [`crate::UmT5Encoder::forward`]).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
    ) -> Result<Tensor<3>, TextError> {
        Ok(self.forward_with_intermediates(ids, mask, false)?.0)
    }

    /// Embeddings `[B, L, dim]` (f32) of tokenized prompts, rows past each prompt set to zero.
    pub fn encode(&self, batch: &[Tokenized]) -> Result<Tensor<3>, TextError> {
        let (ids, mask) = batch_tensors(batch, &self.device)?;
        let lengths: Vec<usize> = batch.iter().map(|t| t.len).collect();
        let out = self.forward(ids, mask)?;
        Ok(zero_padding(out.cast(FloatDType::F32), &lengths))
    }
}
