//! TAEHV building blocks: `Clamp`, `MemBlock`, `TGrow`, `TPool` and the 3×3 convolution.
//!
//! Frames are processed as 2D images: a video `[B, T, C, H, W]` is folded to `[B·T, C, H, W]`
//! for every convolution. Time only mixes through MemBlock memories (the block's input one
//! frame earlier), TGrow (one frame becomes `stride` frames) and TPool (`stride` frames become
//! one).

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, FloatDType, Tensor};
use sf_device::kernels;

/// `Conv2d(c_in, c_out, 3, padding=1)`, optionally strided, with or without bias.
pub fn conv3x3(c_in: usize, c_out: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device)
}

/// `Conv2d(c_in, c_out, 1, bias=False)`.
pub fn conv1x1(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [1, 1])
        .with_bias(false)
        .init(device)
}

/// `conv.forward(x)` through sf-device's convolution (its own kernel on the CPU, burn's
/// elsewhere). `Same` padding is not used by TAEHV and falls back to burn's module.
pub fn apply(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    kernels::conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// The float dtype of a convolution's weights (the compute dtype).
pub fn weight_dtype(conv: &Conv2d) -> FloatDType {
    conv.weight.val().dtype().into()
}

/// `Clamp`: the soft clamp `3 · tanh(x / 3)` applied to the latents.
pub fn clamp(x: Tensor<4>) -> Tensor<4> {
    (x / 3.0).tanh() * 3.0
}

/// `nn.Upsample(scale_factor)` with the default nearest mode (identity for 1).
pub fn upsample(x: Tensor<4>, scale: usize) -> Tensor<4> {
    if scale == 1 {
        return x;
    }
    let s = scale as f32;
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([s, s]),
    )
}

/// `MemBlock(n_in, n_out)`:
/// `ReLU(conv.4(ReLU(conv.2(ReLU(conv.0(cat[x, past]))))) + skip(x))`.
#[derive(Module, Debug)]
pub struct MemBlock {
    /// The three 3×3 convolutions (checkpoint `conv.0`, `conv.2`, `conv.4`); the first takes
    /// `2 · n_in` channels.
    pub conv: Vec<Conv2d>,
    /// 1×1 convolution without bias when `n_in != n_out` (identity otherwise).
    pub skip: Option<Conv2d>,
}

impl MemBlock {
    /// A block from `n_in` to `n_out` channels.
    pub fn new(n_in: usize, n_out: usize, device: &Device) -> Self {
        MemBlock {
            conv: vec![
                conv3x3(2 * n_in, n_out, 1, true, device),
                conv3x3(n_out, n_out, 1, true, device),
                conv3x3(n_out, n_out, 1, true, device),
            ],
            skip: (n_in != n_out).then(|| conv1x1(n_in, n_out, device)),
        }
    }

    /// Applies the block to frames `x` `[N, C, H, W]` whose previous frames are `past`
    /// (same shape).
    pub fn forward(&self, x: Tensor<4>, past: Tensor<4>) -> Tensor<4> {
        let mut h = Tensor::cat(vec![x.clone(), past], 1);
        for (i, conv) in self.conv.iter().enumerate() {
            if i > 0 {
                h = relu(h);
            }
            h = apply(conv, h);
        }
        let skip = match &self.skip {
            Some(conv) => apply(conv, x),
            None => x,
        };
        relu(h + skip)
    }

    /// Applies the block to a video `[B, T, C, H, W]`. `memory` is the block's input frame before
    /// the first of `x` (`None` = zeros, the start of a video); it becomes the last frame of `x`.
    pub fn forward_video(&self, x: Tensor<5>, memory: &mut Option<Tensor<4>>) -> Tensor<5> {
        let [b, t, c, h, w] = x.dims();
        let first = memory
            .take()
            .unwrap_or_else(|| Tensor::zeros([b, c, h, w], (&x.device(), x.dtype())));
        let last = x.clone().narrow(1, t - 1, 1).reshape([b, c, h, w]);
        let past = if t > 1 {
            Tensor::cat(
                vec![
                    first.reshape([b, 1, c, h, w]),
                    x.clone().narrow(1, 0, t - 1),
                ],
                1,
            )
        } else {
            first.reshape([b, 1, c, h, w])
        };
        *memory = Some(last);
        let out = self.forward(x.reshape([b * t, c, h, w]), past.reshape([b * t, c, h, w]));
        let [_, c_out, h_out, w_out] = out.dims();
        out.reshape([b, t, c_out, h_out, w_out])
    }
}

/// `TGrow(n_f, stride)`: a 1×1 convolution `n_f → stride · n_f` whose output channels are split
/// into `stride` consecutive frames (the first `n_f` channels are the earliest frame).
#[derive(Module, Debug)]
pub struct TGrow {
    /// The 1×1 convolution without bias (checkpoint `conv`).
    pub conv: Conv2d,
    /// Frames out per frame in.
    pub stride: usize,
}

