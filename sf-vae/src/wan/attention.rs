//! `AttentionBlock`: single-head spatial self-attention within each frame (no temporal context,
//! no cache).

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::conv2d::Conv2dLayer;
use super::layout::Layout;
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

    /// Applies the block to every frame of a video in `layout`.
    pub fn forward(&self, x: Tensor<5>, layout: Layout) -> Tensor<5> {
        let [b, c, t, h, w] = layout.dims(&x);
        let identity = x.clone();
        let x = self.norm.forward(x, layout);
        // [B·T, H·W, 3C] -> [B·T, 1, H·W, 3C]; q, k, v are consecutive channel blocks.
        let qkv = layout
            .to_tokens(self.to_qkv.forward(x, layout))
            .unsqueeze_dim::<4>(1);
        let q = qkv.clone().narrow(3, 0, c);
        let k = qkv.clone().narrow(3, c, c);
        let v = qkv.narrow(3, 2 * c, c);
        let out = sf_device::kernels::attention(q, k, v);
        let out = layout.from_tokens(out.reshape([b * t, h * w, c]), [b, t, h, w]);
        self.proj.forward(out, layout) + identity
    }
}
