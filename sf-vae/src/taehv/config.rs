//! Hyper-parameters of TAEHV (the `TAEHV` / `TAEWan` constructor arguments of upstream `taehv.py`).

use serde::{Deserialize, Serialize};

use crate::VaeError;

/// Channels of an RGB frame.
pub const IMAGE_CHANNELS: usize = 3;

/// MemBlocks per encoder or decoder stage.
pub const BLOCKS_PER_STAGE: usize = 3;

/// Stages of the encoder and of the decoder.
pub const STAGES: usize = 3;

fn default_encoder_time_downscale() -> [bool; STAGES] {
    [true, true, false]
}

fn default_encoder_width() -> usize {
    64
}

/// Hyper-parameters of TAEHV (base variant, 2D convolutions with per-block memory).
///
/// Field names follow upstream `taehv.py`, so the JSON stored in the fixtures' metadata
/// deserialises directly. `decoder_time_upscale` may be given with 2 entries (older upstream
/// versions); the first stage then does not upscale in time, as upstream does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaehvConfig {
    /// Decoder widths: stage 0, 1, 2 and the final convolution (`[256, 128, 64, 64]`).
    pub n_f: [usize; 4],
    /// Latent channels (16 for Wan2.1).
    pub latent_channels: usize,
    /// Pixel-shuffle patch size of the RGB frames (1 for Wan2.1).
    pub patch_size: usize,
    /// Per decoder stage: whether its TGrow doubles the frame count.
    #[serde(deserialize_with = "time_upscale")]
    pub decoder_time_upscale: [bool; STAGES],
    /// Per decoder stage: whether it doubles height and width (nearest upsampling).
    pub decoder_space_upscale: [bool; STAGES],
    /// Per encoder stage: whether its TPool halves the frame count.
    #[serde(default = "default_encoder_time_downscale")]
    pub encoder_time_downscale: [bool; STAGES],
    /// Width of every encoder layer (64 upstream).
    #[serde(default = "default_encoder_width")]
    pub encoder_width: usize,
}

fn time_upscale<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[bool; STAGES], D::Error> {
    let v: Vec<bool> = Vec::deserialize(d)?;
    match v.as_slice() {
        [a, b] => Ok([false, *a, *b]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(serde::de::Error::custom(format!(
            "decoder_time_upscale needs 2 or 3 entries, got {}",
            v.len()
        ))),
    }
}

impl TaehvConfig {
    /// `taew2_1` (TAEHV for Wan 2.1 / Wan 2.2-14B latents), as the Self-Forcing demo uses it.
    pub fn taew2_1() -> Self {
        TaehvConfig {
            n_f: [256, 128, 64, 64],
            latent_channels: 16,
            patch_size: 1,
            decoder_time_upscale: [false, true, true],
            decoder_space_upscale: [true, true, true],
            encoder_time_downscale: default_encoder_time_downscale(),
            encoder_width: default_encoder_width(),
        }
    }

    /// Checks the configuration is one this implementation can run.
    pub fn validate(&self) -> Result<(), VaeError> {
        let mut problems = Vec::new();
        for (i, n) in self.n_f.iter().enumerate() {
            if *n == 0 {
                problems.push(format!("n_f[{i}] must be positive"));
            }
        }
        for (name, value) in [
            ("latent_channels", self.latent_channels),
            ("patch_size", self.patch_size),
            ("encoder_width", self.encoder_width),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VaeError::Config(problems.join("; ")))
        }
    }

    /// TGrow stride of decoder stage `s` (2 or 1).
    pub fn tgrow_stride(&self, s: usize) -> usize {
        if self.decoder_time_upscale[s] { 2 } else { 1 }
    }

    /// TPool stride of encoder stage `s` (2 or 1).
    pub fn tpool_stride(&self, s: usize) -> usize {
        if self.encoder_time_downscale[s] { 2 } else { 1 }
    }

    /// Nearest-upsampling factor of decoder stage `s` (2 or 1).
    pub fn space_scale(&self, s: usize) -> usize {
        if self.decoder_space_upscale[s] { 2 } else { 1 }
    }

    /// Output frames per latent frame (4 for `taew2_1`).
    pub fn t_upscale(&self) -> usize {
        (0..STAGES).map(|s| self.tgrow_stride(s)).product()
    }

    /// Input frames per latent frame of the encoder (4 for `taew2_1`).
    pub fn t_downscale(&self) -> usize {
        (0..STAGES).map(|s| self.tpool_stride(s)).product()
    }

    /// Leading decoded frames upstream drops (`t_upscale - 1`, 3 for `taew2_1`).
    pub fn frames_to_trim(&self) -> usize {
        self.t_upscale() - 1
    }

    /// Output pixels per latent pixel along each axis (8 for `taew2_1`).
    pub fn spatial_upscale(&self) -> usize {
        (0..STAGES).map(|s| self.space_scale(s)).product::<usize>() * self.patch_size
    }

    /// Input pixels per latent pixel of the encoder (three stride-2 convolutions, times the patch).
    pub fn spatial_downscale(&self) -> usize {
        8 * self.patch_size
    }

    /// Channels of the decoder's last convolution and of the encoder's first
    /// (`3 · patch_size²`).
    pub fn pixel_channels(&self) -> usize {
        IMAGE_CHANNELS * self.patch_size * self.patch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_is_taew2_1() {
        let c = TaehvConfig::taew2_1();
        c.validate().unwrap();
        assert_eq!(c.t_upscale(), 4);
        assert_eq!(c.t_downscale(), 4);
        assert_eq!(c.frames_to_trim(), 3);
        assert_eq!(c.spatial_upscale(), 8);
        assert_eq!(c.pixel_channels(), 3);
    }

    #[test]
    fn reads_constructor_arguments_and_validates() {
        let json = serde_json::json!({
            "n_f": [32, 16, 8, 8], "latent_channels": 16, "patch_size": 1,
            "decoder_time_upscale": [false, true, true],
            "decoder_space_upscale": [true, true, true]
        });
        let read = |v: &serde_json::Value| serde_json::from_value::<TaehvConfig>(v.clone());
        let c = read(&json).unwrap();
        c.validate().unwrap();
        assert_eq!(c.n_f, [32, 16, 8, 8]);
        assert_eq!(c.encoder_time_downscale, [true, true, false]);
        assert_eq!(c.encoder_width, 64);

        // Two entries (older upstream): the first stage keeps the frame count.
        let mut two = json.clone();
        two["decoder_time_upscale"] = serde_json::json!([true, false]);
        let c = read(&two).unwrap();
        assert_eq!(c.decoder_time_upscale, [false, true, false]);
        assert_eq!(c.t_upscale(), 2);

        let mut four = json.clone();
        four["decoder_time_upscale"] = serde_json::json!([true, true, true, true]);
        let e = read(&four).unwrap_err();
        assert!(e.to_string().contains("2 or 3 entries"), "{e}");
        let zero = TaehvConfig {
            n_f: [0, 16, 8, 8],
            ..c
        };
        assert!(matches!(zero.validate(), Err(VaeError::Config(_))));
        let mut missing = json;
        missing.as_object_mut().unwrap().remove("n_f");
        assert!(read(&missing).is_err());
    }
}
