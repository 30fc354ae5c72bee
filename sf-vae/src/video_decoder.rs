//! The decoder interface shared by the Wan VAE and TAEHV, and the one constructor of either.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sf_device::{Component, Dtype};

use crate::VaeError;
use crate::taehv::{TaehvConfig, TaehvDecoder, load_taehv};
use crate::wan::{DecodeOptions, VaeParts, WanVaeConfig, WanVaeDecoder, load_wan_vae};

/// Which decoder turns latents into frames: `wan-vae` or `taehv` (parses from and prints as
/// those names, also in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecoderKind {
    /// The Wan2.1 causal 3D VAE (higher quality).
    #[default]
    WanVae,
    /// TAEHV (much faster, lower quality).
    Taehv,
}

impl DecoderKind {
    /// The name used on command lines, in the web demo and in JSON (`wan-vae`, `taehv`).
    pub fn name(self) -> &'static str {
        match self {
            DecoderKind::WanVae => "wan-vae",
            DecoderKind::Taehv => "taehv",
        }
    }

    /// The precision-policy component of this decoder.
    pub fn component(self) -> Component {
        match self {
            DecoderKind::WanVae => Component::WanVae,
            DecoderKind::Taehv => Component::Taehv,
        }
    }
}

impl std::fmt::Display for DecoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DecoderKind {
    type Err = VaeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "wan-vae" | "wan" | "vae" => Ok(DecoderKind::WanVae),
            "taehv" | "tae" => Ok(DecoderKind::Taehv),
            _ => Err(VaeError::UnknownDecoder {
                input: s.to_string(),
            }),
        }
    }
}

/// A streaming latent-to-video decoder; [`load_decoder`] makes either kind.
///
/// Latents come in the rollout's layout `[B, C, F, h, w]` (normalised DiT latents, C = 16);
/// frames go out as `[B, T, 3, 8h, 8w]` in `[0, 1]`, ready for [`frames_to_rgb8`]. The first
/// call after [`reset`] yields `1 + 4 (F - 1)` frames, later calls `4 F`: decoding chunk by
/// chunk gives exactly the frames of decoding all latents at once.
///
/// [`reset`]: VideoDecoder::reset
pub trait VideoDecoder {
    /// Which decoder this is.
    fn kind(&self) -> DecoderKind;

    /// Decodes the next latent frames `[B, C, F, h, w]` of the current video into frames
    /// `[B, T, 3, 8h, 8w]`, transposing at most once (the latents or the frames). Latents of
    /// another shape are a [`VaeError::InvalidInput`].
    fn decode_chunk(&mut self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError>;

    /// Forgets the current video (its caches or memories); the next chunk starts a new one.
    fn reset(&mut self);
}

/// What [`load_decoder`] builds either decoder from.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfigs {
    /// The Wan VAE's hyper-parameters.
    pub wan_vae: WanVaeConfig,
    /// How the Wan VAE decodes (convolution strategy, zero-history cache).
    pub wan_vae_options: DecodeOptions,
    /// TAEHV's hyper-parameters.
    pub taehv: TaehvConfig,
}

impl Default for DecoderConfigs {
    /// The real decoders (`Wan2.1_VAE.pth`, `taew2_1`) with the default decode options.
    fn default() -> Self {
        DecoderConfigs {
            wan_vae: WanVaeConfig::wan2_1(),
            wan_vae_options: DecodeOptions::default(),
            taehv: TaehvConfig::taew2_1(),
        }
    }
}

