//! `Encoder3d`: video frames → latent moments through cached causal convolutions (used for
//! image-to-video conditioning).

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

/// The encoder: `conv1`, `downsamples`, `middle`, `head` (`head.0` → `head_norm`, `head.2` →
/// `head_conv`, output `2 · z_dim` channels: mean and log-variance).
#[derive(Module, Debug)]
pub struct Encoder3d {
    /// `3 → dim`, 3×3×3.
    pub conv1: CausalConv3d,
    /// Residual blocks and downsamplers, fine to coarse.
    pub downsamples: Vec<VaeBlock>,
    /// Residual, attention, residual at the coarsest resolution.
    pub middle: Vec<VaeBlock>,
    /// `head.0`.
    pub head_norm: VaeRmsNorm,
    /// `head.2`, `top width → 2 · z_dim`.
    pub head_conv: CausalConv3d,
}

impl Encoder3d {
    /// The encoder of `config` (random weights until loaded).
    pub fn new(config: &WanVaeConfig, device: &Device) -> Self {
        let dims: Vec<usize> = std::iter::once(1)
            .chain(config.dim_mult.iter().copied())
            .map(|m| config.dim * m)
            .collect();
        let levels = config.dim_mult.len();
        let mut scale = 1.0;
        let mut downsamples = Vec::new();
        let mut out_dim = dims[0];
        for (i, pair) in dims.windows(2).enumerate() {
            let mut in_dim = pair[0];
            out_dim = pair[1];
            for _ in 0..config.num_res_blocks {
                downsamples.push(VaeBlock::Residual(ResidualBlock::new(
                    in_dim, out_dim, device,
                )));
                if config.has_attention(scale) {
                    downsamples.push(VaeBlock::Attention(AttentionBlock::new(out_dim, device)));
                }
                in_dim = out_dim;
            }
            if i != levels - 1 {
                let mode = if config.temperal_downsample.get(i).copied().unwrap_or(false) {
                    ResampleMode::Downsample3d
                } else {
                    ResampleMode::Downsample2d
                };
                downsamples.push(VaeBlock::Resample(Resample::new(out_dim, mode, device)));
                scale /= 2.0;
            }
        }
        let middle = vec![
            VaeBlock::Residual(ResidualBlock::new(out_dim, out_dim, device)),
            VaeBlock::Attention(AttentionBlock::new(out_dim, device)),
            VaeBlock::Residual(ResidualBlock::new(out_dim, out_dim, device)),
        ];
        Encoder3d {
            conv1: CausalConv3d::new(3, dims[0], [3, 3, 3], [1, 1, 1], 1, device),
            downsamples,
            middle,
            head_norm: VaeRmsNorm::new(out_dim, device),
            head_conv: CausalConv3d::new(
                out_dim,
                2 * config.z_dim,
                [3, 3, 3],
                [1, 1, 1],
                1,
                device,
            ),
        }
    }

    /// Runs the encoder on frames (3 channels) continuing the video held in `cache`; returns the
    /// `2·z_dim` channels before the top-level `conv1`. Both in the cache's layout.
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
        cache.begin_pass();
        let mut x = cache.conv(&self.conv1, x);
        for block in self.downsamples.iter().chain(&self.middle) {
            x = block.forward(x, cache);
        }
        let x = silu(self.head_norm.forward(x, cache.layout()));
        cache.conv(&self.head_conv, x)
    }
}
