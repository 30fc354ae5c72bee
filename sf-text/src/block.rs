//! One encoder block (`T5SelfAttention` in Wan's `t5.py`):
//!
//! ```text
//! x = fp16_clamp(x + attn(norm1(x), mask, pos_bias))
//! x = fp16_clamp(x + ffn(norm2(x)))
//! ```
//!
//! The residual stream and the norms are f32; projections, attention products and the
//! feed-forward run in the compute dtype (weights are cast from storage one matrix at a time).
//! With an f16 compute dtype (wgpu's default) a projection can overflow to Inf; as Wan's
//! `fp16_clamp` does, a residual that holds a value f16 cannot represent is then clamped to
//! ±(f16::MAX − 1000), so a real prompt never turns into Inf or NaN.

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
        let x = fp16_clamp(x + y.cast(FloatDType::F32), compute);
        let y = self.ffn.forward(self.norm2.forward(x.clone()), compute);
        fp16_clamp(x + y.cast(FloatDType::F32), compute)
    }
}

/// The largest magnitude Wan's `fp16_clamp` keeps: `finfo(float16).max - 1000`.
pub const FP16_CLAMP: f32 = 65504.0 - 1000.0;

/// Wan's `fp16_clamp` for an f32 residual `x` of an f16 computation: when any value would be
/// Inf in f16 (|x| ≥ 65520, the f16 rounding limit, or Inf itself), every value is clamped to
/// ±[`FP16_CLAMP`]; otherwise (and for other compute dtypes) `x` is returned unchanged.
pub fn fp16_clamp(x: Tensor<3>, compute: FloatDType) -> Tensor<3> {
    if compute != FloatDType::F16 {
        return x;
    }
    let largest = x.clone().abs().max().into_scalar::<f32>();
    if largest >= 65520.0 {
        x.clamp(-FP16_CLAMP, FP16_CLAMP)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(x: Tensor<3>) -> Vec<f32> {
        x.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn fp16_clamp_acts_only_when_f16_would_overflow() {
        let device = Device::flex();
        let x = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device).reshape([1, 1, 3]);
        // In range for f16 (65504 is its largest value): unchanged.
        let kept = [65504.0, -65000.0, 1.5];
        assert_eq!(values(fp16_clamp(x(kept), FloatDType::F16)), kept);
        // One value beyond f16's range, or Inf: everything is clamped, as Wan does.
        let over = fp16_clamp(x([f32::INFINITY, -65000.0, 1.5]), FloatDType::F16);
        assert_eq!(values(over), [FP16_CLAMP, -FP16_CLAMP, 1.5]);
        let over = fp16_clamp(x([70000.0, 2.0, -1.0]), FloatDType::F16);
        assert_eq!(values(over), [FP16_CLAMP, 2.0, -1.0]);
        // f32 and bf16 computations are left alone.
        for dtype in [FloatDType::F32, FloatDType::BF16] {
            assert_eq!(
                values(fp16_clamp(x([70000.0, 2.0, -1.0]), dtype)),
                [70000.0, 2.0, -1.0]
            );
        }
    }
}
