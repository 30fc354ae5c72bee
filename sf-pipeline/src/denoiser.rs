//! The causal Wan DiT as the rollout's [`CausalDenoiser`]: it owns the KV caches and the
//! prompt's text context.

use burn::tensor::{FloatDType, Tensor};
use sf_models::{CacheConfig, CacheRules, KvCaches, WanModel, WritePlan};

use crate::PipelineError;
use crate::rollout::{CausalDenoiser, RolloutConfig};

/// A [`WanModel`] with its caches, ready for a rollout.
pub struct DitDenoiser<'m> {
    model: &'m WanModel,
    cache: KvCaches,
    context: Tensor<3>,
}

impl<'m> DitDenoiser<'m> {
    /// Caches sized for `rollout` at a latent size of `height x width`, keys and values stored
    /// in `kv_dtype` (`None`: the model's dtype), under LongLive's rules when
    /// `rollout.longlive` is set; `context` is the encoded prompt `[B, text_len, text_dim]`.
    pub fn new(
        model: &'m WanModel,
        context: Tensor<3>,
        rollout: &RolloutConfig,
        height: usize,
        width: usize,
        kv_dtype: Option<FloatDType>,
    ) -> Result<Self, PipelineError> {
        let fs = model.frame_seqlen(height, width);
        let mut config = match rollout.local_attn_size {
            None => CacheConfig::global(rollout.global_cache_frames, fs),
            Some(window) => CacheConfig::rolling(window, rollout.sink_size, fs)?,
        };
        if let Some(dtype) = kv_dtype {
            config = config.with_dtype(dtype);
        }
        if rollout.longlive.is_some() {
            config = config
                .with_rules(CacheRules::LongLive)
                .with_relative_rope(rollout.relative_rope());
        }
        Ok(DitDenoiser {
            model,
            cache: model.new_cache(config),
            context,
        })
    }

    /// Switches to another prompt; its cross-attention keys/values are recomputed on the next
    /// call.
    pub fn set_context(&mut self, context: Tensor<3>) {
        self.context = context;
        self.cache.reset_cross_attn();
    }

    /// `(global_end, local_end)` of the self-attention caches.
    pub fn counters(&self) -> (usize, usize) {
        self.cache.counters()
    }

    /// The caches (buffer sizes, counters).
    pub fn cache(&self) -> &KvCaches {
        &self.cache
    }

    /// The bookkeeping of the last call.
    pub fn last_plan(&self) -> Option<WritePlan> {
        self.cache.last_plan()
    }
}

impl CausalDenoiser for DitDenoiser<'_> {
    fn reset(&mut self) -> Result<(), PipelineError> {
        self.cache.reset();
        Ok(())
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        let [batch, ..] = x.dims();
        let t: Vec<f32> = (0..batch).flat_map(|_| timesteps.iter().copied()).collect();
        Ok(self.model.forward(
            x,
            &t,
            self.context.clone(),
            Some(&mut self.cache),
            start_frame,
        )?)
    }

    fn set_conditioning(&mut self, context: Tensor<3>) -> Result<(), PipelineError> {
        let dtype: FloatDType = self.context.dtype().into();
        self.set_context(context.cast(dtype));
        Ok(())
    }

    fn reset_cross_attn(&mut self) -> Result<(), PipelineError> {
        self.cache.reset_cross_attn();
        Ok(())
    }

    fn zero_kv(&mut self) -> Result<(), PipelineError> {
        self.cache.zero_kv();
        Ok(())
    }

    fn recache_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, PipelineError> {
        let [batch, ..] = x.dims();
        let t: Vec<f32> = (0..batch).flat_map(|_| timesteps.iter().copied()).collect();
        let context = self.context.clone();
        Ok(self
            .model
            .forward_cached(x, &t, context, &mut self.cache, start_frame, sink_recache)?)
    }
}
