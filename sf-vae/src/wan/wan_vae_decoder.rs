//! [`WanVaeDecoder`]: the Wan VAE behind the streaming [`VideoDecoder`] interface.

use burn::tensor::Tensor;

use super::causal_conv::FeatureCache;
use super::layout::Layout;
use super::model::{DecodeOptions, WanVae};
use crate::VaeError;
use crate::video_decoder::{DecoderKind, VideoDecoder};

/// Streams latent chunks through the Wan VAE decoder with a persistent causal cache
/// (`cached_decode` semantics): chunk-by-chunk output equals the offline decode exactly.
#[derive(Debug)]
pub struct WanVaeDecoder {
    vae: WanVae,
    options: DecodeOptions,
    cache: FeatureCache,
    started: bool,
}

impl WanVaeDecoder {
    /// A decoder over a loaded VAE (the encoder, if loaded, is unused).
    pub fn new(vae: WanVae, options: DecodeOptions) -> Self {
        let cache = options.new_cache(&vae.device());
        WanVaeDecoder {
            vae,
            options,
            cache,
            started: false,
        }
    }

    /// The underlying VAE.
    pub fn vae(&self) -> &WanVae {
        &self.vae
    }

    /// The options in use.
    pub fn options(&self) -> DecodeOptions {
        self.options
    }

    /// Decodes the next latents `[B, 16, F, h, w]` (the rollout's layout) to raw frames
    /// `[B, T, 3, H, W]` (in about `[−1, 1]`, not clamped), with one transpose: of the latents
    /// for the time-major strategies, of the frames for `Conv3d`. With `zero_history` the
    /// surplus frames of the first latent are dropped.
    pub fn decode_chunk_raw(&mut self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        let frames = self.vae.decode_in_layout(latents, &mut self.cache)?;
        let frames = Layout::TimeMajor.convert(frames, self.cache.layout());
        let first = !self.started;
        self.started = true;
        let surplus = self.vae.config.temporal_factor() - 1;
        if first && self.options.zero_history && surplus > 0 {
            let t = frames.dims()[1];
            return Ok(frames.narrow(1, surplus, t - surplus));
        }
        Ok(frames)
    }
}

impl VideoDecoder for WanVaeDecoder {
    fn kind(&self) -> DecoderKind {
        DecoderKind::WanVae
    }

    /// Latents `[B, 16, F, h, w]` → frames `[B, T, 3, 8h, 8w]` in `[0, 1]`:
    /// `(clamp(x, −1, 1) + 1) / 2`.
    fn decode_chunk(&mut self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        let frames = self.decode_chunk_raw(latents)?;
        Ok((frames.clamp(-1.0, 1.0) + 1.0) / 2.0)
    }

    fn reset(&mut self) {
        self.cache.clear();
        self.started = false;
    }
}
