//! Hyper-parameters of the Wan2.1 VAE (`WanVAE_` constructor arguments) and the latent
//! normalisation constants.

use serde::{Deserialize, Serialize};

use crate::VaeError;

/// Per-channel mean of the Wan2.1 latents (`Wan2_1_VAE.mean`).
pub const LATENTS_MEAN: [f32; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
    -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
];

/// Per-channel standard deviation of the Wan2.1 latents (`Wan2_1_VAE.std`).
pub const LATENTS_STD: [f32; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
];

fn default_mean() -> Vec<f32> {
    LATENTS_MEAN.to_vec()
}

fn default_std() -> Vec<f32> {
    LATENTS_STD.to_vec()
}

/// Hyper-parameters of the Wan2.1 VAE.
///
/// Field names follow `WanVAE_` in `wan/modules/vae.py` (including its `temperal` spelling), so
/// the JSON stored in the fixtures' metadata deserialises directly. `latents_mean` /
/// `latents_std` default to the real Wan2.1 constants when absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WanVaeConfig {
    /// Base width (96 in Wan2.1).
    pub dim: usize,
    /// Latent channels (16).
    pub z_dim: usize,
    /// Width multiplier per resolution level, from the finest.
    pub dim_mult: Vec<usize>,
    /// Residual blocks per encoder level (the decoder uses one more).
    pub num_res_blocks: usize,
    /// Scales (1 = full resolution, 0.5, ...) that get an attention block after each residual
    /// block, besides the one in the middle.
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Whether each encoder downsampling also halves time (the decoder mirrors it).
    pub temperal_downsample: Vec<bool>,
    /// Dropout (inference ignores it).
    #[serde(default)]
    pub dropout: f64,
    /// Per-channel latent mean, `z_dim` values.
    #[serde(default = "default_mean")]
    pub latents_mean: Vec<f32>,
    /// Per-channel latent standard deviation, `z_dim` values.
    #[serde(default = "default_std")]
    pub latents_std: Vec<f32>,
}

impl WanVaeConfig {
    /// The Wan2.1 VAE (`Wan2.1_VAE.pth`).
    pub fn wan2_1() -> Self {
        WanVaeConfig {
            dim: 96,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            attn_scales: Vec::new(),
            temperal_downsample: vec![false, true, true],
            dropout: 0.0,
            latents_mean: default_mean(),
            latents_std: default_std(),
        }
    }

    /// Checks the configuration is one this implementation can build.
    pub fn validate(&self) -> Result<(), VaeError> {
        let mut problems = Vec::new();
        if self.dim == 0 || self.z_dim == 0 || self.num_res_blocks == 0 {
            problems.push("dim, z_dim and num_res_blocks must be positive".to_string());
        }
        if self.dim_mult.len() < 2 || self.dim_mult.contains(&0) {
            problems.push(format!(
                "dim_mult {:?} needs at least two positive entries",
                self.dim_mult
            ));
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            problems.push(format!(
                "temperal_downsample has {} entries; dim_mult {:?} needs {}",
                self.temperal_downsample.len(),
                self.dim_mult,
                self.dim_mult.len().saturating_sub(1)
            ));
        }
        // Upsampling halves the channels: the widths after it must stay whole.
        for (i, m) in self.dim_mult.iter().enumerate().skip(1) {
            if !(self.dim * m).is_multiple_of(2) {
                problems.push(format!("dim · dim_mult[{i}] = {} is odd", self.dim * m));
            }
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            problems.push(format!(
                "latents_mean / latents_std have {} / {} values; z_dim is {}",
                self.latents_mean.len(),
                self.latents_std.len(),
                self.z_dim
            ));
        }
        if self
            .latents_std
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
            || self.latents_mean.iter().any(|m| !m.is_finite())
        {
            problems.push("latents_std must be positive and latents_mean finite".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VaeError::Config(problems.join("; ")))
        }
    }

    /// How many frames the video is shorter in time per latent frame: `2^(temporal downsamples)`.
    pub fn temporal_factor(&self) -> usize {
        1 << self.temperal_downsample.iter().filter(|d| **d).count()
    }

    /// How many pixels a latent spans per side: `2^(number of downsamples)`.
    pub fn spatial_factor(&self) -> usize {
        1 << (self.dim_mult.len() - 1)
    }

    /// Video frames for `latent_frames` latent frames: `1 + factor · (n − 1)` (0 for 0).
    pub fn video_frames(&self, latent_frames: usize) -> usize {
        if latent_frames == 0 {
            0
        } else {
            1 + self.temporal_factor() * (latent_frames - 1)
        }
    }

    /// Whether each decoder upsampling also doubles time (the reversed `temperal_downsample`).
    pub fn temporal_upsample(&self) -> Vec<bool> {
        self.temperal_downsample.iter().rev().copied().collect()
    }

    /// Whether an attention block follows residual blocks at `scale`.
    pub(crate) fn has_attention(&self, scale: f64) -> bool {
        self.attn_scales.iter().any(|s| (s - scale).abs() < 1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_is_valid() {
        let c = WanVaeConfig::wan2_1();
        c.validate().unwrap();
        assert_eq!(c.temporal_factor(), 4);
        assert_eq!(c.spatial_factor(), 8);
        assert_eq!(c.video_frames(21), 81);
        assert_eq!(c.temporal_upsample(), vec![true, true, false]);
    }

    #[test]
    fn reads_constructor_arguments_and_validates() {
        let json = serde_json::json!({
            "attn_scales": [], "dim": 8, "dim_mult": [1, 2, 4, 4], "dropout": 0.0,
            "num_res_blocks": 2, "temperal_downsample": [false, true, true], "z_dim": 16
        });
        let c: WanVaeConfig = serde_json::from_value(json.clone()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dim, 8);
        assert_eq!(c.latents_mean, LATENTS_MEAN.to_vec());
        let bad = WanVaeConfig {
            temperal_downsample: vec![true],
            ..c.clone()
        };
        assert!(bad.validate().is_err());
        let bad = WanVaeConfig {
            latents_std: vec![1.0],
            ..c
        };
        assert!(bad.validate().is_err());
        let mut missing = json;
        missing.as_object_mut().unwrap().remove("dim");
        assert!(serde_json::from_value::<WanVaeConfig>(missing).is_err());
    }
}
