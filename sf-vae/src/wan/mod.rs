//! The Wan2.1 VAE: causal 3D-convolution decoder (streaming, with a feature cache) and encoder.
//!
//! - [`WanVaeConfig`]: hyper-parameters (the real `wan2_1()` preset; serde reads the `WanVAE_`
//!   arguments) and the 16-channel latent normalisation;
//! - [`WanVae`]: offline [`decode`](WanVae::decode), chunked
//!   [`decode_step`](WanVae::decode_step) over a [`FeatureCache`], and
//!   [`encode`](WanVae::encode) (image-to-video);
//! - [`WanVaeDecoder`]: the [`VideoDecoder`](crate::VideoDecoder) for the pipeline;
//! - [`load_wan_vae`]: `Wan2.1_VAE.pth` or safetensors, full or decoder-only, with one error
//!   listing every missing, unexpected or mis-shaped tensor.
//!
//! Inputs and outputs are in upstream's layout `[B, C, T, H, W]`; inside, the activations'
//! [`Layout`] follows the [`ConvStrategy`]: channel-major for burn's `conv3d`, time-major for the
//! 2-D convolutions over stacked frames.

mod attention;
mod blocks;
mod causal_conv;
mod config;
mod conv2d;
mod decoder;
mod encoder;
mod layout;
mod loader;
mod model;
mod norm;
mod resample;
mod residual;
mod wan_vae_decoder;

pub use blocks::VaeBlock;
pub use causal_conv::{CacheSlot, CausalConv3d, ConvStrategy, FeatureCache};
pub use config::{LATENTS_MEAN, LATENTS_STD, WanVaeConfig};
pub use layout::Layout;
pub use loader::{check_checkpoint, expected_keys, is_decoder_key, load_wan_vae, module_path};
pub use model::{DecodeOptions, VaeParts, WanVae};
pub use wan_vae_decoder::WanVaeDecoder;
