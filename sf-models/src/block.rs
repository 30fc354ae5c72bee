//! One Wan transformer block with per-frame modulation.
//!
//! With `m = modulation + e0[frame]` split into `(sh_a, sc_a, g_a, sh_f, sc_f, g_f)` and broadcast
//! over the frame's tokens:
//!
//! ```text
//! x = x + SelfAttn(LN(x)·(1 + sc_a) + sh_a) · g_a
//! x = x + CrossAttn(norm3(x), context)
//! x = x + FFN(LN(x)·(1 + sc_f) + sh_f) · g_f
//! ```
//!
//! The residual stream, norms and modulation are f32; projections run in the weight dtype.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, Tensor};

use sf_device::kernels::gelu_tanh;

use crate::ModelError;
use crate::attention::{CrossAttention, SelfAttention, SelfAttnCall};
use crate::cache::LayerCache;
use crate::layers::{WanLayerNorm, apply_linear, f32, layer_norm, linear, param};

/// Feed-forward: Linear(dim → ffn) → GELU(tanh) → Linear(ffn → dim)
/// (checkpoint keys `ffn.0`, `ffn.2`).
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `ffn.0`.
    pub fc1: Linear,
    /// `ffn.2`.
    pub fc2: Linear,
}

impl FeedForward {
    /// A feed-forward of the given widths.
    pub fn new(dim: usize, ffn_dim: usize, device: &Device) -> Self {
        FeedForward {
            fc1: linear(dim, ffn_dim, device),
            fc2: linear(ffn_dim, dim, device),
        }
    }

    /// `[.., dim]` -> `[.., dim]` in the weight dtype.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        apply_linear(&self.fc2, gelu_tanh(apply_linear(&self.fc1, x)))
    }
}

/// A Wan attention block (`blocks.i`).
#[derive(Module, Debug)]
pub struct WanAttentionBlock {
    /// `[1, 6, dim]`: (shift, scale, gate) for attention, then for the FFN.
    pub modulation: Param<Tensor<3>>,
    /// Self-attention.
    pub self_attn: SelfAttention,
    /// Affine LayerNorm before cross-attention (if `cross_attn_norm`).
    pub norm3: Option<WanLayerNorm>,
    /// Cross-attention.
    pub cross_attn: CrossAttention,
    /// Feed-forward.
    pub ffn: FeedForward,
    /// Epsilon of `norm1`/`norm2` (no affine parameters).
    pub eps: f64,
}

/// Inputs shared by every block of one forward call.
pub struct BlockInputs<'a> {
    /// `e0 [B, F, 6, dim]` (f32).
    pub e0: &'a Tensor<4>,
    /// Embedded context `[B, text_len, dim]` (compute dtype), `None` when every cross-attention
    /// cache is filled.
    pub context: Option<&'a Tensor<3>>,
    /// Positions and cache options of the self-attention.
    pub self_attn: SelfAttnCall<'a>,
}

impl WanAttentionBlock {
    /// A block (lazily initialised; load a checkpoint).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dim: usize,
        ffn_dim: usize,
        num_heads: usize,
        qk_norm: bool,
        cross_attn_norm: bool,
        eps: f64,
        device: &Device,
    ) -> Self {
        WanAttentionBlock {
            modulation: param([1, 6, dim], 0.0, device),
            self_attn: SelfAttention::new(dim, num_heads, qk_norm, eps, device),
            norm3: cross_attn_norm.then(|| WanLayerNorm::new(dim, eps, device)),
            cross_attn: CrossAttention::new(dim, num_heads, qk_norm, eps, device),
            ffn: FeedForward::new(dim, ffn_dim, device),
            eps,
        }
    }

    /// `x [B, L = F·fs, dim]` (f32) -> the block output (f32).
    pub fn forward(
        &self,
        x: Tensor<3>,
        inputs: &BlockInputs<'_>,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let [b, l, d] = x.dims();
        let frames = inputs.e0.dims()[1];
        let fs = l / frames;
        let compute: FloatDType = self.ffn.fc1.weight.val().dtype().into();
        // [1, 1, 6, D] + [B, F, 6, D] -> six [B, F, 1, D].
        let m = f32(self.modulation.val()).unsqueeze::<4>() + inputs.e0.clone();
        let m: Vec<Tensor<4>> = m.chunk(6, 2);
        let per_frame = |t: Tensor<3>| t.reshape([b, frames, fs, d]);
        let tokens = |t: Tensor<4>| t.reshape([b, l, d]);

        let (self_cache, cross_cache) = match cache {
            Some(c) => (Some(&mut c.self_attn), Some(&mut c.cross_attn)),
            None => (None, None),
        };

        let h = per_frame(layer_norm(x.clone(), self.eps)) * (m[1].clone() + 1.0) + m[0].clone();
        let y = self
            .self_attn
            .forward(tokens(h).cast(compute), inputs.self_attn, self_cache)?;
        let x = tokens(per_frame(x) + per_frame(f32(y)) * m[2].clone());

        let xn = match &self.norm3 {
            Some(norm) => norm.forward(x.clone()),
            None => x.clone(),
        };
        let y = self
            .cross_attn
            .forward(xn.cast(compute), inputs.context, cross_cache)?;
        let x = x + f32(y);

        let h = per_frame(layer_norm(x.clone(), self.eps)) * (m[4].clone() + 1.0) + m[3].clone();
        let y = self.ffn.forward(tokens(h).cast(compute));
        Ok(tokens(per_frame(x) + per_frame(f32(y)) * m[5].clone()))
    }
}
