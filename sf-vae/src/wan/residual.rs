//! `ResidualBlock`: `[RMS norm, SiLU, conv 3³, RMS norm, SiLU, dropout, conv 3³] + shortcut`.
//!
//! Checkpoint keys `residual.{0,2,3,6}` map to `norm1`, `conv1`, `norm2`, `conv2` (see
//! [`super::loader`]); `shortcut` (a 1×1×1 conv) exists only when the width changes.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use sf_device::kernels::silu;

use super::causal_conv::{CausalConv3d, FeatureCache};
use super::norm::VaeRmsNorm;

/// A residual block `c_in → c_out` with two cached causal 3×3×3 convolutions.
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// `residual.0`.
    pub norm1: VaeRmsNorm,
    /// `residual.2`, `c_in → c_out`.
    pub conv1: CausalConv3d,
    /// `residual.3`.
    pub norm2: VaeRmsNorm,
    /// `residual.6`, `c_out → c_out`.
    pub conv2: CausalConv3d,
    /// 1×1×1 projection when `c_in ≠ c_out`.
    pub shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    /// A block `c_in → c_out`.
    pub fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        let conv3 = |i, o| CausalConv3d::new(i, o, [3, 3, 3], [1, 1, 1], 1, device);
        ResidualBlock {
            norm1: VaeRmsNorm::new(c_in, device),
            conv1: conv3(c_in, c_out),
            norm2: VaeRmsNorm::new(c_out, device),
            conv2: conv3(c_out, c_out),
            shortcut: (c_in != c_out)
                .then(|| CausalConv3d::new(c_in, c_out, [1, 1, 1], [0, 0, 0], 1, device)),
        }
    }

    /// Applies the block to a video in the cache's layout, using (and updating) two cache
    /// slots.
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
        let layout = cache.layout();
        let h = match &self.shortcut {
            Some(conv) => cache.conv_uncached(conv, x.clone()),
            None => x.clone(),
        };
        let x = silu(self.norm1.forward(x, layout));
        let x = cache.conv(&self.conv1, x);
        let x = silu(self.norm2.forward(x, layout));
        let x = cache.conv(&self.conv2, x);
        x + h
    }
}
