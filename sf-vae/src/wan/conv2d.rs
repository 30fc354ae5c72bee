//! A plain per-frame `Conv2d` (attention projections and the spatial resamplers).

use burn::module::{Initializer, Module, Param};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use sf_device::kernels::{conv2d, conv3d};

use super::layout::Layout;

/// `nn.Conv2d(c_in, c_out, k, stride, padding)` with bias, weights `[out, in, k, k]`.
#[derive(Module, Debug)]
pub struct Conv2dLayer {
    /// `[out, in, kh, kw]`.
    pub weight: Param<Tensor<4>>,
    /// `[out]`.
    pub bias: Param<Tensor<1>>,
    /// Stride on both axes.
    pub stride: usize,
    /// Padding on both axes and both sides.
    pub padding: usize,
}

impl Conv2dLayer {
    /// A square `kernel` convolution; weights are random (uniform ±1/√fan_in) until loaded.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        device: &Device,
    ) -> Self {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        let uniform = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        Conv2dLayer {
            weight: uniform.init_with([c_out, c_in, kernel, kernel], None, None, device),
            bias: uniform.init_with([c_out], None, None, device),
            stride,
            padding,
        }
    }

    /// Applies the convolution to every frame of a video in `layout`, in `x`'s dtype, without
    /// moving its axes: a `conv2d` over the frames of a time-major video, a `conv3d` with a
    /// kernel one frame deep on a channel-major one.
    pub fn forward(&self, x: Tensor<5>, layout: Layout) -> Tensor<5> {
        let dtype = x.dtype();
        let weight = self.weight.val().cast(dtype);
        let bias = Some(self.bias.val().cast(dtype));
        let (s, p) = (self.stride, self.padding);
        match layout {
            Layout::ChannelMajor => {
                let options = ConvOptions::new([1, s, s], [0, p, p], [1, 1, 1], 1);
                conv3d(x, weight.unsqueeze_dim(2), bias, options)
            }
            Layout::TimeMajor => {
                let [b, t, c, h, w] = x.dims();
                let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
                let y = conv2d(x.reshape([b * t, c, h, w]), weight, bias, options);
                let [_, o, h2, w2] = y.dims();
                y.reshape([b, t, o, h2, w2])
            }
        }
    }
}
