//! The block kinds that the encoder's `downsamples`, the decoder's `upsamples` and both
//! `middle` lists mix (PyTorch `Sequential` / `ModuleList` of different classes).

use burn::module::Module;
use burn::tensor::Tensor;

use super::attention::AttentionBlock;
use super::causal_conv::FeatureCache;
use super::resample::Resample;
use super::residual::ResidualBlock;

/// One entry of a block list. The variant name is not part of the parameter path (the stores
/// skip enum variants), so `upsamples.3.time_conv.weight` loads into `upsamples[3]`.
// Built once per model and stored in a `Vec`: the size difference between variants costs a few
// hundred bytes per block, while boxing would hide the variants from the module derive.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum VaeBlock {
    /// A residual block (two cache slots).
    Residual(ResidualBlock),
    /// A per-frame attention block (no cache).
    Attention(AttentionBlock),
    /// A resampler (one cache slot in the 3-D modes).
    Resample(Resample),
}

impl VaeBlock {
    /// Applies the block to a video in the cache's layout.
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
        match self {
            VaeBlock::Residual(block) => block.forward(x, cache),
            VaeBlock::Attention(block) => block.forward(x, cache.layout()),
            VaeBlock::Resample(block) => block.forward(x, cache),
        }
    }
}
