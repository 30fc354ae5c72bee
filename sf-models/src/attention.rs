//! Self- and cross-attention of a Wan block.
//!
//! Both project with `q, k, v, o` (Linear, bias), normalise q and k with an RMSNorm over the full
//! width (when `qk_norm`), split into heads and run a fused attention (`softmax(q·kᵀ/√hd)·v`,
//! [`sdpa`]) that tiles long sequences instead of materialising the score matrix. Self-attention applies
//! 3D RoPE and may read/write a [`SelfAttnCache`]; cross-attention attends to every context row
//! (no mask) and may reuse keys/values from a [`CrossAttnCache`].

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, FloatDType, Tensor};

use crate::ModelError;
use crate::cache::{CrossAttnCache, SelfAttnCache};
use crate::layers::{WanRmsNorm, apply_linear, linear};
use crate::rope::RopeFreqs;

/// Scaled dot-product attention over `[B, heads, L, head_dim]` tensors, scale `1/√head_dim`, no
/// mask. All three inputs must share a dtype.
///
/// On the CPU this is sf-device's fused kernel ([`sf_device::kernels::attention`], which reads
/// the head-split projections in place and returns heads already interleaved for `o`); on GPUs,
/// burn's fused attention over query chunks that bound any materialised scores, never with
/// `is_causal` (burn's flash kernel is wrong with it on Metal; `tests/real_sizes.rs` checks).
pub fn sdpa(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    sf_device::kernels::attention(q, k, v)
}

/// Declares an attention module with the checkpoint's fields (`q`, `k`, `v`, `o`, `norm_q`,
/// `norm_k`) and the projection helpers both kinds share.
macro_rules! attention_module {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Module, Debug)]
        pub struct $name {
            /// Query projection.
            pub q: Linear,
            /// Key projection.
            pub k: Linear,
            /// Value projection.
            pub v: Linear,
            /// Output projection.
            pub o: Linear,
            /// RMSNorm of the projected queries (full width), if `qk_norm`.
            pub norm_q: Option<WanRmsNorm>,
            /// RMSNorm of the projected keys (full width), if `qk_norm`.
            pub norm_k: Option<WanRmsNorm>,
            /// Heads.
            pub num_heads: usize,
        }

        impl $name {
            /// An attention of width `dim` (lazily initialised; load a checkpoint).
            pub fn new(
                dim: usize,
                num_heads: usize,
                qk_norm: bool,
                eps: f64,
                device: &Device,
            ) -> Self {
                let norm = || qk_norm.then(|| WanRmsNorm::new(dim, eps, device));
                $name {
                    q: linear(dim, dim, device),
                    k: linear(dim, dim, device),
                    v: linear(dim, dim, device),
                    o: linear(dim, dim, device),
                    norm_q: norm(),
                    norm_k: norm(),
                    num_heads,
                }
            }

            /// `[B, L, D]` -> `[B, L, heads, head_dim]`.
            fn heads(&self, x: Tensor<3>) -> Tensor<4> {
                let [b, l, d] = x.dims();
                x.reshape([b, l, self.num_heads, d / self.num_heads])
            }

            /// Normalised queries `[B, L, heads, hd]` (compute dtype).
            fn query(&self, x: Tensor<3>) -> Tensor<4> {
                self.heads(rms(&self.norm_q, apply_linear(&self.q, x)))
            }

            /// Normalised keys and values `[B, L, heads, hd]` (compute dtype).
            fn key_value(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
                let k = self.heads(rms(&self.norm_k, apply_linear(&self.k, x.clone())));
                let v = self.heads(apply_linear(&self.v, x));
                (k, v)
            }

            /// Merges heads `[B, heads, L, hd]` and applies `o`.
            fn output(&self, y: Tensor<4>) -> Tensor<3> {
                let [b, h, l, d] = y.dims();
                apply_linear(&self.o, y.swap_dims(1, 2).reshape([b, l, h * d]))
            }
        }
    };
}

/// RMSNorm in f32, result back in the input dtype.
fn rms(norm: &Option<WanRmsNorm>, x: Tensor<3>) -> Tensor<3> {
    match norm {
        Some(n) => {
            let dtype: FloatDType = x.dtype().into();
            n.forward(x).cast(dtype)
        }
        None => x,
    }
}

attention_module!(
    /// Self-attention (`blocks.i.self_attn`).
    SelfAttention
);

attention_module!(
    /// Text cross-attention (`blocks.i.cross_attn`).
    CrossAttention
);

/// Where one self-attention call's tokens sit and how it uses the cache.
#[derive(Clone, Copy, Debug)]
pub struct SelfAttnCall<'a> {
    /// RoPE of the call's tokens: the queries, and the new keys unless `key_rope` is set.
    pub rope: &'a RopeFreqs,
    /// RoPE of the attended cache rows when the cache stores un-roped keys (relative RoPE).
    pub key_rope: Option<&'a RopeFreqs>,
    /// Absolute token index of the first token (for the KV cache).
    pub current_start: usize,
    /// LongLive's `sink_recache_after_switch` (see [`crate::plan_write`]).
    pub sink_recache: bool,
}

impl SelfAttention {
    /// `x [B, L, D]` (compute dtype) -> `[B, L, D]`. Without a cache the tokens attend to each
    /// other (bidirectional); with one, their keys/values are written for absolute tokens
    /// starting at `call.current_start` and the queries attend to the cache's window.
    pub fn forward(
        &self,
        x: Tensor<3>,
        call: SelfAttnCall<'_>,
        cache: Option<&mut SelfAttnCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let q = call.rope.apply(self.query(x.clone())).swap_dims(1, 2);
        let (k, v) = self.key_value(x);
        let k = match call.key_rope {
            Some(_) => k,
            None => call.rope.apply(k),
        }
        .swap_dims(1, 2);
        let v = v.swap_dims(1, 2);
        let (k, v) = match cache {
            Some(cache) => cache.update_with(k, v, call.current_start, call.sink_recache)?,
            None => (k, v),
        };
        let k = match call.key_rope {
            Some(rope) => rope.apply(k.swap_dims(1, 2)).swap_dims(1, 2),
            None => k,
        };
        Ok(self.output(sdpa(q, k, v)))
    }
}

impl CrossAttention {
    /// Keys and values `[B, heads, text_len, hd]` of the embedded context.
    pub fn context_kv(&self, context: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = self.key_value(context);
        (k.swap_dims(1, 2), v.swap_dims(1, 2))
    }

    /// `x [B, L, D]` (compute dtype) attends to every row of the embedded `context`
    /// `[B, text_len, D]`. With a cache, keys/values are computed on its first use and reused
    /// afterwards (then `context` may be `None`).
    pub fn forward(
        &self,
        x: Tensor<3>,
        context: Option<&Tensor<3>>,
        cache: Option<&mut CrossAttnCache>,
    ) -> Result<Tensor<3>, ModelError> {
        let missing = || {
            ModelError::InvalidInput(
                "cross-attention needs the text context (cache is empty)".into(),
            )
        };
        let (k, v) = match cache {
            Some(cache) => match cache.get() {
                Some(kv) => kv,
                None => {
                    let kv = self.context_kv(context.ok_or_else(missing)?.clone());
                    cache.set(kv.0.clone(), kv.1.clone());
                    kv
                }
            },
            None => self.context_kv(context.ok_or_else(missing)?.clone()),
        };
        let q = self.query(x).swap_dims(1, 2);
        let dtype: FloatDType = q.dtype().into();
        Ok(self.output(sdpa(q, k.cast(dtype), v.cast(dtype))))
    }
}
