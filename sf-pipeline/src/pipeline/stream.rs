//! [`VideoStream`]: decoded frame chunks as the rollout produces them.

use std::time::{Duration, Instant};

use sf_device::{Timings, peak_rss_bytes, sync};
use sf_vae::{RgbFrame, VideoDecoder, frames_to_rgb8};

use super::text::TextConditioner;
use super::{GenerationRequest, Pipeline};
use crate::rollout::{CancelToken, LatentShape, PromptSwitch, Rollout};
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
    text: &'a mut TextConditioner,
    release_text: bool,
    context_dtype: burn::tensor::FloatDType,
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

    /// Encodes `prompt` (through the prompt cache) and switches to it at the next chunk start
    /// (`docs/switching.md`); the chunks already yielded are unchanged.
    pub fn switch_prompt(&mut self, prompt: &str) -> Result<(), PipelineError> {
        let conditioning = self.text.encode(prompt)?;
        if self.release_text {
            self.text.release();
        }
        self.switch
            .request(conditioning.context.cast(self.context_dtype));
        Ok(())
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
        let result = match self.rollout.next() {
            None => {
                self.finished = true;
                self.summary.elapsed = self.started.elapsed();
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
        match &result {
            Ok(chunk) => {
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
            Err(_) => {
                self.finished = true;
                self.summary.elapsed = self.started.elapsed();
            }
        }
        Some(result)
    }
}

impl Pipeline {
    /// Starts a generation and returns its decoded chunks as they are produced. The prompt is
    /// encoded (or read from the prompt cache) before this returns.
    pub fn stream(
        &mut self,
        request: &GenerationRequest,
    ) -> Result<VideoStream<'_>, PipelineError> {
        let started = Instant::now();
        request.validate(&self.configs)?;
        let conditioning = self.text.encode(request.conditioning_text())?;
        if self.plan.mode == crate::PlanMode::LowMemory {
            self.text.release();
        }
        let text_encode = if conditioning.cache_hit {
            std::time::Duration::ZERO
        } else {
            started.elapsed()
        };
        let rollout_config = request.rollout_config(&self.configs);
        let (lat_h, lat_w) = (self.height / 8, self.width / 8);
        let device = self.selected.device.clone();
        let kv_dtype = Some(self.policy.kv_cache.storage.float_dtype());
        let context_dtype = self.policy.dit.compute.float_dtype();
        let context = conditioning.context.cast(context_dtype);
        let denoiser =
            DitDenoiser::new(&self.dit, context, &rollout_config, lat_h, lat_w, kv_dtype)?;
        let shape = LatentShape {
            batch: 1,
            channels: self.configs.dit.in_dim,
            height: lat_h,
            width: lat_w,
        };
        let rollout = Rollout::new(
            denoiser,
            SeededNoise::new(request.seed),
            rollout_config,
            shape,
            request.latent_frames,
            None,
            &device,
        )?
        .with_cancel(request.cancel.clone());
        let switch = PromptSwitch::new();
        let rollout = rollout.with_prompt_switch(switch.clone());
        let decoder = self.decoder.as_mut();
        decoder.reset();
        Ok(VideoStream {
            rollout,
            decoder,
            device,
            cancel: request.cancel.clone(),
            switch,
            text: &mut self.text,
            release_text: self.plan.mode == crate::PlanMode::LowMemory,
            context_dtype,
            started,
            summary: StreamSummary {
                text_encode,
                prompt_cache_hit: conditioning.cache_hit,
                prompt_warning: conditioning.tokens.warning(),
                ..StreamSummary::default()
            },
            finished: false,
        })
    }

    /// Generates a whole video (see [`Pipeline::stream`]).
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
