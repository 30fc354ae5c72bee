//! A plain per-frame `Conv2d` (attention projections and the spatial resamplers).

use burn::module::{Initializer, Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

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

    /// Applies the convolution to `[N, C, H, W]` in `x`'s dtype.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        conv2d(
            x,
            self.weight.val().cast(dtype),
            Some(self.bias.val().cast(dtype)),
            options,
        )
    }
}
