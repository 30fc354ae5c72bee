//! The umT5 encoder (`T5Encoder`, encoder only): token embedding (no scaling), the blocks, a
//! final norm, and Wan's zeroing of the rows at positions ≥ the prompt length.
//!
//! [`UmT5Encoder`] keeps every weight resident in its storage dtype (bf16 for the real
//! checkpoint: 11.4 GB) and casts one weight matrix at a time to the compute dtype;
//! [`crate::LayerStreamingEncoder`] reads one block at a time from the file instead. Loading
//! ([`UmT5Encoder::load`]) lives in [`crate::loader`], which maps checkpoint keys to these fields.

use std::borrow::Cow;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Bool, Device, FloatDType, Int, Tensor, TensorData};

use crate::attention::RelativePositionBias;
use crate::block::T5Block;
use crate::norm::T5LayerNorm;
use crate::{TextError, Tokenized, UmT5Config};
use sf_device::RowBlocks;

/// The umT5 encoder with all weights resident.
#[derive(Module, Debug)]
pub struct UmT5Encoder {
    /// `[vocab, dim]`, while the table is one tensor; `None` once [`UmT5Encoder::load`] has
    /// split it into row blocks because it exceeds the device's largest buffer (umT5-XXL in f32
    /// is 3.91 GiB; wgpu on Vulkan allocates at most 2 GiB − 1 per buffer).
    pub token_embedding: Option<Embedding>,
    /// The token embedding as row blocks under the device's buffer limit, when split.
    #[module(skip)]
    token_blocks: Option<RowBlocks>,
    /// The relative position bias shared by every block (only with `shared_pos`).
    pub pos_embedding: Option<RelativePositionBias>,
    /// Encoder blocks.
    pub blocks: Vec<T5Block>,
    /// Final norm.
    pub norm: T5LayerNorm,
    #[module(skip)]
    config: UmT5Config,
    #[module(skip)]
    compute: FloatDType,
}

