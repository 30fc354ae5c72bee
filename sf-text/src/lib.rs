//! umT5 text conditioning for Wan2.1 / Self-Forcing, on burn.
//!
//! - [`UmT5Tokenizer`]: Wan's prompt cleaning ([`clean_prompt`], ftfy's `fix_text` and Wan's whitespace rules) and the real umT5
//!   `tokenizer.json`, `</s>` appended, truncated/padded to the text length (512) with a mask;
//! - [`UmT5Encoder`]: the umT5-XXL encoder ([`UmT5Config::umt5_xxl`]) with all weights resident
//!   in their storage dtype (bf16) and computed one matrix at a time in the compute dtype;
//! - [`LayerStreamingEncoder`]: the same forward reading one block at a time from the checkpoint
//!   (for machines that cannot hold the 11.4 GB of weights);
//! - [`check_checkpoint`]: `models_t5_umt5-xxl-enc-bf16.pth` (pickle) or safetensors checked
//!   against [`expected_keys`], with one error listing every missing, unexpected or mis-shaped
//!   tensor;
//! - [`PromptCache`]: prompt embeddings on disk, keyed by prompt, text length, encoder and dtype.
//!
//! Numerics follow Wan's `t5.py`: RMS norms in f32, attention without `1/√d` scaling plus a
//! per-layer relative position bias and a padding mask, softmax in f32, gated GELU-tanh
//! feed-forward, final norm; rows at positions ≥ the prompt length are set to zero. The residual
//! stream is f32; matmuls run in the compute dtype. Drop an encoder to free its memory.

mod attention;
mod block;
mod clean;
mod config;
mod encoder;
mod error;
mod ffn;
mod html;
mod layer_streamed;
mod loader;
mod norm;
mod prompt_cache;
mod tokenizer;

pub use error::TextError;
pub use sf_device::{CheckpointProblems, Dtype, Precision};

pub use block::FP16_CLAMP;
pub use clean::{clean_prompt, fix_text};
pub use config::{TextConfig, UmT5Config};
pub use encoder::{UmT5Encoder, batch_tensors, zero_padding};
pub use layer_streamed::LayerStreamingEncoder;
pub use loader::{check_checkpoint, expected_keys};
pub use prompt_cache::{CacheKey, EncoderIdentity, PromptCache};
pub use tokenizer::{Tokenized, UmT5Tokenizer, WAN_TEXT_LEN};
