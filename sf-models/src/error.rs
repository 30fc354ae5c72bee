//! [`ModelError`]: the errors a user can cause in this crate.

use std::path::PathBuf;

use sf_device::CheckpointProblems;

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
