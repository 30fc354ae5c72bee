//! Self-Forcing streaming text-to-video on burn: the flow-matching scheduler, the self-forcing
//! rollout and the pipeline that composes the DiT, the text encoder and the decoders.
//!
//! - [`Pipeline`]: the embeddable text-to-video pipeline (builder, streaming of decoded chunks,
//!   cancellation, per-chunk timings);
//! - [`FlowMatchScheduler`], [`Rollout`]: the flow-matching scheduler and the self-forcing
//!   rollout over any [`CausalDenoiser`] (the DiT through [`DitDenoiser`]);
//! - [`plan_memory`]: the memory plan (resident, low-memory, or a refusal that says what fits);
//! - [`weights`]: model files from a local directory or the Hugging Face hub;
//! - [`video`]: MP4 (H.264) and PNG writers that take frames as they are produced.

mod denoiser;
mod error;
mod noise;
mod pipeline;
mod plan;
mod rollout;
mod scheduler;
pub mod video;
pub mod weights;

pub use denoiser::DitDenoiser;
pub use error::PipelineError;
pub use noise::{NoiseSource, SeededNoise, random_seed};
pub use pipeline::{
    FamilyPreset, FrameChunk, GeneratedVideo, GenerationRequest, LONGLIVE, ModelConfigs,
    ModelFamily, Pipeline, PipelineBuilder, PreparedPipeline, PromptEncoder, PromptStart,
    SELF_FORCING, StreamEnd, StreamSummary, UnknownFamily, VideoStream,
};
pub use plan::{
    GenerationShape, MemoryEstimate, MemoryPlan, ModelSizes, PlanMode, estimate_memory, plan_memory,
};
pub use rollout::{
    CallKind, CallRecord, CancelToken, CausalDenoiser, ChunkOutput, ChunkPlan, LatentShape,
    LongLiveConfig, MAX_ROPE_FRAMES, PromptSwitch, Rollout, RolloutConfig, SwitchEvent,
    UnappliedSwitch,
};
pub use scheduler::{FlowMatchScheduler, SchedulerConfig};
pub use sf_vae::DecoderKind;
pub use video::{
    ExistingFile, Mp4Options, Mp4Summary, Mp4Writer, PngWriter, VideoError, check_target,
    encode_png,
};
pub use weights::{ModelFiles, ModelLocation, WeightsError};
pub use {sf_device, sf_models, sf_text, sf_vae};
