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
//! Repeated calls for the same chunk therefore overwrite the same rows.

use burn::tensor::{FloatDType, Tensor};

use crate::ModelError;

/// Shape and policy of the self-attention caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Token rows `S` (also the maximum attention window).
    pub capacity_tokens: usize,
    /// Leading rows that are never evicted (attention sink).
    pub sink_tokens: usize,
    /// Rolling (local attention, evicting) or global (error when full).
    pub rolling: bool,
    /// Storage dtype of keys and values; `None` = the dtype of the first write.
    pub dtype: Option<FloatDType>,
}

impl CacheConfig {
    /// A global cache holding `frames` latent frames of `frame_seqlen` tokens.
    pub fn global(frames: usize, frame_seqlen: usize) -> Self {
        CacheConfig {
            capacity_tokens: frames * frame_seqlen,
            sink_tokens: 0,
            rolling: false,
            dtype: None,
        }
    }

    /// A rolling cache of `local_attn_size` frames whose first `sink_size` frames stay.
    pub fn rolling(
        local_attn_size: usize,
        sink_size: usize,
        frame_seqlen: usize,
    ) -> Result<Self, ModelError> {
        if local_attn_size == 0 || sink_size >= local_attn_size {
            return Err(ModelError::Config(format!(
                "rolling cache: local_attn_size {local_attn_size} must exceed sink_size {sink_size}"
            )));
        }
        Ok(CacheConfig {
            capacity_tokens: local_attn_size * frame_seqlen,
            sink_tokens: sink_size * frame_seqlen,
            rolling: true,
            dtype: None,
        })
    }

    /// The same configuration storing keys/values in `dtype`.
    pub fn with_dtype(mut self, dtype: FloatDType) -> Self {
        self.dtype = Some(dtype);
        self
    }
}

/// What one call does to a cache (all in token rows); the `calls.meta` columns of the fixtures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// Absolute token index of the first new token.
    pub current_start: usize,
    /// New tokens.
    pub num_new: usize,
    /// `global_end` before the call.
    pub global_end_before: usize,
    /// `local_end` before the call.
    pub local_end_before: usize,
    /// Rows evicted (0 unless rolling and full).
    pub evicted: usize,
    /// Rows moved towards the sink by the eviction.
    pub kept: usize,
    /// `local_end` after the call.
    pub local_end_after: usize,
    /// First attended row.
    pub attn_start: usize,
    /// End (exclusive) of the attended rows.
    pub attn_end: usize,
}

impl WritePlan {
    /// Rows receiving the new keys/values.
    pub fn write_rows(&self) -> std::ops::Range<usize> {
        self.local_end_after - self.num_new..self.local_end_after
    }
}

