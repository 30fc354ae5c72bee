//! `WanVAE_`: the top-level `conv1` / `conv2` around the encoder and decoder, latent
//! (de)normalisation, offline and chunked decoding, and encoding.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::causal_conv::{CausalConv3d, ConvStrategy, FeatureCache};
use super::config::WanVaeConfig;
use super::decoder::Decoder3d;
use super::encoder::Encoder3d;
use super::layout::Layout;
use crate::VaeError;
use crate::video_decoder::check_latents;

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
        FeatureCache::new(self.strategy, self.zero_history, device)
    }
}

/// The Wan2.1 VAE. Its inputs and outputs are in upstream's layout `[B, C, T, H, W]` (the
/// rollout's and the fixtures'): latents `[B, z_dim, F, h, w]`, videos `[B, 3, T, H, W]`. Inside,
/// activations are in the [`Layout`] of the [`ConvStrategy`].
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

    /// Per-channel tensors of the latent mean and std, broadcastable to a video in `layout`,
    /// in `like`'s dtype.
    fn scale(&self, like: &Tensor<5>, layout: Layout) -> (Tensor<5>, Tensor<5>) {
        let z = self.config.z_dim;
        let device = like.device();
        let shape = layout.shape([1, z, 1, 1, 1]);
        let make = |v: &[f32]| {
            Tensor::<5>::from_data(TensorData::new(v.to_vec(), shape), &device).cast(like.dtype())
        };
        (
            make(&self.config.latents_mean),
            make(&self.config.latents_std),
        )
    }

    /// [`decode_step`](Self::decode_step) with the frames left in the cache's layout.
    pub(crate) fn decode_in_layout(
        &self,
        z: Tensor<5>,
        cache: &mut FeatureCache,
    ) -> Result<Tensor<5>, VaeError> {
        check_latents(&z, self.config.z_dim)?;
        let layout = cache.layout();
        let z = layout.convert(
            z.cast(self.conv2.weight.val().dtype()),
            Layout::ChannelMajor,
        );
        let (mean, std) = self.scale(&z, layout);
        let x = cache.conv_uncached(&self.conv2, z * std + mean);
        let frames: Vec<Tensor<5>> = (0..layout.frames(&x))
            .map(|i| {
                self.decoder
                    .forward(layout.narrow_time(x.clone(), i, 1), cache)
            })
            .collect();
        Ok(layout.cat_time(frames))
    }

    /// Decodes normalised latents `[B, z_dim, F, h, w]` continuing the video in `cache`, one
    /// latent frame at a time. Returns raw frames `[B, 3, T, 8h, 8w]` (not clamped): `1 + 4(F−1)`
    /// frames when the cache is fresh, `4F` afterwards (`temporal_factor` for 4).
    pub fn decode_step(
        &self,
        z: Tensor<5>,
        cache: &mut FeatureCache,
    ) -> Result<Tensor<5>, VaeError> {
        let frames = self.decode_in_layout(z, cache)?;
        Ok(Layout::ChannelMajor.convert(frames, cache.layout()))
    }

    /// Offline decode (`WanVAE_.decode` then `clamp(-1, 1)`): normalised latents
    /// `[B, z_dim, F, h, w]` → frames `[B, 3, 1 + 4(F−1), 8h, 8w]` in `[−1, 1]`.
    pub fn decode(&self, z: Tensor<5>, options: DecodeOptions) -> Result<Tensor<5>, VaeError> {
        let mut cache = options.new_cache(&self.device());
        Ok(self.decode_step(z, &mut cache)?.clamp(-1.0, 1.0))
    }

    /// Encodes frames `[B, 3, T, H, W]` in `[−1, 1]` (T = 1 + 4k, H and W multiples of 8) to
    /// normalised latent means `[B, z_dim, 1 + k, H/8, W/8]`: `(μ − mean) / std`, frames consumed
    /// in groups 1, 4, 4, … with the encoder's causal cache.
    pub fn encode(&self, video: Tensor<5>, strategy: ConvStrategy) -> Result<Tensor<5>, VaeError> {
        let (Some(encoder), Some(conv1)) = (&self.encoder, &self.conv1) else {
            return Err(VaeError::Config(
                "this VAE was built decoder-only; load it with VaeParts::Full to encode".into(),
            ));
        };
        let [b, c, t, h, w] = video.dims();
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
                "video must be [B, 3, 1 + {tf}k, H, W] with H and W non-zero multiples of {sf}, \
                 got [{b}, {c}, {t}, {h}, {w}]"
            )));
        }
        let mut cache = FeatureCache::new(strategy, false, &self.device());
        let layout = cache.layout();
        let video = layout.convert(
            video.cast(self.conv2.weight.val().dtype()),
            Layout::ChannelMajor,
        );
        let group = |start, len| layout.narrow_time(video.clone(), start, len);
        let mut outs = vec![encoder.forward(group(0, 1), &mut cache)];
        for start in (1..t).step_by(tf) {
            outs.push(encoder.forward(group(start, tf), &mut cache));
        }
        let moments = cache.conv_uncached(conv1, layout.cat_time(outs));
        let mu = moments.narrow(layout.channel_axis(), 0, self.config.z_dim);
        let (mean, std) = self.scale(&mu, layout);
        Ok(Layout::ChannelMajor.convert((mu - mean) / std, layout))
    }
}
