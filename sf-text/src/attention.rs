//! T5 self-attention with relative position bias (`T5Attention`, `T5RelativeEmbedding`).
//!
//! `logits = q·kᵀ + bias`, **without** the `1/√d` scaling; `bias = pos_bias + mask`, where the
//! mask gives padding keys f32's most negative value (as Wan's `masked_fill` with
//! `finfo.min`); the softmax is computed in f32 and cast back to the compute dtype.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, FloatDType, Int, Tensor, TensorData};

/// `x @ weightᵀ` in `compute`, the weight cast from its storage dtype for this call only.
pub(crate) fn project<const D: usize>(
    layer: &Linear,
    x: Tensor<D>,
    compute: FloatDType,
) -> Tensor<D> {
    let weight = layer.weight.val();
    let weight = if weight.dtype() == compute.into() {
        weight
    } else {
        weight.cast(compute)
    };
    burn::tensor::module::linear(x.cast(compute), weight, None)
}

/// A bias-free PyTorch `Linear(d_in, d_out)` (lazily initialised; load a checkpoint).
pub(crate) fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(false).init(device)
}

/// The bucket of relative position `key − query` (bidirectional): half the buckets per
/// direction (the upper half for keys after the query); distances below `num_buckets / 4` get
/// their own bucket, larger ones are log-spaced up to `max_distance` and capped at the last
/// bucket of their half. The log is evaluated in f32 exactly as PyTorch does.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let base = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return base + n;
    }
    let scale = (max_distance as f64 / max_exact as f64).ln() as f32;
    let large = ((n as f32 / max_exact as f32).ln() / scale * (half - max_exact) as f32) as usize;
    base + (max_exact + large).min(half - 1)
}

/// The per-layer relative position bias (`pos_embedding`): one learned value per bucket and head.
#[derive(Module, Debug)]
pub struct RelativePositionBias {
    /// `[num_buckets, num_heads]` (key `pos_embedding.embedding.weight`).
    pub embedding: Embedding,
    /// Buckets.
    pub num_buckets: usize,
    /// Distance of the last bucket.
    pub max_distance: usize,
}

impl RelativePositionBias {
    /// A table for `num_heads` heads (lazily initialised; load a checkpoint).
    pub fn new(num_buckets: usize, num_heads: usize, max_distance: usize, device: &Device) -> Self {
        RelativePositionBias {
            embedding: EmbeddingConfig::new(num_buckets, num_heads).init(device),
            num_buckets,
            max_distance,
        }
    }

    /// The bias `[1, heads, len, len]` (f32) for a sequence of `len` tokens.
    pub fn forward(&self, len: usize) -> Tensor<4> {
        let weight = self.embedding.weight.val();
        let device = weight.device();
        let heads = weight.dims()[1];
        let buckets: Vec<i64> = (0..len as i64)
            .flat_map(|q| {
                (0..len as i64).map(move |k| {
                    relative_position_bucket(k - q, self.num_buckets, self.max_distance) as i64
                })
            })
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(buckets, [len * len]), &device);
        weight
            .cast(FloatDType::F32)
            .select(0, index)
            .reshape([len, len, heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }
}

/// Multi-head self-attention (`attn`): bias-free `q, k, v` (`dim → dim_attn`) and `o`.
#[derive(Module, Debug)]
pub struct T5Attention {
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Output projection.
    pub o: Linear,
    /// Heads.
    pub num_heads: usize,
}

impl T5Attention {
    /// An attention of width `dim` with `dim_attn` projected channels.
    pub fn new(dim: usize, dim_attn: usize, num_heads: usize, device: &Device) -> Self {
        T5Attention {
            q: linear(dim, dim_attn, device),
            k: linear(dim, dim_attn, device),
            v: linear(dim, dim_attn, device),
            o: linear(dim_attn, dim, device),
            num_heads,
        }
    }

    /// `x [B, L, dim]` -> `[B, L, dim]` in `compute`. `bias [1 or B, heads, L, L]` is the
    /// position bias; `masked [B, 1, 1, L]` is true for padding keys.
    pub fn forward(
        &self,
        x: Tensor<3>,
        bias: Tensor<4>,
        masked: &Tensor<4, Bool>,
        compute: FloatDType,
    ) -> Tensor<3> {
        let [b, l, _] = x.dims();
        let heads = |t: Tensor<3>| {
            let width = t.dims()[2];
            t.reshape([b, l, self.num_heads, width / self.num_heads])
                .swap_dims(1, 2)
        };
        let q = heads(project(&self.q, x.clone(), compute));
        let k = heads(project(&self.k, x.clone(), compute));
        let v = heads(project(&self.v, x, compute));
        let [_, h, _, _] = q.dims();
        let bias = bias
            .expand([b, h, l, l])
            .mask_fill(masked.clone().expand([b, h, l, l]), f32::MIN);
        let logits = q.matmul(k.swap_dims(2, 3)).cast(FloatDType::F32) + bias;
        let weights = softmax(logits, 3).cast(compute);
        let y = weights.matmul(v).swap_dims(1, 2);
        let width = y.dims()[3] * h;
        project(&self.o, y.reshape([b, l, width]), compute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_t5_rule() {
        // Bidirectional, 32 buckets, max distance 128: exact below 8, log-spaced to 15.
        let b = |r| relative_position_bucket(r, 32, 128);
        assert_eq!((b(0), b(-1), b(-7), b(1), b(7)), (0, 1, 7, 17, 23));
        assert_eq!((b(-8), b(8), b(-11)), (8, 24, 8));
        assert_eq!(
            (b(-16), b(-32), b(-127), b(-128), b(-5000)),
            (10, 12, 15, 15, 15)
        );
        assert_eq!((b(16), b(63), b(65), b(511)), (26, 29, 30, 31));
        for r in -600..600 {
            let bucket = b(r);
            assert!(bucket < 32);
            assert_eq!(bucket >= 16, r > 0, "{r}");
        }
    }
}
