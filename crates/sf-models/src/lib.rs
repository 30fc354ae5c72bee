//! The causal Wan2.1 DiT (Self-Forcing's `CausalWanModel`) with a per-layer KV cache, on burn.
//!
//! - [`WanConfig`]: hyper-parameters (1.3B preset, or read from fixture metadata);
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

use std::fmt;
use std::path::PathBuf;

pub use cache::{CacheConfig, CrossAttnCache, KvCaches, LayerCache, SelfAttnCache, WritePlan};
pub use config::WanConfig;
pub use layers::{WanLayerNorm, WanRmsNorm};
pub use loader::{CheckpointFormat, expected_keys, load_wan_model};
pub use model::{Intermediates, WanModel};
pub use rope::Rope;

/// Everything wrong with a checkpoint, reported at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointProblems {
    /// Expected tensors the file lacks (original Wan names).
    pub missing: Vec<String>,
    /// Tensors in the file that the model does not have (file names).
    pub unexpected: Vec<String>,
    /// `(file name, expected shape, found shape)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Other per-tensor failures (unreadable data, wrong dtype kind).
    pub other: Vec<String>,
}

impl CheckpointProblems {
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.mismatched.is_empty()
            && self.other.is_empty()
    }
}

impl fmt::Display for CheckpointProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.missing.is_empty() {
            write!(f, "\n  missing ({}):", self.missing.len())?;
            for k in &self.missing {
                write!(f, "\n    {k}")?;
            }
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected ({}):", self.unexpected.len())?;
            for k in &self.unexpected {
                write!(f, "\n    {k}")?;
            }
        }
        if !self.mismatched.is_empty() {
            write!(f, "\n  wrong shape ({}):", self.mismatched.len())?;
            for (k, want, found) in &self.mismatched {
                write!(f, "\n    {k}: expected {want:?}, found {found:?}")?;
            }
        }
        for other in &self.other {
            write!(f, "\n  {other}")?;
        }
        Ok(())
    }
}

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
