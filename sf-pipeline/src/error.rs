//! [`PipelineError`]: the errors a user can cause in this crate.

use crate::video::VideoError;
use crate::weights::WeightsError;

/// Errors of the pipeline crate.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Tensors whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A device or precision problem.
    #[error(transparent)]
    Device(#[from] sf_device::DeviceError),
    /// The memory plan does not fit.
    #[error(
        "this generation needs about {needed} but only {budget} is available. To fit, try {suggestions}"
    )]
    DoesNotFit {
        /// Estimated peak.
        needed: String,
        /// What is available.
        budget: String,
        /// What would make it fit.
        suggestions: String,
    },
    /// The caller cancelled the run.
    #[error("cancelled")]
    Cancelled,
    /// A prompt switch was asked of a stream that has ended.
    #[error(
        "the stream has ended, so the prompt switch cannot take effect: start a new generation \
         with this prompt"
    )]
    StreamEnded,
    /// NaN or Inf appeared in the latents: the run stops; chunks already yielded are kept.
    #[error(
        "the latents of chunk {chunk} (from latent frame {start_frame}) contain NaN or Inf; \
         the run was stopped (try f32 precision)"
    )]
    NonFinite {
        /// Generated chunk index.
        chunk: usize,
        /// Its first latent frame.
        start_frame: usize,
    },
    /// The DiT refused its inputs or weights.
    #[error(transparent)]
    Model(#[from] sf_models::ModelError),
    /// The tokenizer or the text encoder refused its inputs or weights.
    #[error(transparent)]
    Text(#[from] sf_text::TextError),
    /// A decoder refused its inputs or weights.
    #[error(transparent)]
    Vae(#[from] sf_vae::VaeError),
    /// Model files are missing or cannot be downloaded.
    #[error(transparent)]
    Weights(Box<WeightsError>),
    /// The video file cannot be written.
    #[error(transparent)]
    Video(#[from] VideoError),
}
