//! [`TextError`]: the errors a user can cause in this crate.

use std::path::PathBuf;

use sf_device::{CheckpointProblems, Dtype};

/// Errors a user can cause: configuration, files, inputs, precision, cache.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// An invalid or unsupported configuration.
    #[error("invalid text-encoder configuration: {0}")]
    Config(String),
    /// A tokenizer file that cannot be used, or a prompt it cannot encode.
    #[error("tokenizer{}: {message}", file.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Tokenizer {
        /// The tokenizer file, if the error is about it.
        file: Option<PathBuf>,
        /// Why.
        message: String,
    },
    /// Inputs of the wrong shape or range.
    #[error("invalid text-encoder input: {0}")]
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
    #[error("checkpoint {path} does not match the umT5 configuration:{problems}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: CheckpointProblems,
    },
    /// A dtype the device cannot store or compute in.
    #[error("the text encoder cannot use {dtype} on {device} (wgpu has no bf16: use f16 or f32)")]
    UnsupportedDtype {
        /// The dtype asked for.
        dtype: Dtype,
        /// The device.
        device: String,
    },
    /// The prompt cache cannot be written.
    #[error("prompt cache {path}: {message}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl From<sf_device::CheckpointError> for TextError {
    fn from(e: sf_device::CheckpointError) -> Self {
        match e {
            sf_device::CheckpointError::Read { path, message } => TextError::Load { path, message },
            sf_device::CheckpointError::Mismatch { path, problems } => {
                TextError::Checkpoint { path, problems }
            }
            // No LoRA is merged into this crate's models.
            sf_device::CheckpointError::Adapters { path, problems } => TextError::Checkpoint {
                path,
                problems: *problems,
            },
            sf_device::CheckpointError::Pattern(message) => TextError::Config(message),
        }
    }
}
