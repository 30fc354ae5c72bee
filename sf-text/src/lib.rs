//! umT5 text conditioning for Wan2.1 / Self-Forcing, on burn.
//!
//! - [`UmT5Tokenizer`]: Wan's prompt cleaning ([`clean::clean_prompt`]) and the real umT5
//!   `tokenizer.json`, `</s>` appended, truncated/padded to the text length (512) with a mask;
//! - [`UmT5Encoder`]: the umT5-XXL encoder ([`UmT5Config::umt5_xxl`]) with all weights resident
//!   in their storage dtype (bf16) and computed one matrix at a time in the compute dtype;
//! - [`LayerStreamingEncoder`]: the same forward reading one block at a time from the checkpoint
//!   (for machines that cannot hold the 11.4 GB of weights);
//! - [`loader`]: `models_t5_umt5-xxl-enc-bf16.pth` (pickle) or safetensors, with one error listing
//!   every missing, unexpected or mis-shaped tensor ([`expected_keys`]);
//! - [`PromptCache`]: prompt embeddings on disk, keyed by prompt, text length, encoder and dtype.
//!
//! Numerics follow Wan's `t5.py`: RMS norms in f32, attention without `1/√d` scaling plus a
//! per-layer relative position bias and a padding mask, softmax in f32, gated GELU-tanh
//! feed-forward, final norm; rows at positions ≥ the prompt length are set to zero. The residual
//! stream is f32; matmuls run in the compute dtype. Drop an encoder to free its memory.

pub mod attention;
pub mod block;
pub mod cache;
pub mod clean;
pub mod config;
pub mod encoder;
pub mod ffn;
pub mod html;
pub mod loader;
pub mod norm;
pub mod streaming;
pub mod tokenizer;

use std::path::PathBuf;

pub use sf_device::{CheckpointProblems, Dtype, Precision};

pub use cache::{CacheKey, EncoderIdentity, PromptCache};
pub use clean::clean_prompt;
pub use config::{TextConfig, UmT5Config};
pub use encoder::{UmT5Encoder, batch_tensors, zero_padding};
pub use loader::{check_checkpoint, expected_keys};
pub use streaming::LayerStreamingEncoder;
pub use tokenizer::{Tokenized, UmT5Tokenizer, WAN_TEXT_LEN};

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
            sf_device::CheckpointError::Pattern(message) => TextError::Config(message),
        }
    }
}
