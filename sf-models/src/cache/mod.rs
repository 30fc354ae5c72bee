//! Per-layer KV caches of the causal DiT (Self-Forcing `kv_cache` / `crossattn_cache`).
//!
//! The self-attention cache holds `S` token rows of post-RoPE keys and values plus two counters,
//! `global_end` (absolute end of the stream written so far) and `local_end` (rows in use). Each
//! call writes `n` new tokens for absolute positions `[current_start, current_start + n)`:
//!
//! 1. if rolling, the call advances the stream (`cur_end > G`) and `L + n > S`:
//!    `evict = L + n − S`, `keep = L − evict − sink`; rows `[sink + evict, sink + evict + keep)`
//!    move to `[sink, sink + keep)`; `L' = L + (cur_end − G) − evict`;
//! 2. otherwise `L' = L + (cur_end − G)`;
//! 3. rows `[L' − n, L')` receive the new keys/values; queries attend to rows `[max(0, L' − S), L')`;
//! 4. `G := cur_end`, `L := L'`.
//!
//! Repeated calls for the same chunk therefore overwrite the same rows. LongLive's variant of
//! these rules (sink protection, zero sink rows attended) is [`CacheRules::LongLive`], see
//! [`plan_write`].

use burn::tensor::{FloatDType, Tensor};

use crate::ModelError;

mod plan;

pub use plan::{CacheConfig, CacheRules, WritePlan, plan_write};

/// One layer's self-attention cache: keys/values `[B, heads, S, head_dim]` and the counters.
#[derive(Clone, Debug)]
pub struct SelfAttnCache {
    config: CacheConfig,
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
    global_end: usize,
    local_end: usize,
    last: Option<WritePlan>,
}

