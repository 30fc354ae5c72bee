//! The VAE's RMS norm: L2-normalise over the channel axis, times `√C · gamma` (no bias).
//!
//! The parameter is called `gamma`, as in the checkpoint. The struct names are deliberately not
//! `RmsNorm`: burn's PyTorch adapter renames `weight`/`gamma` only inside modules named like
//! burn's own norms, so `gamma` here loads as is.

use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, FloatDType, Tensor};

use super::layout::Layout;

/// `F.normalize`'s lower bound on the norm.
const EPS: f64 = 1e-12;

/// Normalises the channels of a video in `layout` in f32:
/// `x / max(‖x‖₂, 1e-12) · √C · gamma`, with `gamma` holding the `C` gains. Returns `x`'s dtype.
fn normalise(x: Tensor<5>, gamma: Tensor<1>, layout: Layout) -> Tensor<5> {
    let dtype = x.dtype();
    let dim = layout.channel_axis();
    let channels = x.dims()[dim];
    let x = x.cast(FloatDType::F32);
    let norm = x.clone().square().sum_dim(dim).sqrt().clamp_min(EPS);
    let gain = gamma
        .cast(FloatDType::F32)
        .reshape(layout.shape([1, channels, 1, 1, 1]))
        * (channels as f64).sqrt();
    (x / norm * gain).cast(dtype)
}

/// RMS norm of a video (`RMS_norm(C, images=False)`, gamma `[C, 1, 1, 1]`).
#[derive(Module, Debug)]
pub struct VaeRmsNorm {
    /// Gain, `[C, 1, 1, 1]`.
    pub gamma: Param<Tensor<4>>,
}

impl VaeRmsNorm {
    /// A norm over `channels` (gain one; checkpoints overwrite it).
    pub fn new(channels: usize, device: &Device) -> Self {
        VaeRmsNorm {
            gamma: Initializer::Ones.init_with([channels, 1, 1, 1], None, None, device),
        }
    }

    /// Normalises the channel axis of a video in `layout`.
    pub fn forward(&self, x: Tensor<5>, layout: Layout) -> Tensor<5> {
        let c = self.gamma.lazy_shape().dims::<4>()[0];
        normalise(x, self.gamma.val().reshape([c]), layout)
    }
}

/// RMS norm of every frame (`RMS_norm(C, images=True)`, gamma `[C, 1, 1]`), used by the
/// attention block. Per frame or per video, the channel norm is the same.
#[derive(Module, Debug)]
pub struct VaeRmsNorm2d {
    /// Gain, `[C, 1, 1]`.
    pub gamma: Param<Tensor<3>>,
}

impl VaeRmsNorm2d {
    /// A norm over `channels` (gain one; checkpoints overwrite it).
    pub fn new(channels: usize, device: &Device) -> Self {
        VaeRmsNorm2d {
            gamma: Initializer::Ones.init_with([channels, 1, 1], None, None, device),
        }
    }

    /// Normalises the channel axis of a video in `layout`.
    pub fn forward(&self, x: Tensor<5>, layout: Layout) -> Tensor<5> {
        let c = self.gamma.lazy_shape().dims::<3>()[0];
        normalise(x, self.gamma.val().reshape([c]), layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn normalises_channels() {
        let device = Device::flex();
        // [B=1, T=1, C=2, H=1, W=2]: pixel 0 = (3, 4), pixel 1 = (0, 0); the same in both
        // layouts, as T = 1.
        for (layout, shape) in [
            (Layout::TimeMajor, [1, 1, 2, 1, 2]),
            (Layout::ChannelMajor, [1, 2, 1, 1, 2]),
        ] {
            let x = Tensor::<5>::from_data(
                TensorData::new(vec![3.0f32, 0.0, 4.0, 0.0], shape),
                &device,
            );
            let out = VaeRmsNorm::new(2, &device).forward(x, layout);
            assert_eq!(out.dims(), shape);
            let v = out
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap();
            let s = 2f32.sqrt();
            let want = [0.6 * s, 0.0, 0.8 * s, 0.0];
            for (a, b) in v.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{layout:?}: {v:?}");
            }
        }
    }
}
