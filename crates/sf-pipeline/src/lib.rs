//! Self-Forcing streaming text-to-video on burn: the flow-matching scheduler, the self-forcing
//! rollout and the pipeline that composes the DiT, the text encoder and the decoders.
//!
//! What works in this release: the scheduler ([`scheduler`]), the rollout over any
//! [`CausalDenoiser`] ([`rollout`]) and the fixture parity runner ([`parity`]). The end-to-end
//! pipeline is not implemented yet.

pub mod denoiser;
pub mod noise;
pub mod parity;
pub mod rollout;
pub mod scheduler;

pub use denoiser::DitDenoiser;
pub use noise::{NoiseSource, SeededNoise};
pub use rollout::{
    CallKind, CallRecord, CancelToken, CausalDenoiser, ChunkOutput, ChunkPlan, LatentShape,
    Rollout, RolloutConfig,
};
pub use scheduler::{FlowMatchScheduler, SchedulerConfig};
pub use sf_device;

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
    /// A fixture that cannot be read.
    #[error(transparent)]
    Fixture(#[from] sf_device::fixture::FixtureError),
}
