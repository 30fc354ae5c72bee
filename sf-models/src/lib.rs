//! The causal Wan2.1 DiT (Self-Forcing's `CausalWanModel`) with a per-layer KV cache, on burn.
//!
//! - [`WanConfig`]: hyper-parameters (the 1.3B preset; serde reads the `WanModel` arguments);
//! - [`WanModel`]: full-sequence forward (bidirectional), chunk forward through [`KvCaches`],
//!   block-causal forward, optional [`Intermediates`];
//! - [`loader`]: Wan / diffusers safetensors and Self-Forcing `.pt` checkpoints, with one error
//!   listing every missing, unexpected or mis-shaped tensor;
//! - [`cache`]: the KV-cache bookkeeping (`global_end`, `local_end`, rolling eviction with an
//!   attention sink).
//!
//! Numerics: the residual stream, norms (LayerNorm, RMSNorm), modulation, RoPE rotation and the
//! time embedding are computed in f32 (angles and sinusoids in f64); linears and attention run in
//! the dtype of the weights.

pub mod attention;
pub mod block;
pub mod cache;
pub mod config;
pub mod embeddings;
pub mod head;
mod layers;
pub mod loader;
pub mod model;
pub mod rope;

use std::path::PathBuf;

pub use sf_device::CheckpointProblems;

pub use cache::{CacheConfig, CrossAttnCache, KvCaches, LayerCache, SelfAttnCache, WritePlan};
pub use config::WanConfig;
pub use layers::{WanLayerNorm, WanRmsNorm};
pub use loader::{CheckpointFormat, expected_keys, load_wan_model};
pub use model::{Intermediates, WanModel};
pub use rope::Rope;

/// Errors a user can cause: bad configuration, files, inputs or cache use.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An invalid or unsupported configuration.
    #[error("invalid DiT configuration: {0}")]
    Config(String),
    /// Inputs of the wrong shape or range.
    #[error("invalid DiT input: {0}")]
    InvalidInput(String),
    /// A KV-cache call that does not fit the cache.
    #[error("KV cache: {0}")]
    Cache(String),
    /// A checkpoint that cannot be read.
    #[error("cannot load {path}: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A checkpoint whose tensors do not match the configuration.
    #[error("checkpoint {path} does not match the DiT configuration:{problems}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: CheckpointProblems,
    },
}

impl From<sf_device::CheckpointError> for ModelError {
    fn from(e: sf_device::CheckpointError) -> Self {
        match e {
            sf_device::CheckpointError::Read { path, message } => {
                ModelError::Load { path, message }
            }
            sf_device::CheckpointError::Mismatch { path, problems } => {
                ModelError::Checkpoint { path, problems }
            }
            sf_device::CheckpointError::Pattern(message) => ModelError::Config(message),
        }
    }
}
