//! [`VaeError`]: the errors a user can cause in this crate.

use std::path::PathBuf;

use sf_device::CheckpointProblems;

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
            // No LoRA is merged into this crate's models.
            sf_device::CheckpointError::Adapters { path, problems } => VaeError::Checkpoint {
                path,
                problems: *problems,
            },
            sf_device::CheckpointError::Pattern(message) => VaeError::Config(message),
        }
    }
}
