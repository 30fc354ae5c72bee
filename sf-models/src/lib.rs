//! The causal Wan2.1 DiT (Self-Forcing's `CausalWanModel`) with a per-layer KV cache, on burn.
//!
//! - [`WanConfig`]: hyper-parameters (the 1.3B preset; serde reads the `WanModel` arguments);
//! - [`WanModel`]: full-sequence forward (bidirectional), chunk forward through [`KvCaches`],
//!   block-causal forward, optional [`Intermediates`];
//! - [`load_wan_model`]: Wan / diffusers safetensors and Self-Forcing `.pt` checkpoints
//!   ([`CheckpointFormat`]), with one error listing every missing, unexpected or mis-shaped
//!   tensor; [`load_wan_model_with_lora`] merges a LoRA ([`DitLora`], LongLive's `lora.pt`);
//! - [`KvCaches`], [`CacheConfig`]: the KV-cache bookkeeping (`global_end`, `local_end`, rolling
//!   eviction with an attention sink).
//!
//! Numerics: the residual stream, norms (LayerNorm, RMSNorm), modulation, RoPE rotation and the
//! time embedding are computed in f32 (angles and sinusoids in f64); linears and attention run in
//! the dtype of the weights.

mod attention;
mod block;
mod cache;
mod config;
mod embeddings;
mod error;
mod head;
mod layers;
mod loader;
mod model;
mod rope;

pub use error::ModelError;
pub use sf_device::CheckpointProblems;

pub use attention::sdpa;
pub use cache::{
    CacheConfig, CacheRules, CrossAttnCache, KvCaches, LayerCache, SelfAttnCache, WritePlan,
    plan_write,
};
pub use config::WanConfig;
pub use layers::{WanLayerNorm, WanRmsNorm};
pub use loader::{
    CheckpointFormat, DitLora, check_checkpoint, check_checkpoint_with_lora, expected_keys,
    list_tensors, load_wan_model, load_wan_model_with_lora, lora_targets, module_path,
};
pub use model::{Intermediates, WanModel};
pub use rope::Rope;
