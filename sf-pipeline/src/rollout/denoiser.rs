//! [`CausalDenoiser`]: one call of the causal DiT, as the rollout sees it.

use burn::tensor::Tensor;

use crate::PipelineError;

/// One call of the causal DiT, as the rollout sees it. The implementation owns the KV caches.
pub trait CausalDenoiser {
    /// Clears every cache before a new generation (the prompt's cross-attention K/V included
    /// when the prompt changes).
    fn reset(&mut self) -> Result<(), PipelineError>;

    /// Runs the DiT on `x` (`[B, C, F, H, W]`, latent frames `start_frame..start_frame + F`)
    /// at one timestep per frame, writes the chunk's keys and values into the cache, and returns
    /// the flow prediction (same shape as `x`).
    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
    ) -> Result<Tensor<5>, PipelineError>;

    /// Replaces the conditioning (a prompt switch); the prompt's cross-attention keys/values
    /// are recomputed at the next call. Denoisers without prompts refuse.
    fn set_conditioning(&mut self, _context: Tensor<3>) -> Result<(), PipelineError> {
        Err(PipelineError::Config(
            "this denoiser cannot switch prompts".into(),
        ))
    }

    /// Forgets the cross-attention keys/values (LongLive recomputes them after the re-cache).
    fn reset_cross_attn(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Zeroes every self-attention key/value, counters kept (a switch with LongLive's
    /// `global_sink` off).
    fn zero_kv(&mut self) -> Result<(), PipelineError> {
        Err(PipelineError::Config(
            "this denoiser cannot zero its KV cache".into(),
        ))
    }

    /// The re-cache call after a switch: [`predict_flow`](Self::predict_flow) with LongLive's
    /// `sink_recache_after_switch` flag (rewrite the sink rows too).
    fn recache_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, PipelineError> {
        if sink_recache {
            return Err(PipelineError::Config(
                "this denoiser cannot re-cache the attention sink".into(),
            ));
        }
        self.predict_flow(x, timesteps, start_frame)
    }
}

impl<T: CausalDenoiser + ?Sized> CausalDenoiser for &mut T {
    fn set_conditioning(&mut self, context: Tensor<3>) -> Result<(), PipelineError> {
        (**self).set_conditioning(context)
    }

    fn reset_cross_attn(&mut self) -> Result<(), PipelineError> {
        (**self).reset_cross_attn()
    }

    fn zero_kv(&mut self) -> Result<(), PipelineError> {
        (**self).zero_kv()
    }

    fn recache_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, PipelineError> {
        (**self).recache_flow(x, timesteps, start_frame, sink_recache)
    }

    fn reset(&mut self) -> Result<(), PipelineError> {
        (**self).reset()
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        (**self).predict_flow(x, timesteps, start_frame)
    }
}
