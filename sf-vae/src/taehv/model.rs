//! The TAEHV model (decoder, optional encoder) with whole-video decode and encode.

use burn::module::Module;
use burn::tensor::{Device, FloatDType, Tensor};

use super::config::{IMAGE_CHANNELS, TaehvConfig};
use super::decoder::{Decoder, DecoderMemory};
use super::encoder::{Encoder, EncoderMemory};
use crate::VaeError;

/// TAEHV: the tiny decoder (and encoder) for Wan2.1 latents.
///
/// Latents are the normalised DiT latents in `[B, T, C, h, w]` (TAEHV's own NTCHW layout);
/// frames are RGB `[B, T, 3, H, W]` with values in `[0, 1]`.
#[derive(Module, Debug)]
pub struct Taehv {
    /// The encoder (`encoder.*`), when the checkpoint has one.
    pub encoder: Option<Encoder>,
    /// The decoder (`decoder.*`).
    pub decoder: Decoder,
    #[module(skip)]
    config: TaehvConfig,
}

impl Taehv {
    /// A model for `config`, with an encoder if asked (random weights until loaded).
    pub fn new(
        config: &TaehvConfig,
        with_encoder: bool,
        device: &Device,
    ) -> Result<Self, VaeError> {
        config.validate()?;
        Ok(Taehv {
            encoder: with_encoder.then(|| Encoder::new(config, device)),
            decoder: Decoder::new(config, device),
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TaehvConfig {
        &self.config
    }

    /// Checks latents `[B, T, C, h, w]` against the configuration.
    pub fn check_latents(&self, latents: &Tensor<5>) -> Result<(), VaeError> {
        let dims = latents.dims();
        let [b, t, c, h, w] = dims;
        if c != self.config.latent_channels || b == 0 || t == 0 || h == 0 || w == 0 {
            return Err(VaeError::InvalidInput(format!(
                "TAEHV latents must be [B, T, {}, h, w] with every size positive, got {dims:?}",
                self.config.latent_channels
            )));
        }
        Ok(())
    }

    /// Decodes latents with `memory` (the frames decoded before) into raw frames
    /// `[B, T · t_upscale, 3, H, W]` in f32: no clamp, no trim (what Self-Forcing's copy of
    /// `taehv.py` returns).
    pub fn decode_raw_with(
        &self,
        latents: Tensor<5>,
        memory: &mut DecoderMemory,
    ) -> Result<Tensor<5>, VaeError> {
        self.check_latents(&latents)?;
        let raw = self.decoder.forward(latents, memory);
        Ok(pixel_shuffle(
            raw.cast(FloatDType::F32),
            self.config.patch_size,
        ))
    }

    /// Decodes a whole latent video at once into raw frames `[B, 4T, 3, 8h, 8w]` (for
    /// `taew2_1`): no clamp, no trim.
    pub fn decode_raw(&self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        self.decode_raw_with(latents, &mut DecoderMemory::default())
    }

    /// Upstream `decode_video`: the raw frames clamped to `[0, 1]` without the first
    /// `frames_to_trim` frames (`4T − 3` frames for `taew2_1`, like the Wan VAE).
    pub fn decode_video(&self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        let raw = self.decode_raw(latents)?;
        Ok(trim_and_clamp(raw, self.config.frames_to_trim()))
    }

    /// Upstream `encode_video`: frames `[B, T, 3, H, W]` in `[0, 1]` → latents
    /// `[B, ⌈T / t_downscale⌉, C, H/8, W/8]` in f32. The last frame is repeated to fill the last
    /// group of `t_downscale` frames.
    pub fn encode_video(&self, frames: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            VaeError::Config("this TAEHV checkpoint has no encoder (no encoder.* tensors)".into())
        })?;
        let dims = frames.dims();
        let [b, t, c, h, w] = dims;
        if c != IMAGE_CHANNELS || b == 0 || t == 0 || h == 0 || w == 0 {
            return Err(VaeError::InvalidInput(format!(
                "TAEHV frames must be [B, T, 3, H, W] with every size positive, got {dims:?}"
            )));
        }
        let p = self.config.patch_size;
        if h % p != 0 || w % p != 0 {
            return Err(VaeError::InvalidInput(format!(
                "frame size {h}x{w} is not a multiple of the patch size {p}"
            )));
        }
        let group = self.config.t_downscale();
        let frames = match t % group {
            0 => frames,
            r => {
                let last = frames.clone().narrow(1, t - 1, 1);
                Tensor::cat(vec![frames, last.repeat_dim(1, group - r)], 1)
            }
        };
        let x = pixel_unshuffle(frames, p);
        let latents = encoder
            .forward(x, &mut EncoderMemory::default())
            .ok_or_else(|| VaeError::InvalidInput("no complete group of frames".into()))?;
        Ok(latents.cast(FloatDType::F32))
    }
}

/// Clamps frames to `[0, 1]` and drops the first `trim` frames.
pub fn trim_and_clamp(frames: Tensor<5>, trim: usize) -> Tensor<5> {
    let t = frames.dims()[1];
    let kept = t.saturating_sub(trim);
    frames.narrow(1, t - kept, kept).clamp(0.0, 1.0)
}

/// PyTorch `pixel_shuffle` on `[B, T, C·p², H, W]` → `[B, T, C, H·p, W·p]`.
pub fn pixel_shuffle(x: Tensor<5>, p: usize) -> Tensor<5> {
    if p == 1 {
        return x;
    }
    let [b, t, cpp, h, w] = x.dims();
    let c = cpp / (p * p);
    x.reshape([b * t, c, p, p, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, t, c, h * p, w * p])
}

/// PyTorch `pixel_unshuffle` on `[B, T, C, H·p, W·p]` → `[B, T, C·p², H, W]`.
pub fn pixel_unshuffle(x: Tensor<5>, p: usize) -> Tensor<5> {
    if p == 1 {
        return x;
    }
    let [b, t, c, hp, wp] = x.dims();
    let (h, w) = (hp / p, wp / p);
    x.reshape([b * t, c, h, p, w, p])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, t, c * p * p, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn pixel_shuffle_matches_pytorch_and_inverts() {
        let d = Device::flex();
        // One frame, 4 channels (C = 1, p = 2), 1x1: channel i*2+j goes to pixel (i, j).
        let x = Tensor::<5>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 4, 1, 1]),
            &d,
        );
        let y = pixel_shuffle(x.clone(), 2);
        assert_eq!(y.dims(), [1, 1, 1, 2, 2]);
        assert_eq!(
            y.clone().into_data().try_to_vec::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        let z = Tensor::<5>::random([2, 3, 12, 4, 5], Distribution::Default, &d);
        let back = pixel_unshuffle(pixel_shuffle(z.clone(), 2), 2);
        assert_eq!(back.into_data(), z.into_data());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let d = Device::flex();
        let mut config = TaehvConfig::taew2_1();
        config.n_f = [4, 4, 4, 4];
        config.encoder_width = 4;
        let model = Taehv::new(&config, false, &d).unwrap();
        let wrong = Tensor::<5>::zeros([1, 2, 4, 2, 2], &d);
        let e = model.decode_video(wrong).unwrap_err().to_string();
        assert!(e.contains("[B, T, 16, h, w]"), "{e}");
        let frames = Tensor::<5>::zeros([1, 4, 3, 16, 16], &d);
        let e = model.encode_video(frames).unwrap_err().to_string();
        assert!(e.contains("no encoder"), "{e}");
    }
}
