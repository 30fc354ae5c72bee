//! The self-forcing rollout (upstream `CausalInferencePipeline.inference`,
//! `pipeline/causal_inference.py`): latent video chunk by chunk, each chunk denoised in a
//! few warped steps against the DiT's KV cache, then written back into the cache by a refresh
//! pass on the clean chunk. A [`Rollout`] is an iterator that yields each chunk as soon as it
//! exists; it can be cancelled between model calls, and its prompt switched at chunk starts
//! (a schedule or a live [`PromptSwitch`], LongLive's re-cache: [`switch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Device, Tensor};
use sf_device::{StageTimer, Timings};

use crate::PipelineError;
use crate::noise::NoiseSource;
use crate::scheduler::FlowMatchScheduler;

mod config;
mod denoiser;
pub mod switch;

pub use config::{ChunkPlan, LongLiveConfig, MAX_ROPE_FRAMES, RolloutConfig};
pub use denoiser::CausalDenoiser;
pub use switch::{PromptSwitch, SwitchEvent, UnappliedSwitch};

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
    /// The re-cache of the last frames with a new prompt at a switch (output discarded).
    Recache,
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
    /// The model calls of this chunk, when recording (a switch's re-cache first).
    pub calls: Vec<CallRecord>,
    /// The prompt switch that fired at this chunk's start, if any.
    pub switch: Option<SwitchEvent>,
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

impl LatentShape {
    /// `[batch, channels, frames, height, width]`.
    pub fn dims(&self, frames: usize) -> [usize; 5] {
        [self.batch, self.channels, frames, self.height, self.width]
    }
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
    /// The initial noise of every generated frame (`None` in an endless rollout: each chunk's
    /// is drawn when it starts).
    noise: Option<Tensor<5>>,
    shape: LatentShape,
    /// Endless: `Some(unbounded)`, chunks after the plan's continue its layout when unbounded.
    endless: Option<bool>,
    rope_end: bool,
    device: Device,
    next: usize,
    start_frame: usize,
    cancel: CancelToken,
    record: bool,
    finished: bool,
    /// Scheduled switches (frame, conditioning, chunk it fires at), in order; `next_switch` is
    /// the first that has not fired.
    schedule: Vec<(usize, Tensor<3>, usize)>,
    next_switch: usize,
    live: Option<PromptSwitch>,
    segment: usize,
    /// The latest emitted latents (start frame, chunk), as far back as a re-cache reads.
    history: Vec<(usize, Tensor<5>)>,
    pending_switch: Option<SwitchEvent>,
}

impl<D: CausalDenoiser, N: NoiseSource> Rollout<D, N> {
    /// Prepares a rollout of `generate` latent frames after an optional clean `initial` latent
    /// (image-to-video, video extension). Resets the denoiser's caches and draws the initial
    /// noise.
    pub fn new(
        denoiser: D,
        noise_source: N,
        config: RolloutConfig,
        shape: LatentShape,
        generate: usize,
        initial: Option<Tensor<5>>,
        device: &Device,
    ) -> Result<Self, PipelineError> {
        Self::build(
            denoiser,
            noise_source,
            config,
            shape,
            Some(generate),
            initial,
            device,
        )
    }

    /// Prepares an endless rollout: chunk after chunk until cancelled, through a rolling
    /// window (required), each chunk's initial noise drawn when the chunk starts. It ends by
    /// itself at the RoPE table's end ([`RolloutConfig::endless_limit`],
    /// [`reached_rope_limit`](Self::reached_rope_limit)) unless relative RoPE lifts it.
    pub fn endless(
        denoiser: D,
        noise_source: N,
        config: RolloutConfig,
        shape: LatentShape,
        device: &Device,
    ) -> Result<Self, PipelineError> {
        Self::build(denoiser, noise_source, config, shape, None, None, device)
    }

    fn build(
        mut denoiser: D,
        mut noise_source: N,
        config: RolloutConfig,
        shape: LatentShape,
        generate: Option<usize>,
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
        let plan = match generate {
            Some(generate) => config.plan(generate, initial_frames)?,
            None => config.endless_plan()?,
        };
        let endless = generate.is_none().then(|| config.endless_limit().is_none());
        let scheduler = FlowMatchScheduler::from_config(&config.scheduler)?;
        let timesteps = scheduler.schedule(&config.scheduler)?;
        denoiser.reset()?;
        let noise = match generate {
            Some(generate) => Some(noise_source.initial(shape.dims(generate), device)?),
            None => None,
        };
        Ok(Rollout {
            denoiser,
            noise_source,
            scheduler,
            timesteps,
            config,
            plan,
            initial,
            noise,
            shape,
            endless,
            rope_end: false,
            device: device.clone(),
            next: 0,
            start_frame: 0,
            cancel: CancelToken::new(),
            record: false,
            finished: false,
            schedule: Vec::new(),
            next_switch: 0,
            live: None,
            segment: 0,
            history: Vec::new(),
            pending_switch: None,
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

    /// The chunk plan (endless: the chunks up to the RoPE limit, or only the first ones when
    /// relative RoPE lifts it).
    pub fn plan(&self) -> &ChunkPlan {
        &self.plan
    }

    /// Whether this rollout runs until cancelled ([`Rollout::endless`]).
    pub fn is_endless(&self) -> bool {
        self.endless.is_some()
    }

    /// Whether an endless rollout ended because the next chunk would pass the RoPE table
    /// ([`MAX_ROPE_FRAMES`]; relative RoPE lifts the limit).
    pub fn reached_rope_limit(&self) -> bool {
        self.rope_end
    }

    /// The denoiser (e.g. to read its KV cache sizes).
    pub fn denoiser(&self) -> &D {
        &self.denoiser
    }

    /// Latent frames of generated chunk `chunk`, `None` past the end.
    fn generated_frames(&self, chunk: usize) -> Option<usize> {
        match self.plan.generated.get(chunk) {
            Some(&f) => Some(f),
            None => self.continued(),
        }
    }

    /// The warped denoising timesteps.
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// Chunk length past the plan (an endless rollout without a RoPE limit).
    pub(crate) fn continued(&self) -> Option<usize> {
        (self.endless == Some(true)).then_some(self.config.num_frame_per_block)
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
        let mut x = match &self.noise {
            Some(noise) => noise.clone().narrow(2, self.start_frame - shift, frames),
            None => self
                .noise_source
                .initial(self.shape.dims(frames), &self.device)?,
        };
        let mut timer = StageTimer::new(&self.device);
        let mut calls = Vec::new();
        self.switch_if_due(chunk, &mut timer, &mut calls)?;
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
        let last = self.generated_frames(chunk + 1).is_none();
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
            switch: self.pending_switch.take(),
        };
        self.remember(out.start_frame, &out.latents);
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
        } else if let Some(frames) = self.generated_frames(self.next - n_init) {
            self.generated_chunk(self.next - n_init, frames)
        } else {
            self.rope_end = self.endless.is_some();
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