impl TGrow {
    /// A TGrow of width `n_f`.
    pub fn new(n_f: usize, stride: usize, device: &Device) -> Self {
        TGrow {
            conv: conv1x1(n_f, n_f * stride, device),
            stride,
        }
    }

    /// `[B, T, C, H, W]` → `[B, T · stride, C, H, W]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, t, c, h, w] = x.dims();
        let y = apply(&self.conv, x.reshape([b * t, c, h, w]));
        y.reshape([b, t * self.stride, c, h, w])
    }
}

/// `TPool(n_f, stride)`: `stride` consecutive frames concatenated on channels, then a 1×1
/// convolution `stride · n_f → n_f`.
#[derive(Module, Debug)]
pub struct TPool {
    /// The 1×1 convolution without bias (checkpoint `conv`).
    pub conv: Conv2d,
    /// Frames in per frame out.
    pub stride: usize,
}

impl TPool {
    /// A TPool of width `n_f`.
    pub fn new(n_f: usize, stride: usize, device: &Device) -> Self {
        TPool {
            conv: conv1x1(n_f * stride, n_f, device),
            stride,
        }
    }

    /// `[B, T, C, H, W]` with `T` a multiple of the stride → `[B, T / stride, C, H, W]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, t, c, h, w] = x.dims();
        let groups = t / self.stride;
        let y = apply(&self.conv, x.reshape([b * groups, self.stride * c, h, w]));
        y.reshape([b, groups, c, h, w])
    }

    /// Streaming form: pools every complete group of `pending` + `x` frames and keeps the
    /// remaining (fewer than `stride`) frames in `pending`. `None` when no group is complete.
    pub fn forward_stream(
        &self,
        x: Tensor<5>,
        pending: &mut Option<Tensor<5>>,
    ) -> Option<Tensor<5>> {
        let x = match pending.take() {
            Some(p) => Tensor::cat(vec![p, x], 1),
            None => x,
        };
        let t = x.dims()[1];
        let used = t - t % self.stride;
        if used < t {
            *pending = Some(x.clone().narrow(1, used, t - used));
        }
        (used > 0).then(|| self.forward(x.narrow(1, 0, used)))
    }
}

/// Applies a per-frame 2D layer to a video `[B, T, C, H, W]`.
pub fn per_frame(x: Tensor<5>, f: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<5> {
    let [b, t, c, h, w] = x.dims();
    let y = f(x.reshape([b * t, c, h, w]));
    let [_, c2, h2, w2] = y.dims();
    y.reshape([b, t, c2, h2, w2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn values(t: Tensor<5>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn clamp_is_soft() {
        let d = Device::flex();
        let x =
            Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 3.0, -100.0], [1, 1, 1, 3]), &d);
        let v = clamp(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v[0], 0.0);
        assert!((v[1] - 3.0 * 1f32.tanh()).abs() < 1e-6);
        assert!((v[2] + 3.0).abs() < 1e-5);
    }

    #[test]
    fn tgrow_splits_channels_into_consecutive_frames() {
        let d = Device::flex();
        let mut g = TGrow::new(1, 2, &d);
        // Output channel 0 = 1·x (earliest frame), channel 1 = 10·x.
        g.conv.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 10.0], [2, 1, 1, 1]),
            &d,
        ));
        let x = Tensor::<5>::from_data(TensorData::new(vec![1.0f32, 2.0], [1, 2, 1, 1, 1]), &d);
        assert_eq!(values(g.forward(x)), vec![1.0, 10.0, 2.0, 20.0]);
    }

    #[test]
    fn tpool_streams_like_whole() {
        let d = Device::flex();
        let p = TPool::new(2, 2, &d);
        let x = Tensor::<5>::random([1, 6, 2, 3, 3], burn::tensor::Distribution::Default, &d);
        let whole = values(p.forward(x.clone()));
        let mut pending = None;
        let mut parts = Vec::new();
        for (start, len) in [(0, 1), (1, 2), (3, 3)] {
            if let Some(y) = p.forward_stream(x.clone().narrow(1, start, len), &mut pending) {
                parts.extend(values(y));
            }
        }
        assert!(pending.is_none());
        assert_eq!(parts, whole);
    }

    #[test]
    fn memblock_video_uses_previous_input_as_memory() {
        let d = Device::flex();
        let m = MemBlock::new(2, 3, &d);
        let x = Tensor::<5>::random([1, 3, 2, 4, 4], burn::tensor::Distribution::Default, &d);
        let mut mem = None;
        let whole = values(m.forward_video(x.clone(), &mut mem));
        let mut mem = None;
        let mut parts = values(m.forward_video(x.clone().narrow(1, 0, 2), &mut mem));
        parts.extend(values(m.forward_video(x.narrow(1, 2, 1), &mut mem)));
        assert_eq!(parts.len(), whole.len());
        for (a, b) in parts.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
