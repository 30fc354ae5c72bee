//! Output head and unpatchify.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, Tensor};

use crate::layers::{apply_linear, f32, layer_norm, linear, param};

/// The output head (`head`): `Linear(LN(x)·(1 + scale) + shift)` with
/// `(shift, scale) = head.modulation + e` per frame (`e` = the time embedding before projection).
#[derive(Module, Debug)]
pub struct Head {
    /// `[1, 2, dim]`: (shift, scale).
    pub modulation: Param<Tensor<3>>,
    /// `head.head`: dim → out_dim · prod(patch).
    pub head: Linear,
    /// LayerNorm epsilon (no affine parameters).
    pub eps: f64,
}

impl Head {
    /// A head producing `out` values per token.
    pub fn new(dim: usize, out: usize, eps: f64, device: &Device) -> Self {
        Head {
            modulation: param([1, 2, dim], 0.0, device),
            head: linear(dim, out, device),
            eps,
        }
    }

    /// `x [B, L = F·fs, dim]` (f32), `e [B, F, dim]` (f32) -> `[B, L, out]` (f32).
    pub fn forward(&self, x: Tensor<3>, e: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let frames = e.dims()[1];
        let fs = l / frames;
        // [1, 1, 2, D] + [B, F, 1, D] -> [B, F, 2, D].
        let m = f32(self.modulation.val()).unsqueeze::<4>() + e.unsqueeze_dim::<4>(2);
        let shift = m.clone().narrow(2, 0, 1);
        let scale = m.narrow(2, 1, 1);
        let h = layer_norm(x.reshape([b, frames, fs, d]), self.eps) * (scale + 1.0) + shift;
        let compute: FloatDType = self.head.weight.val().dtype().into();
        f32(apply_linear(&self.head, h.reshape([b, l, d]).cast(compute)))
    }
}

/// Scatters head outputs `[B, F·gh·gw, ph·pw·C]` (values ordered (ph, pw, c), c fastest) to
/// `[B, C, F, gh·ph, gw·pw]`: token (f, h, w) sub-position (ph, pw) lands at (ph·h + i, pw·w + j).
pub fn unpatchify(x: Tensor<3>, grid: [usize; 3], patch: [usize; 2], channels: usize) -> Tensor<5> {
    let [b, _, _] = x.dims();
    let [f, gh, gw] = grid;
    let [ph, pw] = patch;
    x.reshape([b, f, gh, gw, ph, pw, channels])
        .permute([0, 6, 1, 2, 4, 3, 5])
        .reshape([b, channels, f, gh * ph, gw * pw])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn unpatchify_places_sub_positions() {
        let device = Device::flex();
        // 1 frame, grid 1×2, patch 2×2, 2 channels: value = 100·w + 10·(2·ph + pw) + c.
        let mut values = Vec::new();
        for w in 0..2 {
            for ph in 0..2 {
                for pw in 0..2 {
                    for c in 0..2 {
                        values.push((100 * w + 10 * (2 * ph + pw) + c) as f32);
                    }
                }
            }
        }
        let x = Tensor::<3>::from_data(TensorData::new(values, [1, 2, 8]), &device);
        let y = unpatchify(x, [1, 1, 2], [2, 2], 2);
        assert_eq!(y.dims(), [1, 2, 1, 2, 4]);
        let v: Vec<f32> = y.into_data().convert::<f32>().try_into_vec().unwrap();
        // Channel 1, pixel (row 1, col 2) = token w=1, ph=1, pw=0.
        assert_eq!(v[8 + 4 + 2], 100.0 + 20.0 + 1.0);
        // Channel 0, pixel (0, 1) = token w=0, ph=0, pw=1.
        assert_eq!(v[1], 10.0);
    }
}
