//! One encoder block (`T5SelfAttention` in Wan's `t5.py`):
//!
//! ```text
//! x = x + attn(norm1(x), mask, pos_bias)
//! x = x + ffn(norm2(x))
//! ```
//!
//! The residual stream and the norms are f32; projections, attention products and the
//! feed-forward run in the compute dtype (weights are cast from storage one matrix at a time).

use burn::module::Module;
use burn::tensor::{Bool, Device, FloatDType, Tensor};

use crate::UmT5Config;
use crate::attention::{RelativePositionBias, T5Attention};
use crate::ffn::T5FeedForward;
use crate::norm::T5LayerNorm;

/// An encoder block (`blocks.{i}`).
#[derive(Module, Debug)]
pub struct T5Block {
    /// Norm before attention.
    pub norm1: T5LayerNorm,
    /// Self-attention.
    pub attn: T5Attention,
    /// Norm before the feed-forward.
    pub norm2: T5LayerNorm,
    /// Gated feed-forward.
    pub ffn: T5FeedForward,
    /// This block's relative position bias (absent with `shared_pos`).
    pub pos_embedding: Option<RelativePositionBias>,
}

impl T5Block {
    /// A block for `config` (lazily initialised; load a checkpoint).
    pub fn new(config: &UmT5Config, device: &Device) -> Self {
        let c = config;
        T5Block {
            norm1: T5LayerNorm::new(c.dim, c.eps, device),
            attn: T5Attention::new(c.dim, c.dim_attn, c.num_heads, device),
            norm2: T5LayerNorm::new(c.dim, c.eps, device),
            ffn: T5FeedForward::new(c.dim, c.dim_ffn, device),
            pos_embedding: (!c.shared_pos).then(|| {
                RelativePositionBias::new(c.num_buckets, c.num_heads, c.max_distance, device)
            }),
        }
    }

    /// `x [B, L, dim]` (f32) -> the block output (f32). `shared_bias` is the encoder's bias when
    /// the block has none of its own; `masked [B, 1, 1, L]` marks padding keys.
    pub fn forward(
        &self,
        x: Tensor<3>,
        shared_bias: Option<&Tensor<4>>,
        masked: &Tensor<4, Bool>,
        compute: FloatDType,
    ) -> Tensor<3> {
        let len = x.dims()[1];
        let bias = match (&self.pos_embedding, shared_bias) {
            (Some(pos), _) => pos.forward(len),
            (None, Some(bias)) => bias.clone(),
            (None, None) => Tensor::zeros([1, 1, len, len], &x.device()),
        };
        let y = self
            .attn
            .forward(self.norm1.forward(x.clone()), bias, masked, compute);
        let x = x + y.cast(FloatDType::F32);
        let y = self.ffn.forward(self.norm2.forward(x.clone()), compute);
        x + y.cast(FloatDType::F32)
    }
}
