//! `Decoder3d`: latent frames → video frames through cached causal convolutions.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use sf_device::kernels::silu;

use super::attention::AttentionBlock;
use super::blocks::VaeBlock;
use super::causal_conv::{CausalConv3d, FeatureCache};
use super::config::WanVaeConfig;
use super::norm::VaeRmsNorm;
use super::resample::{Resample, ResampleMode};
use super::residual::ResidualBlock;

/// The decoder: `conv1`, `middle` (residual, attention, residual), `upsamples`, `head`
/// (`head.0` → `head_norm`, `head.2` → `head_conv`).
#[derive(Module, Debug)]
pub struct Decoder3d {
    /// `z_dim → top width`, 3×3×3.
    pub conv1: CausalConv3d,
    /// Residual, attention, residual at the coarsest resolution.
    pub middle: Vec<VaeBlock>,
    /// Residual blocks and upsamplers, coarse to fine.
    pub upsamples: Vec<VaeBlock>,
    /// `head.0`.
    pub head_norm: VaeRmsNorm,
    /// `head.2`, `dim → 3`.
    pub head_conv: CausalConv3d,
}

impl Decoder3d {
    /// The decoder of `config` (random weights until loaded).
    pub fn new(config: &WanVaeConfig, device: &Device) -> Self {
        let mults: Vec<usize> = std::iter::once(*config.dim_mult.last().unwrap_or(&1))
            .chain(config.dim_mult.iter().rev().copied())
            .collect();
        let dims: Vec<usize> = mults.iter().map(|m| config.dim * m).collect();
        let levels = config.dim_mult.len();
        let mut scale = 1.0 / (1u64 << levels.saturating_sub(2)) as f64;
        let top = dims[0];
        let middle = vec![
            VaeBlock::Residual(ResidualBlock::new(top, top, device)),
            VaeBlock::Attention(AttentionBlock::new(top, device)),
            VaeBlock::Residual(ResidualBlock::new(top, top, device)),
        ];
        let temporal = config.temporal_upsample();
        let mut upsamples = Vec::new();
        let mut out_dim = top;
        for (i, pair) in dims.windows(2).enumerate() {
            // Every level after the first starts from the halved width of the upsampler.
            let mut in_dim = if i >= 1 { pair[0] / 2 } else { pair[0] };
            out_dim = pair[1];
            for _ in 0..=config.num_res_blocks {
                upsamples.push(VaeBlock::Residual(ResidualBlock::new(
                    in_dim, out_dim, device,
                )));
                if config.has_attention(scale) {
                    upsamples.push(VaeBlock::Attention(AttentionBlock::new(out_dim, device)));
                }
                in_dim = out_dim;
            }
            if i != levels - 1 {
                let mode = if temporal.get(i).copied().unwrap_or(false) {
                    ResampleMode::Upsample3d
                } else {
                    ResampleMode::Upsample2d
                };
                upsamples.push(VaeBlock::Resample(Resample::new(out_dim, mode, device)));
                scale *= 2.0;
            }
        }
        Decoder3d {
            conv1: CausalConv3d::new(config.z_dim, top, [3, 3, 3], [1, 1, 1], 1, device),
            middle,
            upsamples,
            head_norm: VaeRmsNorm::new(out_dim, device),
            head_conv: CausalConv3d::new(out_dim, 3, [3, 3, 3], [1, 1, 1], 1, device),
        }
    }

    /// Runs the decoder on latent frames (after `conv2`, `z_dim` channels) continuing the video
    /// held in `cache`; returns raw frames (3 channels, not clamped). Both in the cache's layout.
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
        cache.begin_pass();
        let mut x = cache.conv(&self.conv1, x);
        for block in self.middle.iter().chain(&self.upsamples) {
            x = block.forward(x, cache);
        }
        let x = silu(self.head_norm.forward(x, cache.layout()));
        cache.conv(&self.head_conv, x)
    }
}
