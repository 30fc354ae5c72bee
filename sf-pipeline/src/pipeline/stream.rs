//! [`VideoStream`]: decoded frame chunks as the rollout produces them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sf_device::{Timings, peak_rss_bytes, sync};
use sf_vae::{RgbFrame, VideoDecoder, frames_to_rgb8};

use super::live::{PromptEncoder, lock};
use super::{GenerationRequest, Pipeline};
use crate::rollout::{
    CancelToken, LatentShape, MAX_ROPE_FRAMES, PromptSwitch, Rollout, UnappliedSwitch,
};
use crate::{DitDenoiser, PipelineError, SeededNoise};

/// Frames decoded from one chunk of latents.
#[derive(Clone, Debug)]
pub struct FrameChunk {
    /// Chunk index (0 first).
    pub index: usize,
    /// First latent frame of the chunk.
    pub latent_start: usize,
    /// Latent frames in the chunk.
    pub latent_frames: usize,
    /// Index of the first video frame of this chunk in the whole video.
    pub first_frame: usize,
    /// The decoded frames, in order.
    pub frames: Vec<RgbFrame>,
    /// `denoise`, `refresh`, `recache` (at a prompt switch) and `decode` time of this chunk.
    pub timings: Timings,
    /// The prompt switch that fired at this chunk's start (this chunk follows the new prompt).
    pub switch: Option<crate::SwitchEvent>,
}

/// Totals of a stream so far.
#[derive(Clone, Debug, Default)]
pub struct StreamSummary {
    /// Video frames produced.
    pub frames: usize,
    /// Chunks produced.
    pub chunks: usize,
    /// Time spent encoding the prompt (zero on a prompt-cache hit).
    pub text_encode: Duration,
    /// Whether the prompt cache had the prompt.
    pub prompt_cache_hit: bool,
    /// Time in the DiT (denoising steps and cache refreshes).
    pub denoise: Duration,
    /// Time in the decoder.
    pub decode: Duration,
    /// From the call to [`Pipeline::stream`] until the first frames were decoded.
    pub time_to_first_frame: Option<Duration>,
    /// From the call to [`Pipeline::stream`] until now (or the end).
    pub elapsed: Duration,
    /// Peak resident memory of the process (Linux), in bytes.
    pub peak_rss: Option<u64>,
    /// Set when the prompt was longer than the text length and was truncated.
    pub prompt_warning: Option<String>,
    /// Where each prompt started, the first one (latent frame 0) included.
    pub prompts: Vec<PromptStart>,
    /// Why the stream ended (`None` while it runs).
    pub end: Option<StreamEnd>,
    /// A live switch that was still waiting for a chunk start when the stream ended.
    pub unapplied_switch: Option<UnappliedSwitch>,
}

/// Where one prompt took over (from the rollout's [`SwitchEvent`](crate::SwitchEvent)s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptStart {
    /// The prompt (`None` for a live request made through [`VideoStream::prompt_switch`]
    /// with an encoded prompt and no text).
    pub prompt: Option<String>,
    /// The latent frame the schedule asked for (`None`: the first prompt or a live switch).
    pub requested_frame: Option<usize>,
    /// The first latent frame that follows it (a chunk start).
    pub latent_frame: usize,
    /// The first video frame that follows it.
    pub video_frame: usize,
}

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every requested frame was made.
    Complete,
    /// An endless stream reached the end of the RoPE table after `latent_frames` frames.
    RopeLimit {
        /// Latent frames made.
        latent_frames: usize,
    },
    /// Cancelled through the request's token.
    Cancelled,
    /// Stopped by an error (the chunks before it are valid).
    Failed(String),
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::Complete => write!(f, "complete"),
            StreamEnd::RopeLimit { latent_frames } => write!(
                f,
                "the endless stream stopped after {latent_frames} latent frames: the RoPE \
                 table ends at {MAX_ROPE_FRAMES} latent frames; LongLive's KV-cache-relative \
                 RoPE (rollout.longlive.relative_rope, its infinite attention) with a rolling \
                 window lifts the limit"
            ),
            StreamEnd::Cancelled => write!(f, "cancelled"),
            StreamEnd::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl StreamSummary {
    /// Video frames per second of DiT time.
    pub fn denoise_fps(&self) -> f64 {
        per_second(self.frames, self.denoise)
    }

    /// Video frames per second from the start to the last frame.
    pub fn end_to_end_fps(&self) -> f64 {
        per_second(self.frames, self.elapsed)
    }
}

fn per_second(frames: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        frames as f64 / time.as_secs_f64()
    }
}

/// A finished video.
#[derive(Clone, Debug)]
pub struct GeneratedVideo {
    /// Every frame, in order.
    pub frames: Vec<RgbFrame>,
    /// Timings and memory.
    pub summary: StreamSummary,
}

