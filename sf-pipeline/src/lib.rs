//! Self-Forcing streaming text-to-video on burn: the flow-matching scheduler, the self-forcing
//! rollout and the pipeline that composes the DiT, the text encoder and the decoders.
//!
//! - [`Pipeline`]: the embeddable text-to-video pipeline (builder, streaming of decoded chunks,
//!   cancellation, per-chunk timings);
//! - [`scheduler`], [`rollout`]: the flow-matching scheduler and the self-forcing rollout over
//!   any [`CausalDenoiser`];
//! - [`weights`]: model files from a local directory or the Hugging Face hub;
//! - [`video`]: MP4 (H.264) and PNG writers that take frames as they are produced.

pub mod denoiser;
pub mod noise;
pub mod pipeline;
pub mod plan;
pub mod rollout;
pub mod scheduler;
pub mod video;
pub mod weights;

pub use denoiser::DitDenoiser;
pub use noise::{NoiseSource, SeededNoise, random_seed};
pub use pipeline::{
    FrameChunk, GeneratedVideo, GenerationRequest, ModelConfigs, Pipeline, PipelineBuilder,
    PreparedPipeline, StreamSummary, VideoStream,
};
pub use plan::{
    GenerationShape, MemoryEstimate, MemoryPlan, ModelSizes, PlanMode, estimate_memory, plan_memory,
};
pub use rollout::{
    CallKind, CallRecord, CancelToken, CausalDenoiser, ChunkOutput, ChunkPlan, LatentShape,
    Rollout, RolloutConfig,
};
pub use scheduler::{FlowMatchScheduler, SchedulerConfig};
pub use sf_vae::DecoderKind;
pub use video::{
    ExistingFile, Mp4Options, Mp4Summary, Mp4Writer, PngWriter, VideoError, check_target,
    encode_png,
};
pub use weights::{ModelFiles, ModelLocation, WeightsError};
pub use {sf_device, sf_models, sf_text, sf_vae};

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