/// Loads the decoder `kind` from its weights at `path` (the Wan VAE's decoder half from
/// `Wan2.1_VAE.pth` / safetensors, or TAEHV from `taew2_1.pth` / safetensors), casts it to
/// `dtype` and moves it to `device`. A file that does not fit `kind`'s configuration is a
/// [`VaeError::Checkpoint`] listing every mismatch.
pub fn load_decoder(
    kind: DecoderKind,
    path: impl AsRef<Path>,
    configs: &DecoderConfigs,
    device: &Device,
    dtype: Dtype,
) -> Result<Box<dyn VideoDecoder + Send>, VaeError> {
    Ok(match kind {
        DecoderKind::WanVae => {
            let vae = load_wan_vae(path, &configs.wan_vae, VaeParts::DecoderOnly, device, dtype)?;
            Box::new(WanVaeDecoder::new(vae, configs.wan_vae_options))
        }
        DecoderKind::Taehv => Box::new(TaehvDecoder::new(load_taehv(
            path,
            &configs.taehv,
            device,
            dtype,
        )?)),
    })
}

/// Checks latents are `[B, channels, F, h, w]` (the rollout's layout) with every size positive.
pub(crate) fn check_latents(latents: &Tensor<5>, channels: usize) -> Result<(), VaeError> {
    let [b, c, f, h, w] = latents.dims();
    if c != channels || b == 0 || f == 0 || h == 0 || w == 0 {
        return Err(VaeError::InvalidInput(format!(
            "latents must be [B, {channels}, F, h, w] (the rollout's layout) with every size \
             positive, got [{b}, {c}, {f}, {h}, {w}]"
        )));
    }
    Ok(())
}

/// One 8-bit RGB frame, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

/// Converts decoded frames `[B, T, 3, H, W]` in `[0, 1]` to 8-bit RGB, batch-major then time.
/// Values are clamped to `[0, 1]` and rounded as `round(v * 255)`; NaN becomes an error.
pub fn frames_to_rgb8(frames: Tensor<5>) -> Result<Vec<RgbFrame>, VaeError> {
    let [b, t, c, h, w] = frames.dims();
    if c != 3 {
        return Err(VaeError::InvalidInput(format!(
            "frames must have 3 channels, got shape [{b}, {t}, {c}, {h}, {w}]"
        )));
    }
    let values = frames
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| VaeError::InvalidInput(format!("cannot read frames: {e:?}")))?;
    if values.iter().any(|v| v.is_nan()) {
        return Err(VaeError::InvalidInput(
            "decoded frames contain NaN; the latents were not finite".into(),
        ));
    }
    let plane = h * w;
    let mut out = Vec::with_capacity(b * t);
    for frame in values.chunks_exact(3 * plane) {
        let mut data = Vec::with_capacity(3 * plane);
        for p in 0..plane {
            for ch in 0..3 {
                let v = frame[ch * plane + p].clamp(0.0, 1.0);
                data.push((v * 255.0).round() as u8);
            }
        }
        out.push(RgbFrame {
            width: w,
            height: h,
            data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn parses_decoder_names() {
        assert_eq!(
            "wan-vae".parse::<DecoderKind>().unwrap(),
            DecoderKind::WanVae
        );
        assert_eq!("TAEHV".parse::<DecoderKind>().unwrap(), DecoderKind::Taehv);
        assert_eq!(DecoderKind::Taehv.to_string(), "taehv");
        let e = "vqgan".parse::<DecoderKind>().unwrap_err().to_string();
        assert!(e.contains("wan-vae") && e.contains("taehv"), "{e}");
    }

    #[test]
    fn rgb8_is_interleaved_and_clamped() {
        let device = Device::flex();
        // 1 batch, 1 frame, 3 channels, 1 x 2 pixels: channel planes R, G, B.
        let values = vec![0.0f32, 1.0, 0.5, 2.0, -1.0, 0.25];
        let frames = Tensor::<5>::from_data(TensorData::new(values, [1, 1, 3, 1, 2]), &device);
        let rgb = frames_to_rgb8(frames).unwrap();
        assert_eq!(rgb.len(), 1);
        assert_eq!((rgb[0].width, rgb[0].height), (2, 1));
        assert_eq!(rgb[0].data, vec![0, 128, 0, 255, 255, 64]);
    }
}