/// Decoded chunks of one generation, in order. Stops after the first error (cancellation, NaN
/// or Inf in the latents, a device failure); the chunks yielded before it stay valid.
pub struct VideoStream<'a> {
    rollout: Rollout<DitDenoiser<'a>, SeededNoise>,
    decoder: &'a mut (dyn VideoDecoder + Send),
    device: burn::tensor::Device,
    cancel: CancelToken,
    switch: PromptSwitch,
    encoder: PromptEncoder,
    /// Low-memory plan: held while a chunk is computed (a live encode waits for the gap).
    between_chunks: Option<Arc<Mutex<()>>>,
    /// The scheduled prompts in order, and how many fired.
    scheduled: Vec<String>,
    fired: usize,
    started: Instant,
    summary: StreamSummary,
    finished: bool,
}

impl VideoStream<'_> {
    /// Totals so far (complete once the stream has ended).
    pub fn summary(&self) -> StreamSummary {
        let mut s = self.summary.clone();
        if !self.finished {
            s.elapsed = self.started.elapsed();
        }
        s.peak_rss = peak_rss_bytes();
        s
    }

    /// The token that cancels this stream.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The live prompt switch of this stream: clone it into another thread and
    /// [`request`](PromptSwitch::request) an encoded prompt; it fires at the next chunk start.
    pub fn prompt_switch(&self) -> &PromptSwitch {
        &self.switch
    }

    /// A handle that encodes a prompt on another thread while this stream keeps producing
    /// chunks, then switches to it ([`PromptEncoder::switch_to`]).
    pub fn prompt_encoder(&self) -> PromptEncoder {
        self.encoder.clone()
    }

    /// Encodes `prompt` (through the prompt cache) on the caller's thread, between chunks,
    /// and switches to it at the next chunk start (`docs/switching.md`); the chunks already
    /// yielded are unchanged. To keep the stream running while a prompt the cache does not
    /// hold is encoded, use [`prompt_encoder`](Self::prompt_encoder) from another thread.
    pub fn switch_prompt(&mut self, prompt: &str) -> Result<(), PipelineError> {
        self.encoder.switch_to(prompt).map(|_| ())
    }

    /// Elements of the self-attention key and value buffers of every block (constant once a
    /// rolling window is full: an endless stream's memory stays flat).
    pub fn kv_cache_elements(&self) -> usize {
        self.rollout
            .denoiser()
            .cache()
            .layers
            .iter()
            .filter_map(|l| l.self_attn.buffers())
            .map(|(k, v)| k.shape().num_elements() + v.shape().num_elements())
            .sum()
    }

    /// Names the prompt of a switch at this chunk and records where it started.
    fn record_switch(&mut self, chunk: &mut FrameChunk) {
        let Some(event) = &mut chunk.switch else {
            return;
        };
        if event.requested_frame.is_some() {
            self.fired += 1;
            event.prompt = self.scheduled.get(self.fired - 1).cloned();
        }
        self.summary.prompts.push(PromptStart {
            prompt: event.prompt.clone(),
            requested_frame: event.requested_frame,
            latent_frame: event.applied_at_frame,
            video_frame: chunk.first_frame,
        });
    }

    /// The stream has ended: switching stops, and a request still waiting is reported.
    fn end(&mut self, end: StreamEnd) {
        self.finished = true;
        self.summary.elapsed = self.started.elapsed();
        self.summary.end = Some(end);
        self.summary.unapplied_switch = self.switch.close();
    }

    fn decode(&mut self, latents: burn::tensor::Tensor<5>) -> Result<Vec<RgbFrame>, PipelineError> {
        // The decoders take the rollout's `[B, C, F, h, w]` as it is.
        let frames = self.decoder.decode_chunk(latents)?;
        Ok(frames_to_rgb8(frames)?)
    }
}

impl Iterator for VideoStream<'_> {
    type Item = Result<FrameChunk, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let gate = self.between_chunks.clone();
        let _computing = gate.as_deref().map(lock);
        let result = match self.rollout.next() {
            None => {
                self.end(if self.rollout.reached_rope_limit() {
                    StreamEnd::RopeLimit {
                        latent_frames: self.rollout.plan().total_frames(),
                    }
                } else {
                    StreamEnd::Complete
                });
                return None;
            }
            Some(Err(e)) => Err(e),
            Some(Ok(chunk)) => {
                let latent_frames = chunk.latents.dims()[2];
                let mut timings = chunk.timings.clone();
                let start = Instant::now();
                let decoded = self
                    .decode(chunk.latents)
                    .and_then(|f| sync(&self.device).map(|_| f).map_err(Into::into));
                timings.add("decode", start.elapsed());
                decoded.map(|frames| FrameChunk {
                    index: self.summary.chunks,
                    latent_start: chunk.start_frame,
                    latent_frames,
                    first_frame: self.summary.frames,
                    frames,
                    timings,
                    switch: chunk.switch,
                })
            }
        };
        let mut result = result;
        match &mut result {
            Ok(chunk) => {
                self.record_switch(chunk);
                self.summary.chunks += 1;
                self.summary.frames += chunk.frames.len();
                self.summary.denoise += chunk.timings.get("denoise")
                    + chunk.timings.get("refresh")
                    + chunk.timings.get("recache");
                self.summary.decode += chunk.timings.get("decode");
                if self.summary.time_to_first_frame.is_none() && !chunk.frames.is_empty() {
                    self.summary.time_to_first_frame = Some(self.started.elapsed());
                }
                self.summary.elapsed = self.started.elapsed();
            }
            Err(e) => {
                let end = match e {
                    PipelineError::Cancelled => StreamEnd::Cancelled,
                    other => StreamEnd::Failed(other.to_string()),
                };
                self.end(end);
            }
        }
        Some(result)
    }
}

