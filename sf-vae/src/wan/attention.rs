//! `AttentionBlock`: single-head spatial self-attention within each frame (no temporal context,
//! no cache).

use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::conv2d::Conv2dLayer;
use super::norm::VaeRmsNorm2d;

/// RMS norm → 1×1 conv to q|k|v → SDPA over the `H·W` positions (scale `1/√C`) → 1×1 `proj`
/// → plus the input.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    /// `norm` (gamma `[C, 1, 1]`).
    pub norm: VaeRmsNorm2d,
    /// `to_qkv`, `C → 3C`.
    pub to_qkv: Conv2dLayer,
    /// `proj`, `C → C`.
    pub proj: Conv2dLayer,
}

impl AttentionBlock {
    /// A block over `channels`.
    pub fn new(channels: usize, device: &Device) -> Self {
        AttentionBlock {
            norm: VaeRmsNorm2d::new(channels, device),
            to_qkv: Conv2dLayer::new(channels, 3 * channels, 1, 1, 0, device),
            proj: Conv2dLayer::new(channels, channels, 1, 1, 0, device),
        }
    }

    /// Applies the block to every frame of `[B, T, C, H, W]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, t, c, h, w] = x.dims();
        let n = b * t;
        let identity = x.clone();
        let x = self.norm.forward(x.reshape([n, c, h, w]));
        // [n, 3C, H, W] -> [n, 1, H·W, 3C]; q, k, v are consecutive channel blocks.
        let qkv = self
            .to_qkv
            .forward(x)
            .reshape([n, 3 * c, h * w])
            .swap_dims(1, 2)
            .reshape([n, 1, h * w, 3 * c]);
        let q = qkv.clone().narrow(3, 0, c);
        let k = qkv.clone().narrow(3, c, c);
        let v = qkv.narrow(3, 2 * c, c);
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let out = out
            .reshape([n, h * w, c])
            .swap_dims(1, 2)
            .reshape([n, c, h, w]);
        self.proj.forward(out).reshape([b, t, c, h, w]) + identity
    }
}
