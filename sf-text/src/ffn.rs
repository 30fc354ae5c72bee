//! T5's gated feed-forward layer (`T5FeedForward`): `fc2(fc1(x) ⊙ GELU_tanh(gate(x)))`.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, Tensor};
use sf_device::kernels::gelu_tanh;

use crate::attention::{linear, project};

/// The gated GELU feed-forward (`ffn`); `gate` is the checkpoint's `ffn.gate.0`.
#[derive(Module, Debug)]
pub struct T5FeedForward {
    /// Gate projection `dim → dim_ffn` (followed by GELU with the tanh approximation).
    pub gate: Linear,
    /// Value projection `dim → dim_ffn`.
    pub fc1: Linear,
    /// Output projection `dim_ffn → dim`.
    pub fc2: Linear,
}

impl T5FeedForward {
    /// A feed-forward of the given widths (lazily initialised; load a checkpoint).
    pub fn new(dim: usize, dim_ffn: usize, device: &Device) -> Self {
        T5FeedForward {
            gate: linear(dim, dim_ffn, device),
            fc1: linear(dim, dim_ffn, device),
            fc2: linear(dim_ffn, dim, device),
        }
    }

    /// `[B, L, dim]` -> `[B, L, dim]` in `compute`.
    pub fn forward(&self, x: Tensor<3>, compute: FloatDType) -> Tensor<3> {
        let gate = gelu_tanh(project(&self.gate, x.clone(), compute));
        project(&self.fc2, project(&self.fc1, x, compute) * gate, compute)
    }
}