/// The bookkeeping of one call (pure; no tensors). Errors where upstream would write out of
/// bounds (a global cache that is full, a sink too large for the window, ...).
pub fn plan_write(
    config: &CacheConfig,
    global_end: usize,
    local_end: usize,
    current_start: usize,
    num_new: usize,
) -> Result<WritePlan, ModelError> {
    let s = config.capacity_tokens as i64;
    let sink = config.sink_tokens as i64;
    let (g, l, n) = (global_end as i64, local_end as i64, num_new as i64);
    let cur_end = (current_start + num_new) as i64;
    let overflow = |reason: String| ModelError::Cache(reason);
    if n > s {
        return Err(overflow(format!(
            "{num_new} new tokens do not fit a cache of {s} rows"
        )));
    }
    let (evicted, kept, new_local) = if config.rolling && cur_end > g && l + n > s {
        let evict = l + n - s;
        let keep = l - evict - sink;
        if keep < 0 {
            return Err(overflow(format!(
                "rolling cache of {s} rows with {sink} sink rows cannot take {n} new tokens"
            )));
        }
        (evict, keep, l + (cur_end - g) - evict)
    } else {
        (0, 0, l + (cur_end - g))
    };
    if new_local - n < 0 || new_local > s {
        return Err(overflow(format!(
            "writing tokens [{current_start}, {cur_end}) would use cache rows [{}, {new_local}) of \
             {s} (global_end {global_end}, local_end {local_end}){}",
            new_local - n,
            if config.rolling {
                ""
            } else {
                "; a global cache must hold every frame: use a larger or a rolling cache"
            }
        )));
    }
    Ok(WritePlan {
        current_start,
        num_new,
        global_end_before: global_end,
        local_end_before: local_end,
        evicted: evicted as usize,
        kept: kept as usize,
        local_end_after: new_local as usize,
        attn_start: (new_local - s).max(0) as usize,
        attn_end: new_local as usize,
    })
}

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

    /// Counters back to zero (buffers are kept and overwritten).
    pub fn reset(&mut self) {
        self.global_end = 0;
        self.local_end = 0;
        self.last = None;
    }

    /// Writes new keys/values `[B, heads, n, head_dim]` for absolute tokens starting at
    /// `current_start` and returns the attended keys and values (in the input dtype).
    pub fn update(
        &mut self,
        k_new: Tensor<4>,
        v_new: Tensor<4>,
        current_start: usize,
    ) -> Result<(Tensor<4>, Tensor<4>), ModelError> {
        let [b, h, n, d] = k_new.dims();
        let plan = plan_write(
            &self.config,
            self.global_end,
            self.local_end,
            current_start,
            n,
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
            t.clone()
                .slice([0..b, 0..h, plan.attn_start..plan.attn_end, 0..d])
                .cast(compute)
        };
        let out = (window(&k), window(&v));
        self.k = Some(k);
        self.v = Some(v);
        self.global_end = current_start + n;
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
        buffer.slice_assign([0..b, 0..h, plan.write_rows(), 0..d], new)
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

    fn global(tokens: usize) -> CacheConfig {
        CacheConfig::global(tokens, 1)
    }

    #[test]
    fn global_cache_appends_and_overwrites() {
        let c = global(36);
        // Chunk 0 (18 tokens), then a repeated call of the same chunk.
        let p = plan_write(&c, 0, 0, 0, 18).unwrap();
        assert_eq!((p.local_end_after, p.attn_start, p.attn_end), (18, 0, 18));
        assert_eq!(p.write_rows(), 0..18);
        let p = plan_write(&c, 18, 18, 0, 18).unwrap();
        assert_eq!(p.write_rows(), 0..18);
        // Chunk 1.
        let p = plan_write(&c, 18, 18, 18, 18).unwrap();
        assert_eq!((p.write_rows(), p.attn_start, p.attn_end), (18..36, 0, 36));
        // A third chunk overflows a global cache.
        assert!(matches!(
            plan_write(&c, 36, 36, 36, 18),
            Err(ModelError::Cache(_))
        ));
    }

    #[test]
    fn rolling_cache_evicts_behind_the_sink() {
        // local_attn_size 5 frames, sink 1 frame, 6 tokens per frame, chunks of 3 frames.
        let c = CacheConfig::rolling(5, 1, 6).unwrap();
        let p = plan_write(&c, 0, 0, 0, 18).unwrap();
        assert_eq!((p.evicted, p.local_end_after), (0, 18));
        // Chunk 1: evict 6 rows, keep 6 (frame 2 moves to rows 6..12).
        let p = plan_write(&c, 18, 18, 18, 18).unwrap();
        assert_eq!((p.evicted, p.kept, p.local_end_after), (6, 6, 30));
        assert_eq!((p.write_rows(), p.attn_start, p.attn_end), (12..30, 0, 30));
        // Its repeated calls do not evict again.
        let p = plan_write(&c, 36, 30, 18, 18).unwrap();
        assert_eq!((p.evicted, p.write_rows()), (0, 12..30));
        // Chunk 2: evict 18, keep 6 (frame 5).
        let p = plan_write(&c, 36, 30, 36, 18).unwrap();
        assert_eq!((p.evicted, p.kept, p.local_end_after), (18, 6, 30));
        // A sink that leaves no room is an error, not a panic.
        let tight = CacheConfig::rolling(4, 2, 6).unwrap();
        assert!(plan_write(&tight, 18, 18, 18, 18).is_err());
        assert!(CacheConfig::rolling(2, 2, 6).is_err());
    }

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
}
