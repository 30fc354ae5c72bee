//! The two video decoders of Self-Forcing, on burn: the Wan2.1 VAE (causal 3D convolutions
//! with a feature cache; higher quality, also encodes) and TAEHV (a tiny 2D decoder with
//! per-block memory; much faster). Both decode chunk by chunk as the rollout produces latents
//! and give exactly the frames of decoding the whole latent at once.
//!
//! [`VideoDecoder`] is the one interface the pipeline, the CLI and the web demo use, and
//! [`load_decoder`] its one constructor, so the decoder is chosen at run time ([`DecoderKind`]).
//! Both take latents in the rollout's layout `[B, C, F, h, w]`.

pub mod decoder;
pub mod taehv;
pub mod wan;

use std::path::PathBuf;

pub use decoder::{
    DecoderConfigs, DecoderKind, RgbFrame, VideoDecoder, frames_to_rgb8, load_decoder,
};
pub use sf_device::CheckpointProblems;

/// Errors a user can cause: bad configuration, files or inputs.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    /// A decoder name this build does not know.
    #[error("unknown decoder '{input}': expected 'wan-vae' or 'taehv'")]
    UnknownDecoder {
        /// What was given.
        input: String,
    },
    /// An invalid or unsupported configuration.
    #[error("invalid decoder configuration: {0}")]
    Config(String),
    /// Inputs of the wrong shape or range.
    #[error("invalid decoder input: {0}")]
    InvalidInput(String),
    /// A checkpoint that cannot be read.
    #[error("cannot load {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A checkpoint whose tensors do not match the configuration.
    #[error("checkpoint {path} does not match the decoder configuration:{problems}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: CheckpointProblems,
    },
}

impl From<sf_device::CheckpointError> for VaeError {
    fn from(e: sf_device::CheckpointError) -> Self {
        match e {
            sf_device::CheckpointError::Read { path, message } => VaeError::Load { path, message },
            sf_device::CheckpointError::Mismatch { path, problems } => {
                VaeError::Checkpoint { path, problems }
            }
            sf_device::CheckpointError::Pattern(message) => VaeError::Config(message),
        }
    }
}