impl Drop for VideoStream<'_> {
    /// A stream dropped before its end stops taking switches.
    fn drop(&mut self) {
        self.switch.close();
    }
}

impl Pipeline {
    /// Starts a generation and returns its decoded chunks as they are produced. The prompt and
    /// every scheduled prompt are encoded (or read from the prompt cache) before this returns.
    /// An endless request runs until cancelled (or the RoPE table's end, [`StreamEnd`]).
    pub fn stream(
        &mut self,
        request: &GenerationRequest,
    ) -> Result<VideoStream<'_>, PipelineError> {
        let started = Instant::now();
        request.validate(&self.configs)?;
        let low_memory = self.plan.mode == crate::PlanMode::LowMemory;
        let context_dtype = self.policy.dit.compute.float_dtype();
        let mut text = lock(&self.text);
        let conditioning = text.encode(request.conditioning_text())?;
        let mut schedule = Vec::with_capacity(request.prompt_schedule.len());
        let mut all_hit = conditioning.cache_hit;
        for (frame, prompt) in &request.prompt_schedule {
            let encoded = text.encode(prompt)?;
            all_hit &= encoded.cache_hit;
            schedule.push((*frame, encoded.context.cast(context_dtype)));
        }
        if low_memory {
            text.release();
        }
        drop(text);
        let text_encode = if all_hit {
            std::time::Duration::ZERO
        } else {
            started.elapsed()
        };
        let rollout_config = request.rollout_config(&self.configs);
        let (lat_h, lat_w) = (self.height / 8, self.width / 8);
        let device = self.selected.device.clone();
        let kv_dtype = Some(self.policy.kv_cache.storage.float_dtype());
        let context = conditioning.context.cast(context_dtype);
        let denoiser =
            DitDenoiser::new(&self.dit, context, &rollout_config, lat_h, lat_w, kv_dtype)?;
        let shape = LatentShape {
            batch: 1,
            channels: self.configs.dit.in_dim,
            height: lat_h,
            width: lat_w,
        };
        let noise = SeededNoise::new(request.seed);
        let mut rollout = if request.endless {
            Rollout::endless(denoiser, noise, rollout_config, shape, &device)?
        } else {
            Rollout::new(
                denoiser,
                noise,
                rollout_config,
                shape,
                request.latent_frames,
                None,
                &device,
            )?
        }
        .with_cancel(request.cancel.clone());
        if !schedule.is_empty() {
            rollout = rollout.with_prompt_schedule(schedule)?;
        }
        let switch = PromptSwitch::new();
        let rollout = rollout.with_prompt_switch(switch.clone());
        let between_chunks = low_memory.then(|| Arc::new(Mutex::new(())));
        let encoder = PromptEncoder::new(
            self.text.clone(),
            switch.clone(),
            context_dtype,
            between_chunks.clone(),
        );
        let decoder = self.decoder.as_mut();
        decoder.reset();
        Ok(VideoStream {
            rollout,
            decoder,
            device,
            cancel: request.cancel.clone(),
            switch,
            encoder,
            between_chunks,
            scheduled: request
                .prompt_schedule
                .iter()
                .map(|(_, p)| p.clone())
                .collect(),
            fired: 0,
            started,
            summary: StreamSummary {
                text_encode,
                prompt_cache_hit: conditioning.cache_hit,
                prompt_warning: conditioning.tokens.warning(),
                prompts: vec![PromptStart {
                    prompt: Some(request.prompt.clone()),
                    requested_frame: None,
                    latent_frame: 0,
                    video_frame: 0,
                }],
                ..StreamSummary::default()
            },
            finished: false,
        })
    }

    /// Generates a whole video (see [`Pipeline::stream`]; an endless request runs until
    /// cancelled, and the frames are then dropped with the error: use `stream` for it).
    pub fn generate(
        &mut self,
        request: &GenerationRequest,
    ) -> Result<GeneratedVideo, PipelineError> {
        let mut stream = self.stream(request)?;
        let mut frames = Vec::with_capacity(request.video_frames());
        for chunk in stream.by_ref() {
            frames.extend(chunk?.frames);
        }
        Ok(GeneratedVideo {
            frames,
            summary: stream.summary(),
        })
    }
}
