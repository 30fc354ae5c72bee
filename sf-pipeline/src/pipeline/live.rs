//! [`PromptEncoder`]: encodes a new prompt for a running [`VideoStream`](super::VideoStream) on
//! the caller's thread while the stream keeps producing chunks, then requests the switch.

use std::sync::{Arc, Mutex, MutexGuard};

use burn::tensor::{FloatDType, Tensor};

use super::text::TextConditioner;
use crate::PipelineError;
use crate::rollout::{PromptSwitch, UnappliedSwitch};

/// The pipeline's text side, shared with the live prompt encoders of its stream.
pub(crate) type SharedText = Arc<Mutex<TextConditioner>>;

/// Locks `m`; a panic elsewhere while holding it leaves a usable value behind.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Encodes prompts for one running stream from any thread and hands them to its
/// [`PromptSwitch`] (from [`VideoStream::prompt_encoder`](super::VideoStream::prompt_encoder)).
/// Clones share the stream; `Send + Sync`.
///
/// The encode runs on the calling thread while the stream computes its chunks, so a prompt the
/// prompt cache does not hold delays the switch, not the stream: the switch fires at the first
/// chunk start after the encode. Under the low-memory plan the text encoder and the DiT do not
/// fit together, so there the encode waits for the gap between two chunks and holds the stream
/// for its length (`docs/switching.md`).
#[derive(Clone)]
pub struct PromptEncoder {
    text: SharedText,
    switch: PromptSwitch,
    context_dtype: FloatDType,
    /// Low-memory plan: the stream holds this while it computes a chunk; the encode takes it,
    /// and frees the encoder's weights after.
    between_chunks: Option<Arc<Mutex<()>>>,
}

impl PromptEncoder {
    pub(crate) fn new(
        text: SharedText,
        switch: PromptSwitch,
        context_dtype: FloatDType,
        between_chunks: Option<Arc<Mutex<()>>>,
    ) -> Self {
        PromptEncoder {
            text,
            switch,
            context_dtype,
            between_chunks,
        }
    }

    /// Encodes `prompt` (through the prompt cache) on the calling thread and switches the
    /// stream to it at the next chunk start after the encode; the chunks already yielded are
    /// unchanged. Returns the earlier request it replaced before that one fired, if any.
    /// Errors on an empty prompt, a prompt that cannot be encoded, or a stream that has ended
    /// ([`PipelineError::StreamEnded`]).
    pub fn switch_to(&self, prompt: &str) -> Result<Option<UnappliedSwitch>, PipelineError> {
        if prompt.trim().is_empty() {
            return Err(PipelineError::Config(
                "the new prompt is empty: describe what the video shows from here".into(),
            ));
        }
        if self.switch.is_closed() {
            return Err(PipelineError::StreamEnded);
        }
        let context = self.encode(prompt)?;
        self.switch.put(context, Some(prompt.to_string()))
    }

    /// Whether the stream has ended (a switch can no longer take effect).
    pub fn stream_ended(&self) -> bool {
        self.switch.is_closed()
    }

    /// The pipeline's text side (tokenizer, encoder, prompt cache). While this is held, encodes
    /// wait (this handle's switches included); the stream itself never does.
    pub fn text(&self) -> MutexGuard<'_, TextConditioner> {
        lock(&self.text)
    }

    /// The stream's switch (what is pending, withdrawing it).
    pub fn prompt_switch(&self) -> &PromptSwitch {
        &self.switch
    }

    fn encode(&self, prompt: &str) -> Result<Tensor<3>, PipelineError> {
        let _between_chunks = self.between_chunks.as_deref().map(lock);
        let mut text = lock(&self.text);
        let encoded = text.encode(prompt);
        if self.between_chunks.is_some() {
            text.release();
        }
        Ok(encoded?.context.cast(self.context_dtype))
    }
}

impl std::fmt::Debug for PromptEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptEncoder")
            .field("pending", &self.switch.is_pending())
            .field("stream_ended", &self.switch.is_closed())
            .field("between_chunks", &self.between_chunks.is_some())
            .finish()
    }
}
