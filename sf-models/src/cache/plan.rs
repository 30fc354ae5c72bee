//! The cache configuration and the bookkeeping of one call (pure; no tensors).
//!
//! Two rule sets ([`CacheRules`]); with `sink ≤ chunk` and no prompt switch they agree exactly.
//! Per call: `n` new tokens for absolute positions `[cs, ce)`, counters `G` (`global_end`),
//! `L` (`local_end`), `S` rows, `sink` rows.
//!
//! 1. If rolling, `ce > G` and `L + n > S`: `evict = L + n − S`, `keep = L − evict − sink`; rows
//!    `[sink + evict, sink + evict + keep)` move to `[sink, sink + keep)`;
//!    `L' = L + (ce − G) − evict`. Otherwise `L' = L + (ce − G)`. `lo = L' − n`.
//! 2. Self-Forcing: rows `[lo, L')` receive the new keys; queries attend `[max(0, L' − S), L')`;
//!    `G := ce`, `L := L'`.
//! 3. LongLive 1.0: a *recompute* (`ce ≤ G` and `cs > 0`) writes only rows `[max(lo, sink), L')`
//!    (the call's last tokens), unless the call re-encodes the sink after a switch
//!    (`sink_recache`); queries attend `[0, sink) ∪ [max(sink, L' − (M − sink)), L')` (sink > 0,
//!    never-written sink rows hold zeros and are attended) or `[max(0, L' − M), L')`; counters
//!    change only when the call is not a recompute.

use crate::ModelError;
use burn::tensor::FloatDType;

/// Which upstream's cache rules a cache follows (they differ only where LongLive protects or
/// attends the sink, see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheRules {
    /// Self-Forcing's `CausalWanSelfAttention`.
    #[default]
    SelfForcing,
    /// LongLive 1.0's: sink rows protected from recomputes, always attended (zeros included).
    LongLive,
}

/// Shape and policy of the self-attention caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Token rows `S`.
    pub capacity_tokens: usize,
    /// Leading rows that are never evicted (attention sink).
    pub sink_tokens: usize,
    /// Rolling (local attention, evicting) or global (error when full).
    pub rolling: bool,
    /// Storage dtype of keys and values; `None` = the dtype of the first write.
    pub dtype: Option<FloatDType>,
    /// Write and attention rules.
    pub rules: CacheRules,
    /// LongLive's attention budget `M` in token rows; `None` = `capacity_tokens`.
    pub max_attention_tokens: Option<usize>,
    /// Keys are stored un-roped and roped by their cache row's frame at every call (LongLive's
    /// `use_infinite_attention`): positions stay below the window, however long the video.
    pub relative_rope: bool,
}

