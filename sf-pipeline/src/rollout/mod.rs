//! The self-forcing rollout (upstream `CausalInferencePipeline.inference`,
//! `pipeline/causal_inference.py`): latent video chunk by chunk, each chunk denoised in a
//! few warped steps against the DiT's KV cache, then written back into the cache by a refresh
//! pass on the clean chunk. A [`Rollout`] is an iterator that yields each chunk as soon as it
//! exists; it can be cancelled between model calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sf_device::{StageTimer, Timings};

use crate::PipelineError;
use crate::noise::NoiseSource;
use crate::scheduler::{FlowMatchScheduler, SchedulerConfig};

/// Latent frames the 3D RoPE table covers (1024 latent frames, about 4096 video frames).
pub const MAX_ROPE_FRAMES: usize = 1024;

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
}

impl<T: CausalDenoiser + ?Sized> CausalDenoiser for &mut T {
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
}

impl RolloutConfig {
    /// Cache capacity in latent frames.
    pub fn cache_frames(&self) -> usize {
        self.local_attn_size.unwrap_or(self.global_cache_frames)
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
        if total > MAX_ROPE_FRAMES {
            return err(format!(
                "{total} latent frames exceed the RoPE table's {MAX_ROPE_FRAMES} positions"
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

/// Cancels a running rollout between model calls.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a model call was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Pushing an initial latent chunk through the model at t = 0.
    Initial,
    /// Denoising step `i` of a generated chunk.
    Denoise(usize),
    /// The cache refresh on the clean chunk.
    Refresh,
}

/// One recorded model call (when recording is on), for parity checks and debugging.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// Its purpose.
    pub kind: CallKind,
    /// First latent frame.
    pub start_frame: usize,
    /// Input latents.
    pub x: Tensor<5>,
    /// Per-frame timesteps.
    pub t: Vec<f32>,
    /// Model output (flow).
    pub flow: Tensor<5>,
    /// The x0 prediction (denoising steps only).
    pub x0: Option<Tensor<5>>,
    /// The noise that re-noised x0 after this step (all steps but the last).
    pub eps: Option<Tensor<5>>,
}

/// A finished chunk.
#[derive(Clone, Debug)]
pub struct ChunkOutput {
    /// Index over all chunks, initial ones first.
    pub index: usize,
    /// Whether it was given (initial latent) or generated.
    pub generated: bool,
    /// First latent frame.
    pub start_frame: usize,
    /// Clean latents `[B, C, F, H, W]`.
    pub latents: Tensor<5>,
    /// `denoise` and `refresh` time of this chunk.
    pub timings: Timings,
    /// The model calls of this chunk, when recording.
    pub calls: Vec<CallRecord>,
}

/// Shape of the latents to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatentShape {
    /// Batch.
    pub batch: usize,
    /// Latent channels (16).
    pub channels: usize,
    /// Latent height (60 at 480p).
    pub height: usize,
    /// Latent width (104 at 832 px).
    pub width: usize,
}

/// The rollout as an iterator of chunks.
pub struct Rollout<D: CausalDenoiser, N: NoiseSource> {
    denoiser: D,
    noise_source: N,
    scheduler: FlowMatchScheduler,
    timesteps: Vec<f32>,
    config: RolloutConfig,
    plan: ChunkPlan,
    initial: Option<Tensor<5>>,
    noise: Tensor<5>,
    device: Device,
    next: usize,
    start_frame: usize,
    cancel: CancelToken,
    record: bool,
    finished: bool,
}

impl<D: CausalDenoiser, N: NoiseSource> Rollout<D, N> {
    /// Prepares a rollout of `generate` latent frames after an optional clean `initial` latent
    /// (image-to-video, video extension). Resets the denoiser's caches and draws the initial
    /// noise.
    pub fn new(
        mut denoiser: D,
        mut noise_source: N,
        config: RolloutConfig,
        shape: LatentShape,
        generate: usize,
        initial: Option<Tensor<5>>,
        device: &Device,
    ) -> Result<Self, PipelineError> {
        let initial_frames = match &initial {
            Some(t) => {
                let [b, c, f, h, w] = t.dims();
                if [b, c, h, w] != [shape.batch, shape.channels, shape.height, shape.width] {
                    return Err(PipelineError::Shape(format!(
                        "initial latent {:?} does not match the generation's [B={}, C={}, H={}, W={}]",
                        t.dims(),
                        shape.batch,
                        shape.channels,
                        shape.height,
                        shape.width
                    )));
                }
                f
            }
            None => 0,
        };
        let plan = config.plan(generate, initial_frames)?;
        let scheduler = FlowMatchScheduler::from_config(&config.scheduler)?;
        let timesteps = scheduler.schedule(&config.scheduler)?;
        denoiser.reset()?;
        let noise = noise_source.initial(
            [
                shape.batch,
                shape.channels,
                generate,
                shape.height,
                shape.width,
            ],
            device,
        )?;
        Ok(Rollout {
            denoiser,
            noise_source,
            scheduler,
            timesteps,
            config,
            plan,
            initial,
            noise,
            device: device.clone(),
            next: 0,
            start_frame: 0,
            cancel: CancelToken::new(),
            record: false,
            finished: false,
        })
    }

    /// Uses `token` to cancel between model calls.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Records every model call in [`ChunkOutput::calls`].
    pub fn with_recording(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// The chunk plan.
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }

    /// The warped denoising timesteps.
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// Runs to the end and concatenates every chunk's latents along the frame axis.
    pub fn run_to_end(self) -> Result<Tensor<5>, PipelineError> {
        let chunks = self
            .map(|c| c.map(|c| c.latents))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(chunks, 2))
    }

    fn call(
        &mut self,
        x: Tensor<5>,
        t: f32,
        frames: usize,
    ) -> Result<(Tensor<5>, Vec<f32>), PipelineError> {
        if self.cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let ts = vec![t; frames];
        let flow = self.denoiser.predict_flow(x, &ts, self.start_frame)?;
        Ok((flow, ts))
    }

    fn initial_chunk(&mut self, frames: usize) -> Result<ChunkOutput, PipelineError> {
        let offset = self.start_frame;
        let latents = self
            .initial
            .as_ref()
            .map(|t| t.clone().narrow(2, offset, frames))
            .ok_or_else(|| PipelineError::Config("no initial latent".into()))?;
        let mut timer = StageTimer::new(&self.device);
        let (flow, t) = timer.time("refresh", || self.call(latents.clone(), 0.0, frames))??;
        let calls = self.record_call(CallKind::Initial, &latents, t, flow, None, None);
        Ok(self.emit(false, latents, timer.take(), calls))
    }

    fn generated_chunk(
        &mut self,
        chunk: usize,
        frames: usize,
    ) -> Result<ChunkOutput, PipelineError> {
        let shift = self.plan.initial.iter().sum::<usize>();
        let mut x = self
            .noise
            .clone()
            .narrow(2, self.start_frame - shift, frames);
        let mut timer = StageTimer::new(&self.device);
        let mut calls = Vec::new();
        let mut x0 = x.clone();
        let steps = self.timesteps.clone();
        for (i, &t_i) in steps.iter().enumerate() {
            let (flow, ts) = timer.time("denoise", || self.call(x.clone(), t_i, frames))??;
            x0 = self.scheduler.flow_to_x0(flow.clone(), x.clone(), &ts)?;
            let eps = match steps.get(i + 1) {
                Some(&t_next) => {
                    let eps = self
                        .noise_source
                        .renoise(chunk, i, x0.dims(), &self.device)?;
                    let next =
                        self.scheduler
                            .add_noise(x0.clone(), eps.clone(), &vec![t_next; frames])?;
                    Some((eps, next))
                }
                None => None,
            };
            let eps_rec = eps.as_ref().map(|(e, _)| e.clone());
            calls.extend(self.record_call(
                CallKind::Denoise(i),
                &x,
                ts,
                flow,
                Some(x0.clone()),
                eps_rec,
            ));
            if let Some((_, next)) = eps {
                x = next;
            }
        }
        if !all_finite(&x0) {
            return Err(PipelineError::NonFinite {
                chunk,
                start_frame: self.start_frame,
            });
        }
        let last = chunk + 1 == self.plan.generated.len();
        if !(last && self.config.skip_last_refresh) {
            let t_ctx = self.config.context_noise;
            let (flow, ts) = timer.time("refresh", || self.call(x0.clone(), t_ctx, frames))??;
            calls.extend(self.record_call(CallKind::Refresh, &x0, ts, flow, None, None));
        }
        Ok(self.emit(true, x0, timer.take(), calls))
    }

    fn record_call(
        &self,
        kind: CallKind,
        x: &Tensor<5>,
        t: Vec<f32>,
        flow: Tensor<5>,
        x0: Option<Tensor<5>>,
        eps: Option<Tensor<5>>,
    ) -> Option<CallRecord> {
        self.record.then(|| CallRecord {
            kind,
            start_frame: self.start_frame,
            x: x.clone(),
            t,
            flow,
            x0,
            eps,
        })
    }

    fn emit(
        &mut self,
        generated: bool,
        latents: Tensor<5>,
        timings: Timings,
        calls: impl IntoIterator<Item = CallRecord>,
    ) -> ChunkOutput {
        let frames = latents.dims()[2];
        let out = ChunkOutput {
            index: self.next,
            generated,
            start_frame: self.start_frame,
            latents,
            timings,
            calls: calls.into_iter().collect(),
        };
        self.next += 1;
        self.start_frame += frames;
        out
    }
}

impl<D: CausalDenoiser, N: NoiseSource> Iterator for Rollout<D, N> {
    type Item = Result<ChunkOutput, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let n_init = self.plan.initial.len();
        let result = if self.next < n_init {
            let frames = self.plan.initial[self.next];
            self.initial_chunk(frames)
        } else if let Some(&frames) = self.plan.generated.get(self.next - n_init) {
            self.generated_chunk(self.next - n_init, frames)
        } else {
            self.finished = true;
            return None;
        };
        if result.is_err() {
            self.finished = true;
        }
        Some(result)
    }
}

fn all_finite(t: &Tensor<5>) -> bool {
    !t.clone().is_finite().bool_not().any().into_scalar::<bool>()
}
