//! [`RolloutConfig`] and the chunk plan it gives.

use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::scheduler::SchedulerConfig;

/// Latent frames the 3D RoPE table covers (1024 latent frames, about 4096 video frames); a
/// rolling window with [`LongLiveConfig::relative_rope`] has no such limit.
pub const MAX_ROPE_FRAMES: usize = 1024;

/// LongLive 1.0's cache rules and prompt-switch options (`docs/switching.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LongLiveConfig {
    /// Keep the sink at a switch (LongLive's `global_sink`, true in its interactive config):
    /// the re-cache leaves the sink rows as they are; false zeroes every key/value first and
    /// lets the re-cache rewrite the sink.
    pub global_sink: bool,
    /// KV-cache-relative RoPE (LongLive's `use_infinite_attention`): keys are stored un-roped
    /// and roped by their cache row at every call, lifting [`MAX_ROPE_FRAMES`].
    #[serde(alias = "use_infinite_attention")]
    pub relative_rope: bool,
}

impl Default for LongLiveConfig {
    fn default() -> Self {
        LongLiveConfig {
            global_sink: true,
            relative_rope: false,
        }
    }
}

/// Settings of the rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutConfig {
    /// Scheduler and step list.
    pub scheduler: SchedulerConfig,
    /// Latent frames per chunk (3).
    pub num_frame_per_block: usize,
    /// First chunk is a single latent frame (`[1, 3, 3, ...]`).
    pub independent_first_frame: bool,
    /// Timestep of the cache-refresh pass (0).
    pub context_noise: f32,
    /// Rolling KV window in latent frames; `None` = global cache.
    pub local_attn_size: Option<usize>,
    /// Attention-sink frames kept at the start of a rolling cache.
    pub sink_size: usize,
    /// Capacity of the global cache in latent frames (21 = upstream's 32760 tokens).
    pub global_cache_frames: usize,
    /// Skip the refresh pass of the last chunk (its keys are never read).
    pub skip_last_refresh: bool,
    /// LongLive 1.0's cache rules (sink protection, zero sink rows attended) and switch
    /// options; `None` = Self-Forcing's rules.
    pub longlive: Option<LongLiveConfig>,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            scheduler: SchedulerConfig::default(),
            num_frame_per_block: 3,
            independent_first_frame: false,
            context_noise: 0.0,
            local_attn_size: None,
            sink_size: 0,
            global_cache_frames: 21,
            skip_last_refresh: false,
            longlive: None,
        }
    }
}

/// Latent frames of each chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    /// Chunks of the initial (clean) latent pushed through the model at t = 0.
    pub initial: Vec<usize>,
    /// Chunks to generate.
    pub generated: Vec<usize>,
}

impl ChunkPlan {
    /// Every latent frame, initial and generated.
    pub fn total_frames(&self) -> usize {
        self.initial.iter().sum::<usize>() + self.generated.iter().sum::<usize>()
    }

    /// The first latent frame of each generated chunk; with `then`, chunks of `then` frames
    /// continue past the plan until one starts after `until` (an endless rollout).
    pub(crate) fn generated_starts(&self, then: Option<usize>, until: usize) -> Vec<usize> {
        let mut start = self.initial.iter().sum::<usize>();
        let mut starts = Vec::new();
        for &f in &self.generated {
            starts.push(start);
            start += f;
        }
        if let Some(nb) = then.filter(|&nb| nb > 0) {
            while starts.last().is_none_or(|&s| s <= until) {
                starts.push(start);
                start += nb;
            }
        }
        starts
    }
}

impl RolloutConfig {
    /// Whether keys are roped relative to the cache ([`LongLiveConfig::relative_rope`]).
    pub fn relative_rope(&self) -> bool {
        self.longlive.is_some_and(|l| l.relative_rope)
    }

    /// Cache capacity in latent frames.
    pub fn cache_frames(&self) -> usize {
        self.local_attn_size.unwrap_or(self.global_cache_frames)
    }

    /// The latent frames an endless rollout may reach: `None` with a rolling window and
    /// relative RoPE (no limit), else the most frames the chunk layout fits in
    /// [`MAX_ROPE_FRAMES`].
    pub fn endless_limit(&self) -> Option<usize> {
        if self.relative_rope() && self.local_attn_size.is_some() {
            return None;
        }
        let nb = self.num_frame_per_block.max(1);
        Some(if self.independent_first_frame {
            1 + (MAX_ROPE_FRAMES - 1) / nb * nb
        } else {
            MAX_ROPE_FRAMES / nb * nb
        })
    }