impl CacheConfig {
    /// A global cache holding `frames` latent frames of `frame_seqlen` tokens.
    pub fn global(frames: usize, frame_seqlen: usize) -> Self {
        CacheConfig {
            capacity_tokens: frames * frame_seqlen,
            sink_tokens: 0,
            rolling: false,
            dtype: None,
            rules: CacheRules::SelfForcing,
            max_attention_tokens: None,
            relative_rope: false,
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
            ..Self::global(0, frame_seqlen)
        })
    }

    /// The same configuration storing keys/values in `dtype`.
    pub fn with_dtype(mut self, dtype: FloatDType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// The same configuration under `rules`.
    pub fn with_rules(mut self, rules: CacheRules) -> Self {
        self.rules = rules;
        self
    }

    /// The same configuration with keys roped relative to the cache (see
    /// [`relative_rope`](Self::relative_rope)).
    pub fn with_relative_rope(mut self, relative: bool) -> Self {
        self.relative_rope = relative;
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
    /// `global_end` after the call.
    pub global_end_after: usize,
    /// First row written (the rows `[write_start, local_end_after)` receive the call's last
    /// tokens; `local_end_after − num_new` unless LongLive protects the sink).
    pub write_start: usize,
    /// LongLive's recompute (`ce ≤ G` and `cs > 0`); always false under Self-Forcing's rules.
    pub is_recompute: bool,
    /// Rows `[0, sink_attended)` are attended besides `[attn_start, attn_end)` (0: none; set only
    /// when the two ranges do not touch).
    pub sink_attended: usize,
    /// First attended row of the window.
    pub attn_start: usize,
    /// End (exclusive) of the attended rows.
    pub attn_end: usize,
    /// Attended rows that were never written (LongLive's zero sink rows).
    pub empty_attended: usize,
}

impl WritePlan {
    /// Rows receiving new keys/values.
    pub fn write_rows(&self) -> std::ops::Range<usize> {
        self.write_start..self.local_end_after
    }

    /// The attended rows, in order (one or two ranges).
    pub fn attended_rows(&self) -> Vec<std::ops::Range<usize>> {
        let window = self.attn_start..self.attn_end;
        if self.sink_attended > 0 {
            vec![0..self.sink_attended, window]
        } else {
            vec![window]
        }
    }

    /// Attended rows in total.
    pub fn attended_len(&self) -> usize {
        self.attended_rows().iter().map(|r| r.len()).sum()
    }

    /// The index (into the call's tokens) of the first token that is stored.
    pub fn first_stored_token(&self) -> usize {
        self.write_start + self.num_new - self.local_end_after
    }
}

/// The bookkeeping of one call. `sink_recache` is LongLive's `sink_recache_after_switch` (a
/// re-cache after a switch with `global_sink` off rewrites the sink too). Errors where upstream
/// would write out of bounds (a global cache that is full, a sink too large for the window, ...).
pub fn plan_write(
    config: &CacheConfig,
    global_end: usize,
    local_end: usize,
    current_start: usize,
    num_new: usize,
    sink_recache: bool,
) -> Result<WritePlan, ModelError> {
    let s = config.capacity_tokens as i64;
    let sink = config.sink_tokens as i64;
    let (g, l, n) = (global_end as i64, local_end as i64, num_new as i64);
    let cs = current_start as i64;
    let cur_end = cs + n;
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
    let lo = new_local - n;
    if lo < 0 || new_local > s {
        return Err(overflow(format!(
            "writing tokens [{current_start}, {cur_end}) would use cache rows [{lo}, {new_local}) \
             of {s} (global_end {global_end}, local_end {local_end}){}",
            if config.rolling {
                ""
            } else {
                "; a global cache must hold every frame: use a larger or a rolling cache"
            }
        )));
    }
    let (lo, l_after) = (lo as usize, new_local as usize);
    let sink = config.sink_tokens;
    let plan = |write_start, is_recompute, global_end_after, window: (usize, usize, usize)| {
        // Only LongLive attends rows past `local_end` (the sink's, while `L' < sink`).
        let empty_attended = window.2.max(window.0).saturating_sub(l_after);
        WritePlan {
            current_start,
            num_new,
            global_end_before: global_end,
            local_end_before: local_end,
            evicted: evicted as usize,
            kept: kept as usize,
            local_end_after: l_after,
            global_end_after,
            write_start,
            is_recompute,
            sink_attended: window.0,
            attn_start: window.1,
            attn_end: window.2,
            empty_attended,
        }
    };
    let ce = cur_end as usize;
    Ok(match config.rules {
        CacheRules::SelfForcing => {
            let start = l_after.saturating_sub(config.capacity_tokens);
            plan(lo, false, ce, (0, start, l_after))
        }
        CacheRules::LongLive => {
            let recompute = ce <= global_end && current_start > 0;
            let write_start = if recompute && !sink_recache {
                lo.max(sink).min(l_after)
            } else {
                lo
            };
            let m = config
                .max_attention_tokens
                .unwrap_or(config.capacity_tokens);
            let window = if sink > 0 {
                let local = sink.max(l_after.saturating_sub(m.saturating_sub(sink)));
                if local >= l_after || local == sink {
                    (0, 0, sink.max(l_after))
                } else {
                    (sink, local, l_after)
                }
            } else {
                (0, l_after.saturating_sub(m), l_after)
            };
            let g_after = if recompute { global_end } else { ce };
            plan(write_start, recompute, g_after, window)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(tokens: usize) -> CacheConfig {
        CacheConfig::global(tokens, 1)
    }

    fn plan(c: &CacheConfig, g: usize, l: usize, cs: usize, n: usize) -> WritePlan {
        plan_write(c, g, l, cs, n, false).unwrap()
    }

    #[test]
    fn global_cache_appends_and_overwrites() {
        let c = global(36);
        // Chunk 0 (18 tokens), then a repeated call of the same chunk.
        let p = plan(&c, 0, 0, 0, 18);
        assert_eq!((p.local_end_after, p.attn_start, p.attn_end), (18, 0, 18));
        assert_eq!(p.write_rows(), 0..18);
        let p = plan(&c, 18, 18, 0, 18);
        assert_eq!(p.write_rows(), 0..18);
        // Chunk 1.
        let p = plan(&c, 18, 18, 18, 18);
        assert_eq!((p.write_rows(), p.attn_start, p.attn_end), (18..36, 0, 36));
        // A third chunk overflows a global cache.
        assert!(matches!(
            plan_write(&c, 36, 36, 36, 18, false),
            Err(ModelError::Cache(_))
        ));
    }

    #[test]
    fn rolling_cache_evicts_behind_the_sink() {
        // local_attn_size 5 frames, sink 1 frame, 6 tokens per frame, chunks of 3 frames.
        let c = CacheConfig::rolling(5, 1, 6).unwrap();
        let p = plan(&c, 0, 0, 0, 18);
        assert_eq!((p.evicted, p.local_end_after), (0, 18));
        // Chunk 1: evict 6 rows, keep 6 (frame 2 moves to rows 6..12).
        let p = plan(&c, 18, 18, 18, 18);
        assert_eq!((p.evicted, p.kept, p.local_end_after), (6, 6, 30));
        assert_eq!((p.write_rows(), p.attn_start, p.attn_end), (12..30, 0, 30));
        // Its repeated calls do not evict again.
        let p = plan(&c, 36, 30, 18, 18);
        assert_eq!((p.evicted, p.write_rows()), (0, 12..30));
        // Chunk 2: evict 18, keep 6 (frame 5).
        let p = plan(&c, 36, 30, 36, 18);
        assert_eq!((p.evicted, p.kept, p.local_end_after), (18, 6, 30));
        // A sink that leaves no room is an error, not a panic.
        let tight = CacheConfig::rolling(4, 2, 6).unwrap();
        assert!(plan_write(&tight, 18, 18, 18, 18, false).is_err());
        assert!(CacheConfig::rolling(2, 2, 6).is_err());
    }

    #[test]
    fn longlive_protects_and_attends_the_sink() {
        // FORMAT.md §2.13's public file: window 8, sink 3, 6 tokens per frame.
        let c = CacheConfig::rolling(8, 3, 6)
            .unwrap()
            .with_rules(CacheRules::LongLive);
        // The re-cache of frames 1..8 at s = 9: a recompute, the sink keeps its keys.
        let p = plan(&c, 54, 48, 6, 48);
        assert!(p.is_recompute);
        assert_eq!((p.write_rows(), p.first_stored_token()), (18..48, 18));
        assert_eq!((p.attn_start, p.attn_end, p.global_end_after), (0, 48, 54));
        // The same call with the sink flag rewrites every row.
        let p = plan_write(&c, 54, 48, 6, 48, true).unwrap();
        assert_eq!(p.write_rows(), 0..48);
        // A sink larger than the first chunk: its never-written rows are attended (zeros).
        let big = CacheConfig::rolling(8, 4, 1)
            .unwrap()
            .with_rules(CacheRules::LongLive);
        let p = plan(&big, 0, 0, 0, 3);
        assert_eq!((p.attn_start, p.attn_end, p.empty_attended), (0, 4, 1));
        // A repeated call of chunk 1 only writes the rows behind the sink.
        let p = plan(&big, 6, 6, 3, 3);
        assert_eq!((p.write_rows(), p.empty_attended), (4..6, 0));
        // Self-Forcing's rules write the whole chunk and never attend empty rows.
        let sf = CacheConfig::rolling(8, 4, 1).unwrap();
        let p = plan(&sf, 0, 0, 0, 3);
        assert_eq!((p.attn_end, p.empty_attended), (3, 0));
        assert_eq!(plan(&sf, 6, 6, 3, 3).write_rows(), 3..6);
        // An attention budget smaller than the cache splits the window behind the sink.
        let budget = CacheConfig {
            max_attention_tokens: Some(5),
            ..big
        };
        let p = plan(&budget, 6, 6, 6, 2);
        assert_eq!(p.attended_rows(), vec![0..4, 7..8]);
    }
}