/// Token ids `[B, L]` and attention mask `[B, L]` (1 = real token) of a batch, on a device.
pub fn batch_tensors(
    batch: &[Tokenized],
    device: &Device,
) -> Result<(Tensor<2, Int>, Tensor<2, Int>), TextError> {
    let len = batch.first().map_or(0, |t| t.ids.len());
    if batch.is_empty()
        || batch
            .iter()
            .any(|t| t.ids.len() != len || t.mask.len() != len)
    {
        return Err(TextError::InvalidInput(
            "a batch needs at least one prompt, all tokenized to the same text length".into(),
        ));
    }
    let ids: Vec<i64> = batch
        .iter()
        .flat_map(|t| t.ids.iter().map(|&i| i as i64))
        .collect();
    let mask: Vec<i64> = batch
        .iter()
        .flat_map(|t| t.mask.iter().map(|&m| m as i64))
        .collect();
    let shape = [batch.len(), len];
    Ok((
        Tensor::from_data(TensorData::new(ids, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    ))
}

/// Sets rows `≥ lengths[b]` of `x [B, L, D]` to zero (what Wan hands to the DiT).
pub fn zero_padding(x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
    let [b, l, _] = x.dims();
    let keep: Vec<f32> = (0..b)
        .flat_map(|i| {
            let len = lengths.get(i).copied().unwrap_or(l);
            (0..l).map(move |p| if p < len { 1.0 } else { 0.0 })
        })
        .collect();
    let dtype = FloatDType::from(x.dtype());
    let keep = Tensor::<3>::from_data(TensorData::new(keep, [b, l, 1]), &x.device());
    x * keep.cast(dtype)
}

/// Host copies of the ids (checked against the vocabulary) and the number of real tokens per row
/// (the sum of the mask).
pub(crate) fn host_inputs(
    ids: &Tensor<2, Int>,
    mask: &Tensor<2, Int>,
    vocab: usize,
) -> Result<(Vec<i64>, Vec<usize>), TextError> {
    if ids.dims() != mask.dims() {
        return Err(TextError::InvalidInput(format!(
            "ids {:?} and mask {:?} differ in shape",
            ids.dims(),
            mask.dims()
        )));
    }
    let [b, l] = ids.dims();
    if b == 0 || l == 0 {
        return Err(TextError::InvalidInput(format!("empty batch {:?}", [b, l])));
    }
    let host = |t: &Tensor<2, Int>| -> Vec<i64> {
        t.to_data().try_into_vec_as::<i64>().unwrap_or_default()
    };
    let ids_host = host(ids);
    if let Some(bad) = ids_host.iter().find(|&&i| i < 0 || i as usize >= vocab) {
        return Err(TextError::InvalidInput(format!(
            "token id {bad} is outside the embedding table of {vocab} rows"
        )));
    }
    let lengths = host(mask)
        .chunks(l)
        .map(|row| row.iter().filter(|&&m| m != 0).count())
        .collect();
    Ok((ids_host, lengths))
}

/// Everything after the embedding, shared by the resident and the streaming encoder: the blocks
/// (`block(i)` hands out block `i`, borrowed or freshly loaded), the final norm, and the hidden
/// state after each block when `keep` is set.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_blocks<'a>(
    num_layers: usize,
    x: Tensor<3>,
    mask: &Tensor<2, Int>,
    shared: Option<&RelativePositionBias>,
    mut block: impl FnMut(usize) -> Result<Cow<'a, T5Block>, TextError>,
    norm: &T5LayerNorm,
    compute: FloatDType,
    keep: bool,
) -> Result<(Tensor<3>, Vec<Tensor<3>>), TextError> {
    let [b, l, _] = x.dims();
    let masked: Tensor<4, Bool> = mask.clone().equal_elem(0).reshape([b, 1, 1, l]);
    let shared_bias = shared.map(|pos| pos.forward(l));
    let mut x = x;
    let mut hidden = Vec::new();
    for i in 0..num_layers {
        let layer = block(i)?;
        x = layer.forward(x, shared_bias.as_ref(), &masked, compute);
        if keep {
            hidden.push(x.clone());
        }
    }
    Ok((norm.forward(x), hidden))
}

impl UmT5Encoder {
    /// An encoder for `config` on `device`, lazily initialised (load a checkpoint before use).
    pub fn new(config: &UmT5Config, device: &Device) -> Result<Self, TextError> {
        config.validate()?;
        let c = config;
        Ok(UmT5Encoder {
            token_embedding: Some(EmbeddingConfig::new(c.vocab, c.dim).init(device)),
            token_blocks: None,
            pos_embedding: c.shared_pos.then(|| {
                RelativePositionBias::new(c.num_buckets, c.num_heads, c.max_distance, device)
            }),
            blocks: (0..c.num_layers).map(|_| T5Block::new(c, device)).collect(),
            norm: T5LayerNorm::new(c.dim, c.eps, device),
            config: config.clone(),
            compute: FloatDType::F32,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &UmT5Config {
        &self.config
    }

    /// Blocks the token embedding is held in on the device: 1 when it is one tensor.
    pub fn token_embedding_blocks(&self) -> usize {
        self.token_blocks.as_ref().map_or(1, RowBlocks::num_blocks)
    }

    /// Moves the encoder (built and loaded on the host) to `device`; a token embedding larger
    /// than the device's largest buffer goes in row blocks ([`RowBlocks`]).
    pub(crate) fn place(self, device: &Device) -> Result<Self, TextError> {
        let limit = sf_device::max_buffer_bytes(device);
        self.place_within(device, limit)
    }

    /// [`UmT5Encoder::place`] with `limit` bytes per buffer (`None`: no limit).
    fn place_within(mut self, device: &Device, limit: Option<u64>) -> Result<Self, TextError> {
        let table = self.token_embedding.as_ref().map(|e| e.weight.val());
        if let (Some(table), Some(limit)) = (table, limit) {
            let bytes = table.shape().num_elements() as u64 * table.dtype().size() as u64;
            if bytes > limit {
                let blocks = RowBlocks::with_max_bytes(table, device, limit, "the token embedding")
                    .map_err(|e| TextError::Config(e.to_string()))?;
                self.token_embedding = None;
                self.token_blocks = Some(blocks);
            }
        }
        Ok(if *device == Device::flex() {
            self
        } else {
            self.to_device(device)
        })
    }

    /// The compute dtype.
    pub fn compute_dtype(&self) -> FloatDType {
        self.compute
    }

    /// Sets the compute dtype (weights stay in their storage dtype).
    pub fn with_compute_dtype(mut self, compute: FloatDType) -> Self {
        self.compute = compute;
        self
    }

    /// Final-norm output `[B, L, dim]` (f32) for every position, padded ones included, with
    /// `mask [B, L]` (1 = real token; padding keys are masked out).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
    ) -> Result<Tensor<3>, TextError> {
        Ok(self.forward_with_intermediates(ids, mask, false)?.0)
    }

    /// [`UmT5Encoder::forward`], plus the hidden state after each block when `keep` is set.
    pub fn forward_with_intermediates(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Int>,
        keep: bool,
    ) -> Result<(Tensor<3>, Vec<Tensor<3>>), TextError> {
        let (ids_host, _) = host_inputs(&ids, &mask, self.config.vocab)?;
        let x = match (&self.token_embedding, &self.token_blocks) {
            (Some(table), _) => burn::tensor::module::embedding(table.weight.val(), ids),
            (None, Some(blocks)) => {
                let [b, l] = ids.dims();
                blocks.gather(&ids_host).reshape([b, l, self.config.dim])
            }
            (None, None) => {
                return Err(TextError::Config(
                    "the token embedding is not loaded".into(),
                ));
            }
        }
        .cast(FloatDType::F32);
        run_blocks(
            self.blocks.len(),
            x,
            &mask,
            self.pos_embedding.as_ref(),
            |i| Ok(Cow::Borrowed(&self.blocks[i])),
            &self.norm,
            self.compute,
            keep,
        )
    }

    /// Embeddings `[B, L, dim]` (f32) of tokenized prompts, rows past each prompt set to zero.
    pub fn encode(&self, batch: &[Tokenized]) -> Result<Tensor<3>, TextError> {
        let device = self.norm.weight.val().device();
        let (ids, mask) = batch_tensors(batch, &device)?;
        let lengths: Vec<usize> = batch.iter().map(|t| t.len).collect();
        Ok(zero_padding(self.forward(ids, mask)?, &lengths))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_embedding_split_into_row_blocks_gives_the_same_output() {
        let config: UmT5Config = serde_json::from_value(serde_json::json!({
            "dim": 32, "dim_attn": 32, "dim_ffn": 64, "max_distance": 128, "num_buckets": 32,
            "num_heads": 4, "num_layers": 1, "shared_pos": false, "vocab": 1024
        }))
        .unwrap();
        let device = Device::flex();
        device.seed(3);
        let encoder = UmT5Encoder::new(&config, &device).unwrap();
        let ids = vec![5i64, 1023, 0, 400, 5, 999, 130, 1];
        let tensors = || {
            let n = ids.len();
            (
                Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [1, n]), &device),
                Tensor::<2, Int>::from_data(TensorData::new(vec![1i64; n], [1, n]), &device),
            )
        };
        let (i, m) = tensors();
        let whole = encoder.forward(i, m).unwrap();
        // 100 rows of 32 f32 per buffer: 11 blocks, ids spread over several of them.
        let split = encoder
            .clone()
            .place_within(&device, Some(100 * 32 * 4))
            .unwrap();
        assert_eq!(split.token_embedding_blocks(), 11);
        assert!(split.token_embedding.is_none());
        let (i, m) = tensors();
        let out = split.forward(i, m).unwrap();
        let (a, b) = (whole.into_data(), out.into_data());
        assert_eq!(a, b);
        // A limit below one row is an error naming the table.
        let err = encoder.place_within(&device, Some(64)).unwrap_err();
        assert!(err.to_string().contains("token embedding"), "{err}");
    }
}
