//! The two video decoders of Self-Forcing, on burn: the Wan2.1 VAE (causal 3D convolutions
//! with a feature cache; higher quality, also encodes) and TAEHV (a tiny 2D decoder with
//! per-block memory; much faster). Both decode chunk by chunk as the rollout produces latents
//! and give exactly the frames of decoding the whole latent at once.
//!
//! [`VideoDecoder`] is the one interface the pipeline, the CLI and the web demo use, and
//! [`load_decoder`] its one constructor, so the decoder is chosen at run time ([`DecoderKind`]).
//! Both take latents in the rollout's layout `[B, C, F, h, w]`.

mod error;
pub mod taehv;
mod video_decoder;
pub mod wan;

pub use error::VaeError;
pub use sf_device::CheckpointProblems;
pub use video_decoder::{
    DecoderConfigs, DecoderKind, RgbFrame, VideoDecoder, frames_to_rgb8, load_decoder,
};