impl SelfAttnCache {
    /// An empty cache (buffers are allocated at the first write).
    pub fn new(config: CacheConfig) -> Self {
        SelfAttnCache {
            config,
            k: None,
            v: None,
            global_end: 0,
            local_end: 0,
            last: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// `global_end` (absolute token end of the stream written so far).
    pub fn global_end(&self) -> usize {
        self.global_end
    }

    /// `local_end` (rows in use).
    pub fn local_end(&self) -> usize {
        self.local_end
    }

    /// The plan of the last call, if any.
    pub fn last_plan(&self) -> Option<WritePlan> {
        self.last
    }

    /// The key and value buffers `[B, heads, S, head_dim]` (rows past `local_end` are stale),
    /// once allocated.
    pub fn buffers(&self) -> Option<(&Tensor<4>, &Tensor<4>)> {
        self.k.as_ref().zip(self.v.as_ref())
    }

    /// Counters back to zero. Self-Forcing's rules keep the buffers (rows past `local_end` are
    /// never read); LongLive's drop them, since it attends never-written sink rows as zeros.
    pub fn reset(&mut self) {
        self.global_end = 0;
        self.local_end = 0;
        self.last = None;
        if self.config.rules == CacheRules::LongLive {
            self.zero_kv();
        }
    }

    /// Keys and values back to zero, counters kept (LongLive's switch with `global_sink` off).
    pub fn zero_kv(&mut self) {
        self.k = None;
        self.v = None;
    }

    /// Writes new keys/values `[B, heads, n, head_dim]` for absolute tokens starting at
    /// `current_start` and returns the attended keys and values (in the input dtype).
    pub fn update(
        &mut self,
        k_new: Tensor<4>,
        v_new: Tensor<4>,
        current_start: usize,
    ) -> Result<(Tensor<4>, Tensor<4>), ModelError> {
        self.update_with(k_new, v_new, current_start, false)
    }

    /// [`update`](Self::update) with LongLive's `sink_recache_after_switch` flag.
    pub fn update_with(
        &mut self,
        k_new: Tensor<4>,
        v_new: Tensor<4>,
        current_start: usize,
        sink_recache: bool,
    ) -> Result<(Tensor<4>, Tensor<4>), ModelError> {
        let [b, h, n, d] = k_new.dims();
        let plan = plan_write(
            &self.config,
            self.global_end,
            self.local_end,
            current_start,
            n,
            sink_recache,
        )?;
        let compute: FloatDType = k_new.dtype().into();
        let dtype = self.config.dtype.unwrap_or(compute);
        let device = k_new.device();
        if let Some(t) = &self.k {
            let [tb, th, _, td] = t.dims();
            if [tb, th, td] != [b, h, d] {
                if self.local_end > 0 {
                    return Err(ModelError::Cache(format!(
                        "cache holds [batch {tb}, heads {th}, head_dim {td}] but the call has \
                         [batch {b}, heads {h}, head_dim {d}]: reset the cache first"
                    )));
                }
                self.k = None;
                self.v = None;
            }
        }
        let capacity = self.config.capacity_tokens;
        if self.k.is_none() {
            let bytes = (b * h * capacity * d * burn::tensor::DType::from(dtype).size()) as u64;
            sf_device::check_buffer(&device, bytes, "one layer's KV cache (K or V)")
                .map_err(|e| ModelError::Cache(format!("{e}; use an f16 cache or fewer frames")))?;
        }
        let buffer = |t: Option<Tensor<4>>| match t {
            Some(t) => t.cast(dtype),
            None => Tensor::zeros([b, h, capacity, d], (&device, dtype.into())),
        };
        let sink = self.config.sink_tokens;
        let k = Self::store(buffer(self.k.take()), k_new.cast(dtype), &plan, sink);
        let v = Self::store(buffer(self.v.take()), v_new.cast(dtype), &plan, sink);
        let window = |t: &Tensor<4>| {
            let parts: Vec<Tensor<4>> = plan
                .attended_rows()
                .into_iter()
                .map(|rows| t.clone().slice([0..b, 0..h, rows, 0..d]))
                .collect();
            let t = if parts.len() == 1 {
                parts.into_iter().next().unwrap_or_else(|| t.clone())
            } else {
                Tensor::cat(parts, 2)
            };
            t.cast(compute)
        };
        let out = (window(&k), window(&v));
        self.k = Some(k);
        self.v = Some(v);
        self.global_end = plan.global_end_after;
        self.local_end = plan.local_end_after;
        self.last = Some(plan);
        Ok(out)
    }

    fn store(buffer: Tensor<4>, new: Tensor<4>, plan: &WritePlan, sink: usize) -> Tensor<4> {
        let [b, h, _, d] = buffer.dims();
        let mut buffer = buffer;
        if plan.evicted > 0 && plan.kept > 0 {
            let from = sink + plan.evicted;
            // `slice` + `slice_assign` is functional: the moved rows are read before the write.
            let moved = buffer
                .clone()
                .slice([0..b, 0..h, from..from + plan.kept, 0..d]);
            buffer = buffer.slice_assign([0..b, 0..h, sink..sink + plan.kept, 0..d], moved);
        }
        let rows = plan.write_rows();
        if rows.is_empty() {
            return buffer;
        }
        let skip = plan.first_stored_token();
        let new = if skip > 0 {
            new.slice([0..b, 0..h, skip..plan.num_new, 0..d])
        } else {
            new
        };
        buffer.slice_assign([0..b, 0..h, rows, 0..d], new)
    }
}

/// One layer's cross-attention cache: the context keys/values, computed once per prompt.
#[derive(Clone, Debug, Default)]
pub struct CrossAttnCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl CrossAttnCache {
    /// Whether keys/values are stored.
    pub fn is_init(&self) -> bool {
        self.kv.is_some()
    }

    /// The stored keys/values.
    pub fn get(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.kv.clone()
    }

    /// Stores keys/values `[B, heads, text_len, head_dim]`.
    pub fn set(&mut self, k: Tensor<4>, v: Tensor<4>) {
        self.kv = Some((k, v));
    }

    /// Forgets the keys/values (the prompt changed).
    pub fn reset(&mut self) {
        self.kv = None;
    }
}

/// The caches of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerCache {
    /// Self-attention keys/values.
    pub self_attn: SelfAttnCache,
    /// Cross-attention keys/values.
    pub cross_attn: CrossAttnCache,
}

/// The caches of every transformer block.
#[derive(Clone, Debug)]
pub struct KvCaches {
    /// One entry per block.
    pub layers: Vec<LayerCache>,
}

impl KvCaches {
    /// Empty caches for `num_layers` blocks.
    pub fn new(config: CacheConfig, num_layers: usize) -> Self {
        KvCaches {
            layers: (0..num_layers)
                .map(|_| LayerCache {
                    self_attn: SelfAttnCache::new(config),
                    cross_attn: CrossAttnCache::default(),
                })
                .collect(),
        }
    }

