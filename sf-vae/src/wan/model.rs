//! `WanVAE_`: the top-level `conv1` / `conv2` around the encoder and decoder, latent
//! (de)normalisation, offline and chunked decoding, and encoding.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::causal_conv::{CausalConv3d, ConvStrategy, FeatureCache};
use super::config::WanVaeConfig;
use super::decoder::Decoder3d;
use super::encoder::Encoder3d;
use crate::VaeError;

/// Which halves of the VAE to build (and load).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VaeParts {
    /// Encoder, `conv1`, `conv2` and decoder.
    #[default]
    Full,
    /// Only `conv2` and the decoder (keys containing `decoder.` or `conv2`): about 58 % of the
    /// parameters of the real VAE.
    DecoderOnly,
}

/// How a streaming decode computes and caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// How 3-D convolutions are computed.
    pub strategy: ConvStrategy,
    /// The demo's zero-initialised cache (`ZERO_VAE_CACHE`): the first latent frame yields
    /// `temporal_factor` frames instead of one. [`WanVaeDecoder`](super::WanVaeDecoder) drops the
    /// surplus so the frame count matches; the pixels of the first frames differ slightly from
    /// the offline decode.
    pub zero_history: bool,
}

impl DecodeOptions {
    /// A fresh (empty) cache for a new video with these options.
    pub fn new_cache(&self, device: &Device) -> FeatureCache {
        FeatureCache::new(self.strategy.resolve(device), self.zero_history)
    }
}

/// The Wan2.1 VAE. Every tensor is time-major: latents `[B, F, z_dim, h, w]`, videos
/// `[B, T, 3, H, W]` (the fixtures' `[B, C, T, H, W]` must be transposed).
#[derive(Module, Debug)]
pub struct WanVae {
    /// The encoder (absent when built decoder-only).
    pub encoder: Option<Encoder3d>,
    /// `2·z_dim → 2·z_dim` 1×1×1 after the encoder (absent when decoder-only).
    pub conv1: Option<CausalConv3d>,
    /// `z_dim → z_dim` 1×1×1 before the decoder.
    pub conv2: CausalConv3d,
    /// The decoder.
    pub decoder: Decoder3d,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: WanVaeConfig,
}

impl WanVae {
    /// A VAE for `config` with random weights (checkpoints overwrite them).
    pub fn new(config: &WanVaeConfig, parts: VaeParts, device: &Device) -> Result<Self, VaeError> {
        config.validate()?;
        let z = config.z_dim;
        let full = parts == VaeParts::Full;
        Ok(WanVae {
            encoder: full.then(|| Encoder3d::new(config, device)),
            conv1: full.then(|| CausalConv3d::new(2 * z, 2 * z, [1, 1, 1], [0, 0, 0], 1, device)),
            conv2: CausalConv3d::new(z, z, [1, 1, 1], [0, 0, 0], 1, device),
            decoder: Decoder3d::new(config, device),
            config: config.clone(),
        })
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.conv2.weight.lazy_device()
    }

    /// Per-channel `[1, 1, z_dim, 1, 1]` tensors of the latent mean and std, in `like`'s dtype.
    fn scale(&self, like: &Tensor<5>) -> (Tensor<5>, Tensor<5>) {
        let z = self.config.z_dim;
        let device = like.device();
        let make = |v: &[f32]| {
            Tensor::<5>::from_data(TensorData::new(v.to_vec(), [1, 1, z, 1, 1]), &device)
                .cast(like.dtype())
        };
        (
            make(&self.config.latents_mean),
            make(&self.config.latents_std),
        )
    }

    /// Decodes normalised latents `[B, F, z_dim, h, w]` continuing the video in `cache`, one
    /// latent frame at a time. Returns raw frames `[B, T, 3, 8h, 8w]` (not clamped): `1 + 4(F−1)`
    /// frames when the cache is fresh, `4F` afterwards (`temporal_factor` for 4).
    pub fn decode_step(
        &self,
        z: Tensor<5>,
        cache: &mut FeatureCache,
    ) -> Result<Tensor<5>, VaeError> {
        let [b, f, c, h, w] = z.dims();
        if c != self.config.z_dim || b == 0 || f == 0 || h == 0 || w == 0 {
            return Err(VaeError::InvalidInput(format!(
                "latents must be [B, F, {}, h, w] with non-zero sizes, got [{b}, {f}, {c}, {h}, {w}]",
                self.config.z_dim
            )));
        }
        let z = z.cast(self.conv2.weight.val().dtype());
        let (mean, std) = self.scale(&z);
        let x = self
            .conv2
            .forward(z * std + mean, None, ConvStrategy::Conv2dStacked);
        let frames: Vec<Tensor<5>> = (0..f)
            .map(|i| self.decoder.forward(x.clone().narrow(1, i, 1), cache))
            .collect();
        Ok(Tensor::cat(frames, 1))
    }

    /// Offline decode (`WanVAE_.decode` then `clamp(-1, 1)`): normalised latents
    /// `[B, F, z_dim, h, w]` → frames `[B, 1 + 4(F−1), 3, 8h, 8w]` in `[−1, 1]`.
    pub fn decode(&self, z: Tensor<5>, options: DecodeOptions) -> Result<Tensor<5>, VaeError> {
        let mut cache = options.new_cache(&self.device());
        Ok(self.decode_step(z, &mut cache)?.clamp(-1.0, 1.0))
    }

    /// Encodes frames `[B, T, 3, H, W]` in `[−1, 1]` (T = 1 + 4k, H and W multiples of 8) to
    /// normalised latent means `[B, 1 + k, z_dim, H/8, W/8]`: `(μ − mean) / std`, frames consumed
    /// in groups 1, 4, 4, … with the encoder's causal cache.
    pub fn encode(&self, video: Tensor<5>, strategy: ConvStrategy) -> Result<Tensor<5>, VaeError> {
        let (Some(encoder), Some(conv1)) = (&self.encoder, &self.conv1) else {
            return Err(VaeError::Config(
                "this VAE was built decoder-only; load it with VaeParts::Full to encode".into(),
            ));
        };
        let [b, t, c, h, w] = video.dims();
        let tf = self.config.temporal_factor();
        let sf = self.config.spatial_factor();
        if c != 3
            || b == 0
            || t == 0
            || (t - 1) % tf != 0
            || h % sf != 0
            || w % sf != 0
            || h == 0
            || w == 0
        {
            return Err(VaeError::InvalidInput(format!(
                "video must be [B, 1 + {tf}k, 3, H, W] with H and W non-zero multiples of {sf}, \
                 got [{b}, {t}, {c}, {h}, {w}]"
            )));
        }
        let video = video.cast(self.conv2.weight.val().dtype());
        let mut cache = FeatureCache::new(strategy.resolve(&self.device()), false);
        let mut outs = vec![encoder.forward(video.clone().narrow(1, 0, 1), &mut cache)];
        for start in (1..t).step_by(tf) {
            outs.push(encoder.forward(video.clone().narrow(1, start, tf), &mut cache));
        }
        let moments = conv1.forward(Tensor::cat(outs, 1), None, ConvStrategy::Conv2dStacked);
        let mu = moments.narrow(2, 0, self.config.z_dim);
        let (mean, std) = self.scale(&mu);
        Ok((mu - mean) / std)
    }
}
