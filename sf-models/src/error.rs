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
    /// A LoRA file whose adapters do not fit the DiT's Linear weights.
    #[error(
        "LoRA {path} does not fit the DiT:{problems}\n  Expected PEFT names \
         base_model.model.blocks.<i>.<Linear>.lora_A.weight [r, in] and lora_B.weight [out, r] \
         for every Linear of every block (self_attn/cross_attn q, k, v, o; ffn.0, ffn.2), bare or \
         under 'generator_lora': use the lora.pt trained for this base checkpoint (LongLive's \
         models/lora.pt with models/longlive_base.pt) and the DiT configuration it was trained \
         with"
    )]
    Lora {
        /// The LoRA file.
        path: PathBuf,
        /// Every problem found.
        problems: Box<CheckpointProblems>,
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
            sf_device::CheckpointError::Adapters { path, problems } => {
                ModelError::Lora { path, problems }
            }
            sf_device::CheckpointError::Pattern(message) => ModelError::Config(message),
        }
    }
}
