//! Input embeddings: patch embedding, sinusoidal + MLP time embedding, text embedding.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::silu;
use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use sf_device::kernels::gelu_tanh;

use crate::layers::{apply_linear, f32, linear, param};

/// Conv3d with kernel = stride = patch size, applied as one matmul over non-overlapping patches.
///
/// Parameters keep the PyTorch Conv3d layout: `weight [dim, in_dim, pt, ph, pw]`, `bias [dim]`.
#[derive(Module, Debug)]
pub struct PatchEmbedding {
    /// Kernel, `[dim, in_dim, pt, ph, pw]`.
    pub weight: Param<Tensor<5>>,
    /// Bias, `[dim]`.
    pub bias: Param<Tensor<1>>,
}

impl PatchEmbedding {
    /// An embedding of `in_dim` channels into `dim` with patch `(pt, ph, pw)`.
    pub fn new(in_dim: usize, dim: usize, patch: [usize; 3], device: &Device) -> Self {
        PatchEmbedding {
            weight: param([dim, in_dim, patch[0], patch[1], patch[2]], 0.0, device),
            bias: param([dim], 0.0, device),
        }
    }

    /// `x [B, C, F, H, W]` (pt = 1) -> tokens `[B, F·(H/ph)·(W/pw), dim]` in (frame, row, col)
    /// order, in the weight dtype. `H`, `W` must be multiples of the patch (checked by the model).
    pub fn forward(&self, x: Tensor<5>) -> Tensor<3> {
        let weight = self.weight.val();
        let [dim, c_in, _, ph, pw] = weight.dims();
        let dtype: FloatDType = weight.dtype().into();
        let [b, c, f, h, w] = x.dims();
        let (gh, gw) = (h / ph, w / pw);
        let patches = x
            .cast(dtype)
            .reshape([b, c, f, gh, ph, gw, pw])
            .permute([0, 2, 3, 5, 1, 4, 6])
            .reshape([b, f * gh * gw, c * ph * pw]);
        let kernel = weight.reshape([dim, c_in * ph * pw]).transpose();
        burn::tensor::module::linear(patches, kernel, Some(self.bias.val()))
    }
}

/// The sinusoidal embedding `[cos(t·ω_k) | sin(t·ω_k)]`, `ω_k = 10000^(-k/half)`, computed in f64
/// from the raw timestep values (one row per value), returned as `[N, freq_dim]` f32.
pub fn sinusoidal_embedding(timesteps: &[f64], freq_dim: usize, device: &Device) -> Tensor<2> {
    let half = freq_dim / 2;
    let mut values = Vec::with_capacity(timesteps.len() * freq_dim);
    for &t in timesteps {
        let angles: Vec<f64> = (0..half)
            .map(|k| t * 10000f64.powf(-(k as f64) / half as f64))
            .collect();
        values.extend(angles.iter().map(|a| a.cos() as f32));
        values.extend(angles.iter().map(|a| a.sin() as f32));
    }
    Tensor::from_data(TensorData::new(values, [timesteps.len(), freq_dim]), device)
}

/// `time_embedding`: Linear(freq_dim → dim) → SiLU → Linear(dim → dim)
/// (checkpoint keys `time_embedding.0`, `time_embedding.2`).
#[derive(Module, Debug)]
pub struct TimeEmbedding {
    /// `time_embedding.0`.
    pub fc1: Linear,
    /// `time_embedding.2`.
    pub fc2: Linear,
}

impl TimeEmbedding {
    /// A time embedding for the given widths.
    pub fn new(freq_dim: usize, dim: usize, device: &Device) -> Self {
        TimeEmbedding {
            fc1: linear(freq_dim, dim, device),
            fc2: linear(dim, dim, device),
        }
    }

    /// Sinusoid rows `[N, freq_dim]` -> `e [N, dim]` (f32).
    pub fn forward(&self, sinusoid: Tensor<2>) -> Tensor<2> {
        let h = silu(apply_linear(&self.fc1, sinusoid));
        f32(apply_linear(&self.fc2, h))
    }
}

/// `time_projection`: SiLU → Linear(dim → 6·dim) (checkpoint key `time_projection.1`).
#[derive(Module, Debug)]
pub struct TimeProjection {
    /// `time_projection.1`.
    pub linear: Linear,
}

impl TimeProjection {
    /// A projection of `dim` to `6·dim`.
    pub fn new(dim: usize, device: &Device) -> Self {
        TimeProjection {
            linear: linear(dim, 6 * dim, device),
        }
    }

    /// `e [N, dim]` -> `e0 [N, 6·dim]` (f32).
    pub fn forward(&self, e: Tensor<2>) -> Tensor<2> {
        f32(apply_linear(&self.linear, silu(e)))
    }
}

/// `text_embedding`: Linear(text_dim → dim) → GELU(tanh) → Linear(dim → dim)
/// (checkpoint keys `text_embedding.0`, `text_embedding.2`).
#[derive(Module, Debug)]
pub struct TextEmbedding {
    /// `text_embedding.0`.
    pub fc1: Linear,
    /// `text_embedding.2`.
    pub fc2: Linear,
}

impl TextEmbedding {
    /// A text embedding for the given widths.
    pub fn new(text_dim: usize, dim: usize, device: &Device) -> Self {
        TextEmbedding {
            fc1: linear(text_dim, dim, device),
            fc2: linear(dim, dim, device),
        }
    }

    /// `context [B, text_len, text_dim]` -> `[B, text_len, dim]` in the weight dtype.
    pub fn forward(&self, context: Tensor<3>) -> Tensor<3> {
        let h = gelu_tanh(apply_linear(&self.fc1, context));
        apply_linear(&self.fc2, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoid_is_cos_then_sin_of_the_raw_value() {
        let device = Device::flex();
        let s = sinusoidal_embedding(&[937.5, 0.0], 8, &device);
        let v: Vec<f32> = s.into_data().convert::<f32>().try_into_vec().unwrap();
        assert_eq!(v.len(), 16);
        for k in 0..4 {
            let a = 937.5f64 * 10000f64.powf(-(k as f64) / 4.0);
            assert!((v[k] as f64 - a.cos()).abs() < 1e-6);
            assert!((v[4 + k] as f64 - a.sin()).abs() < 1e-6);
            assert_eq!(v[8 + k], 1.0);
            assert_eq!(v[12 + k], 0.0);
        }
    }
}
