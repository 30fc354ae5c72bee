//! Streaming TAEHV decoding behind the [`VideoDecoder`] interface.

use burn::tensor::Tensor;

use super::decoder::DecoderMemory;
use super::model::{Taehv, trim_and_clamp};
use crate::VaeError;
use crate::video_decoder::{DecoderKind, VideoDecoder, check_latents};

/// Decodes a latent video chunk by chunk with persistent MemBlock memories (upstream
/// `StreamingTAEHV`). The first chunk of `F` latents yields `4F − 3` frames (the first 3 are
/// dropped, as upstream `decode_video` does), later chunks `4F`; the concatenation equals
/// [`Taehv::decode_video`] of all latents. Each latent costs the same work whatever came before.
#[derive(Debug)]
pub struct TaehvDecoder {
    model: Taehv,
    memory: DecoderMemory,
    started: bool,
}

impl TaehvDecoder {
    /// A streaming decoder over `model`.
    pub fn new(model: Taehv) -> Self {
        TaehvDecoder {
            model,
            memory: DecoderMemory::default(),
            started: false,
        }
    }

    /// The model.
    pub fn model(&self) -> &Taehv {
        &self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> Taehv {
        self.model
    }

    /// Bytes held by the MemBlock memories between chunks.
    pub fn memory_bytes(&self) -> usize {
        self.memory.bytes()
    }

    /// Decodes the next latents `[B, C, F, h, w]` (the rollout's layout; transposed once to
    /// TAEHV's `[B, F, C, h, w]`) into raw frames `[B, 4F, 3, 8h, 8w]` (no clamp, no trim;
    /// Self-Forcing's demo behaviour) and keeps the memories.
    pub fn decode_chunk_raw(&mut self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        check_latents(&latents, self.model.config().latent_channels)?;
        let raw = self
            .model
            .decode_raw_with(latents.swap_dims(1, 2), &mut self.memory)?;
        self.started = true;
        Ok(raw)
    }
}

impl VideoDecoder for TaehvDecoder {
    fn kind(&self) -> DecoderKind {
        DecoderKind::Taehv
    }

    /// Latents `[B, 16, F, h, w]` → frames `[B, T, 3, 8h, 8w]` in `[0, 1]` (f32), with
    /// `T = 4F − 3` for the first chunk of a video and `4F` afterwards.
    fn decode_chunk(&mut self, latents: Tensor<5>) -> Result<Tensor<5>, VaeError> {
        let first = !self.started;
        let raw = self.decode_chunk_raw(latents)?;
        let trim = if first {
            self.model.config().frames_to_trim()
        } else {
            0
        };
        Ok(trim_and_clamp(raw, trim))
    }

    fn reset(&mut self) {
        self.memory.clear();
        self.started = false;
    }
}
