//! T5's layer norm: RMS normalisation without mean or bias, computed in f32.

use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, FloatDType, Tensor};

/// `x · rsqrt(mean(x²) + eps) · weight` over the last axis (`T5LayerNorm`, keys `norm1`,
/// `norm2`, `norm`). The statistics and the product are computed in f32.
#[derive(Module, Debug)]
pub struct T5LayerNorm {
    /// Gain `[dim]` (stored in the weights' storage dtype).
    pub weight: Param<Tensor<1>>,
    /// Epsilon.
    pub eps: f64,
}

impl T5LayerNorm {
    /// A norm of width `dim` (lazily initialised to ones; load a checkpoint).
    pub fn new(dim: usize, eps: f64, device: &Device) -> Self {
        T5LayerNorm {
            weight: Initializer::Ones.init_with([dim], None, None, device),
            eps,
        }
    }

    /// Normalises the last axis of `x`; returns f32.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = x.cast(FloatDType::F32);
        let mean_square = x.clone().square().mean_dim(D - 1);
        let weight = self.weight.val().cast(FloatDType::F32).unsqueeze::<D>();
        x / (mean_square + self.eps).sqrt() * weight
    }
}
