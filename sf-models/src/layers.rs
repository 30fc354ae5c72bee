//! Small shared layers: dtype-following linear, the Wan RMSNorm and LayerNorms (always in f32).

use burn::module::{Initializer, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, FloatDType, Tensor};

/// A PyTorch-style `Linear(d_in, d_out)` with bias.
pub(crate) fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

/// A lazily initialised parameter (`value` everywhere); checkpoints overwrite it.
pub(crate) fn param<const D: usize>(
    shape: [usize; D],
    value: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    Initializer::Constant { value }.init_with(shape, None, None, device)
}

/// Applies `layer` after casting `x` to the layer's weight dtype (the compute dtype).
pub(crate) fn apply_linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dtype: FloatDType = layer.weight.val().dtype().into();
    layer.forward(x.cast(dtype))
}

/// Casts to f32 (no-op when already f32).
pub(crate) fn f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(FloatDType::F32)
}

/// LayerNorm over the last axis without affine parameters, computed in f32 (biased variance,
/// as PyTorch). Returns f32.
pub(crate) fn layer_norm<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let x = f32(x);
    let mean = x.clone().mean_dim(D - 1);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(D - 1);
    centered / (var + eps).sqrt()
}

/// Wan's RMSNorm over the full width (`norm_q`, `norm_k`): `x · rsqrt(mean(x²) + eps) · weight`,
/// computed in f32.
#[derive(Module, Debug)]
pub struct WanRmsNorm {
    /// Gain, `[dim]`.
    pub weight: Param<Tensor<1>>,
    /// Epsilon.
    pub eps: f64,
}

impl WanRmsNorm {
    /// A norm of width `dim` (gain initialised to one).
    pub fn new(dim: usize, eps: f64, device: &Device) -> Self {
        WanRmsNorm {
            weight: param([dim], 1.0, device),
            eps,
        }
    }

    /// Normalises the last axis; returns f32.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let x = f32(x);
        let ms = x.clone().square().mean_dim(D - 1);
        let weight = f32(self.weight.val()).unsqueeze::<D>();
        x / (ms + self.eps).sqrt() * weight
    }
}

/// Wan's affine LayerNorm (`norm3`), computed in f32.
#[derive(Module, Debug)]
pub struct WanLayerNorm {
    /// Gain, `[dim]`.
    pub weight: Param<Tensor<1>>,
    /// Bias, `[dim]`.
    pub bias: Param<Tensor<1>>,
    /// Epsilon.
    pub eps: f64,
}

impl WanLayerNorm {
    /// A norm of width `dim` (identity at initialisation).
    pub fn new(dim: usize, eps: f64, device: &Device) -> Self {
        WanLayerNorm {
            weight: param([dim], 1.0, device),
            bias: param([dim], 0.0, device),
            eps,
        }
    }

    /// Normalises the last axis; returns f32.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let weight = f32(self.weight.val()).unsqueeze::<D>();
        let bias = f32(self.bias.val()).unsqueeze::<D>();
        layer_norm(x, self.eps) * weight + bias
    }
}