    /// The plan of an endless rollout (generate until cancelled): the chunks up to
    /// [`endless_limit`](Self::endless_limit), or only the first chunk(s) when there is no
    /// limit (the rollout continues the same layout). Needs a rolling window.
    pub fn endless_plan(&self) -> Result<ChunkPlan, PipelineError> {
        if self.local_attn_size.is_none() {
            return Err(PipelineError::Config(
                "an endless stream needs a rolling KV window (local_attn_size; on the command \
                 line --kv-window N[,SINK], or --model longlive): a global cache holds only \
                 the first frames"
                    .into(),
            ));
        }
        let nb = self.num_frame_per_block.max(1);
        let first = if self.independent_first_frame {
            1 + nb
        } else {
            nb
        };
        self.plan(self.endless_limit().unwrap_or(first), 0)
    }

    /// Splits the frames into chunks, or explains why the configuration cannot work.
    pub fn plan(&self, generate: usize, initial: usize) -> Result<ChunkPlan, PipelineError> {
        let nb = self.num_frame_per_block;
        let err = |m: String| Err(PipelineError::Config(m));
        if nb == 0 {
            return err("num_frame_per_block must be at least 1".into());
        }
        if generate == 0 {
            return err(
                "latent_frames must be at least 1 (21 latent frames make 81 video frames)".into(),
            );
        }
        let split = |frames: usize, first_single: bool, what: &str| {
            let rest = if first_single { frames - 1 } else { frames };
            if rest % nb != 0 {
                let layout = if first_single {
                    format!("1 + a multiple of {nb}")
                } else {
                    format!("a multiple of {nb}")
                };
                return Err(PipelineError::Config(format!(
                    "{frames} {what} latent frames cannot be split into chunks: use {layout}"
                )));
            }
            let mut chunks = Vec::new();
            if first_single {
                chunks.push(1);
            }
            chunks.extend(std::iter::repeat_n(nb, rest / nb));
            Ok(chunks)
        };
        let ind = self.independent_first_frame;
        let initial_chunks = if initial > 0 {
            split(initial, ind, "initial")?
        } else {
            Vec::new()
        };
        let generated = split(generate, ind && initial == 0, "generated")?;
        let plan = ChunkPlan {
            initial: initial_chunks,
            generated,
        };
        let total = plan.total_frames();
        let relative = self.relative_rope() && self.local_attn_size.is_some();
        if self.relative_rope() {
            let first = plan.initial.first().or(plan.generated.first()).copied();
            if first.is_some_and(|f| f < self.sink_size) {
                return err(format!(
                    "KV-cache-relative RoPE needs a first chunk of at least the sink's {} \
                     frames (LongLive's relative RoPE cannot attend empty sink rows)",
                    self.sink_size
                ));
            }
        }
        if total > MAX_ROPE_FRAMES && !relative {
            return err(format!(
                "{total} latent frames exceed the RoPE table's {MAX_ROPE_FRAMES} positions: use \
                 a rolling window with LongLive's relative RoPE for longer videos"
            ));
        }
        let largest = plan
            .initial
            .iter()
            .chain(&plan.generated)
            .copied()
            .max()
            .unwrap_or(nb);
        match self.local_attn_size {
            None if total > self.global_cache_frames => err(format!(
                "{total} latent frames do not fit the global KV cache of {} frames: use a \
                 rolling window (local_attn_size, e.g. --kv-window {}) for longer videos",
                self.global_cache_frames, self.global_cache_frames
            )),
            Some(window) if self.sink_size >= window => err(format!(
                "the attention sink ({} frames) must be smaller than the window ({window} frames)",
                self.sink_size
            )),
            Some(window) if self.sink_size + largest > window => err(format!(
                "a rolling window of {window} frames cannot hold the sink ({}) plus a chunk \
                 ({largest}): use a window of at least {}",
                self.sink_size,
                self.sink_size + largest
            )),
            _ => Ok(plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_limits_follow_the_chunk_layout() {
        let rolling = RolloutConfig {
            local_attn_size: Some(12),
            sink_size: 3,
            ..RolloutConfig::default()
        };
        assert_eq!(rolling.endless_limit(), Some(1023));
        assert_eq!(rolling.endless_plan().unwrap().generated.len(), 341);
        let first_frame = RolloutConfig {
            independent_first_frame: true,
            sink_size: 1,
            ..rolling.clone()
        };
        assert_eq!(first_frame.endless_limit(), Some(1024));
        let relative = RolloutConfig {
            longlive: Some(LongLiveConfig {
                global_sink: true,
                relative_rope: true,
            }),
            ..rolling.clone()
        };
        assert_eq!(relative.endless_limit(), None);
        assert_eq!(relative.endless_plan().unwrap().generated, [3]);
        let e = RolloutConfig::default().endless_plan().unwrap_err();
        assert!(e.to_string().contains("--kv-window"), "{e}");
    }
}