    /// Resets every counter and the cross-attention caches (a new generation).
    pub fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.self_attn.reset();
            layer.cross_attn.reset();
        }
    }

    /// Zeroes every layer's self-attention keys/values, counters kept (LongLive's switch with
    /// `global_sink` off).
    pub fn zero_kv(&mut self) {
        for layer in &mut self.layers {
            layer.self_attn.zero_kv();
        }
    }

    /// The cache configuration (identical in every layer).
    pub fn config(&self) -> Option<&CacheConfig> {
        self.layers.first().map(|l| l.self_attn.config())
    }

    /// Forgets the cross-attention keys/values only (the prompt changed).
    pub fn reset_cross_attn(&mut self) {
        for layer in &mut self.layers {
            layer.cross_attn.reset();
        }
    }

    /// `(global_end, local_end)` (identical in every layer).
    pub fn counters(&self) -> (usize, usize) {
        self.layers
            .first()
            .map(|l| (l.self_attn.global_end(), l.self_attn.local_end()))
            .unwrap_or((0, 0))
    }

    /// The last call's plan (identical in every layer).
    pub fn last_plan(&self) -> Option<WritePlan> {
        self.layers.first().and_then(|l| l.self_attn.last_plan())
    }

    /// Whether every layer holds cross-attention keys/values.
    pub fn cross_attn_ready(&self) -> bool {
        self.layers.iter().all(|l| l.cross_attn.is_init())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn rows(t: &Tensor<4>) -> Vec<f32> {
        let [_, _, s, _] = t.dims();
        let v: Vec<f32> = t
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap();
        (0..s).map(|i| v[i]).collect()
    }

    fn tokens(values: &[f32], device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, 1, values.len(), 1]),
            device,
        )
    }

    #[test]
    fn tensors_follow_the_plan() {
        let device = Device::flex();
        // 1 token per frame: window 5, sink 1, chunks of 2.
        let mut cache = SelfAttnCache::new(CacheConfig::rolling(5, 1, 1).unwrap());
        let (k, _) = cache
            .update(tokens(&[0., 1.], &device), tokens(&[0., 1.], &device), 0)
            .unwrap();
        assert_eq!(rows(&k), [0., 1.]);
        // Overwrite of the same chunk.
        let (k, _) = cache
            .update(tokens(&[10., 11.], &device), tokens(&[0., 0.], &device), 0)
            .unwrap();
        assert_eq!(rows(&k), [10., 11.]);
        let (k, _) = cache
            .update(tokens(&[2., 3.], &device), tokens(&[0., 0.], &device), 2)
            .unwrap();
        assert_eq!(rows(&k), [10., 11., 2., 3.]);
        // Next chunk: evict 1 row behind the sink (frame 1), keep frames 2, 3.
        let (k, v) = cache
            .update(tokens(&[4., 5.], &device), tokens(&[7., 8.], &device), 4)
            .unwrap();
        assert_eq!(rows(&k), [10., 2., 3., 4., 5.]);
        assert_eq!(rows(&v)[3..], [7., 8.]);
        assert_eq!((cache.global_end(), cache.local_end()), (6, 5));
        let p = cache.last_plan().unwrap();
        assert_eq!((p.evicted, p.kept), (1, 2));
        cache.reset();
        assert_eq!((cache.global_end(), cache.local_end()), (0, 0));
        // A different head count mid-stream is refused, not a panic; after a reset it is fine.
        let wide = Tensor::<4>::zeros([1, 2, 2, 1], &device);
        assert!(cache.update(wide.clone(), wide.clone(), 0).is_ok());
        assert!(
            cache
                .update(tokens(&[1., 2.], &device), tokens(&[1., 2.], &device), 2)
                .is_err()
        );
    }

    #[test]
    fn zeroed_longlive_cache_keeps_protected_rows_at_zero() {
        let device = Device::flex();
        // 1 token per frame: window 4, sink 2, LongLive's rules.
        let config = CacheConfig::rolling(4, 2, 1)
            .unwrap()
            .with_rules(CacheRules::LongLive);
        for (sink_recache, expected) in [(false, [0., 0., 12., 13.]), (true, [0., 11., 12., 13.])] {
            let mut cache = SelfAttnCache::new(config);
            let t = |v: &[f32]| tokens(v, &device);
            cache.update(t(&[1., 2.]), t(&[1., 2.]), 0).unwrap();
            cache.update(t(&[3., 4.]), t(&[3., 4.]), 2).unwrap();
            // A switch with `global_sink` off: zero, then re-cache frames 1..4 (a recompute).
            cache.zero_kv();
            let (k, _) = cache
                .update_with(t(&[11., 12., 13.]), t(&[0., 0., 0.]), 1, sink_recache)
                .unwrap();
            assert_eq!(rows(&k), expected, "sink_recache {sink_recache}");
            assert_eq!((cache.global_end(), cache.local_end()), (4, 4));
        }
    }
}
