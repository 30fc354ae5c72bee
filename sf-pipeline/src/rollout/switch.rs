//! Prompt switching during a rollout (LongLive 1.0's `_recache_after_switch`,
//! `docs/switching.md`): a schedule of latent frames → conditioning fixed up front, and a
//! [`PromptSwitch`] handle that requests a switch from another thread while the rollout runs.
//!
//! A switch fires at the start of the next generated chunk whose first frame is at or past
//! its index (indices are rounded up to a chunk start), at most one per chunk; the chunk and
//! everything after it follow the new prompt, nothing already yielded changes.

use std::sync::{Arc, Mutex, MutexGuard};

use burn::tensor::Tensor;
use sf_device::StageTimer;

use super::{CallKind, CallRecord, CausalDenoiser, ChunkPlan, Rollout};
use crate::PipelineError;
use crate::noise::NoiseSource;

/// A live prompt switch: [`request`](Self::request) from any thread; the rollout applies the
/// latest request at its next chunk start. Clones share the request.
#[derive(Clone, Debug, Default)]
pub struct PromptSwitch(Arc<Mutex<Slot>>);

#[derive(Debug, Default)]
struct Slot {
    pending: Option<LiveRequest>,
    closed: bool,
}

/// A live request waiting for the next chunk start.
#[derive(Clone, Debug)]
pub(crate) struct LiveRequest {
    pub context: Tensor<3>,
    pub prompt: Option<String>,
}

/// A live request that never fired: a later one replaced it, or the stream ended first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnappliedSwitch {
    /// Its prompt, when it was made with one ([`PromptSwitch::request_prompt`]).
    pub prompt: Option<String>,
}

impl PromptSwitch {
    /// A handle with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A panic elsewhere while holding the lock leaves a plain value behind: keep using it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Switches to `context` (`[B, ≤ text_len, text_dim]`, the encoded prompt) at the next chunk
    /// start; replaces a request that has not fired yet (returned). Has no effect once the
    /// stream has ended ([`is_closed`](Self::is_closed)).
    pub fn request(&self, context: Tensor<3>) -> Option<UnappliedSwitch> {
        self.put(context, None).unwrap_or(None)
    }

    /// [`request`](Self::request) with the prompt's text, which the [`SwitchEvent`] carries.
    pub fn request_prompt(
        &self,
        context: Tensor<3>,
        prompt: impl Into<String>,
    ) -> Option<UnappliedSwitch> {
        self.put(context, Some(prompt.into())).unwrap_or(None)
    }

    /// The request, or [`PipelineError::StreamEnded`] once the switch is closed.
    pub(crate) fn put(
        &self,
        context: Tensor<3>,
        prompt: Option<String>,
    ) -> Result<Option<UnappliedSwitch>, PipelineError> {
        let mut slot = self.slot();
        if slot.closed {
            return Err(PipelineError::StreamEnded);
        }
        Ok(slot
            .pending
            .replace(LiveRequest { context, prompt })
            .map(|r| UnappliedSwitch { prompt: r.prompt }))
    }

    /// Whether a request waits for the next chunk start.
    pub fn is_pending(&self) -> bool {
        self.slot().pending.is_some()
    }

    /// The prompt of the request waiting for the next chunk start (`None`: nothing pending, or
    /// a request without text).
    pub fn pending_prompt(&self) -> Option<String> {
        self.slot().pending.as_ref().and_then(|r| r.prompt.clone())
    }

    /// Withdraws a request that has not fired; returns it.
    pub fn cancel(&self) -> Option<Tensor<3>> {
        self.slot().pending.take().map(|r| r.context)
    }

    /// Whether the stream it belongs to has ended (requests no longer take effect).
    pub fn is_closed(&self) -> bool {
        self.slot().closed
    }

    /// Ends switching (the stream has ended): returns the request that never fired.
    pub(crate) fn close(&self) -> Option<UnappliedSwitch> {
        let mut slot = self.slot();
        slot.closed = true;
        slot.pending
            .take()
            .map(|r| UnappliedSwitch { prompt: r.prompt })
    }

    pub(crate) fn take(&self) -> Option<LiveRequest> {
        self.slot().pending.take()
    }
}

/// A switch that fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchEvent {
    /// The scheduled latent frame (`None` for a live [`PromptSwitch`] request).
    pub requested_frame: Option<usize>,
    /// The chunk start it fired at (LongLive's `applied_at_frame`).
    pub applied_at_frame: usize,
    /// Generated-chunk index of the first chunk with the new prompt.
    pub chunk: usize,
    /// Segment index of the new prompt (1 for the first switch).
    pub segment: usize,
    /// Frames re-encoded with the new prompt (`[start, start + n)`), if any.
    pub recached: Option<(usize, usize)>,
    /// The new prompt's text, when known (a live request made with it; the pipeline's
    /// [`VideoStream`](crate::VideoStream) also fills in its scheduled prompts).
    pub prompt: Option<String>,
}

impl<D: CausalDenoiser, N: NoiseSource> Rollout<D, N> {
    /// Switches the prompt at latent frames: each `(frame, context)` fires at the first
    /// generated chunk starting at or after `frame` (at most one per chunk). Errors, before
    /// anything runs, on a frame 0, a frame listed twice or out of order, or one that never
    /// fires.
    pub fn with_prompt_schedule(
        mut self,
        schedule: Vec<(usize, Tensor<3>)>,
    ) -> Result<Self, PipelineError> {
        let frames: Vec<usize> = schedule.iter().map(|(f, _)| *f).collect();
        let chunks = schedule_chunks(&self.plan, self.continued(), &frames)?;
        self.schedule = schedule
            .into_iter()
            .zip(chunks)
            .map(|((f, c), j)| (f, c, j))
            .collect();
        self.next_switch = 0;
        Ok(self)
    }

    /// Applies the latest request of `handle` at each chunk start (after a scheduled switch
    /// due at the same chunk, which goes first).
    pub fn with_prompt_switch(mut self, handle: PromptSwitch) -> Self {
        self.live = Some(handle);
        self
    }

    /// Switches that fired so far (the prompt segment of the next chunk).
    pub fn segment(&self) -> usize {
        self.segment
    }

    /// The scheduled switch due at `chunk`, else a live request, applied before the chunk's
    /// first step (LongLive's `_recache_after_switch`): with `global_sink` off every key/value
    /// is zeroed; the new prompt replaces the old; the last `min(window, s)` clean frames are
    /// re-encoded with it at `t = context_noise` (output discarded).
    pub(super) fn switch_if_due(
        &mut self,
        chunk: usize,
        timer: &mut StageTimer,
        calls: &mut Vec<CallRecord>,
    ) -> Result<(), PipelineError> {
        let due = self
            .schedule
            .get(self.next_switch)
            .filter(|(_, _, j)| *j == chunk)
            .map(|(f, c, _)| (Some(*f), c.clone(), None));
        let (requested_frame, context, prompt) = match due {
            Some(d) => {
                self.next_switch += 1;
                d
            }
            None => match self.live.as_ref().and_then(PromptSwitch::take) {
                Some(r) => (None, r.context, r.prompt),
                None => return Ok(()),
            },
        };
        if self.cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let s = self.start_frame;
        let longlive = self.config.longlive;
        let reset_sink = longlive.is_some_and(|l| !l.global_sink);
        if reset_sink {
            self.denoiser.zero_kv()?;
        }
        self.denoiser.set_conditioning(context)?;
        self.segment += 1;
        let n = match self.config.local_attn_size {
            Some(window) => window.min(s),
            None => s,
        };
        let mut recached = None;
        if n > 0 {
            let r0 = s - n;
            let x = self.history_frames(r0, n)?;
            let t = vec![self.config.context_noise; n];
            let flow = timer.time("recache", || {
                self.denoiser.recache_flow(x.clone(), &t, r0, reset_sink)
            })??;
            self.denoiser.reset_cross_attn()?;
            if self.record {
                calls.push(CallRecord {
                    kind: CallKind::Recache,
                    start_frame: r0,
                    x,
                    t,
                    flow,
                    x0: None,
                    eps: None,
                });
            }
            recached = Some((r0, n));
        }
        self.pending_switch = Some(SwitchEvent {
            requested_frame,
            applied_at_frame: s,
            chunk,
            segment: self.segment,
            recached,
            prompt,
        });
        Ok(())
    }

    /// Whether a switch can happen (then emitted latents are kept for the re-cache).
    fn switching(&self) -> bool {
        self.live.is_some() || self.next_switch < self.schedule.len()
    }

    pub(super) fn remember(&mut self, start: usize, latents: &Tensor<5>) {
        if !self.switching() {
            self.history.clear();
            return;
        }
        self.history.push((start, latents.clone()));
        let end = start + latents.dims()[2];
        let keep = self.config.local_attn_size.map(|w| end.saturating_sub(w));
        if let Some(from) = keep {
            self.history.retain(|(s, t)| s + t.dims()[2] > from);
        }
    }

    /// The emitted latents of frames `[start, start + n)`.
    fn history_frames(&self, start: usize, n: usize) -> Result<Tensor<5>, PipelineError> {
        let mut parts = Vec::new();
        for (s, t) in &self.history {
            let f = t.dims()[2];
            let (lo, hi) = (start.max(*s), (start + n).min(s + f));
            if lo < hi {
                parts.push(t.clone().narrow(2, lo - s, hi - lo));
            }
        }
        let got: usize = parts.iter().map(|t| t.dims()[2]).sum();
        if got != n {
            return Err(PipelineError::Config(format!(
                "the re-cache needs latent frames {start}..{} but only {got} are kept",
                start + n
            )));
        }
        Ok(Tensor::cat(parts, 2))
    }
}

/// Checks the switch frames `indices` against `plan` (continued by chunks of `then` frames in
/// an endless rollout without limit) and returns the chunk each fires at ([`fire_chunks`]).
pub(crate) fn schedule_chunks(
    plan: &ChunkPlan,
    then: Option<usize>,
    indices: &[usize],
) -> Result<Vec<usize>, PipelineError> {
    let until =
        indices.iter().max().copied().unwrap_or(0) + (indices.len() + 1) * then.unwrap_or(0);
    fire_chunks(indices, &plan.generated_starts(then, until))
}

/// Checks a schedule against the chunk starts of the generated chunks and returns, for each
/// switch, the chunk it fires at. Indices must be positive, strictly increasing and each fire
/// before the end (at most one switch per chunk: an index whose chunk already switched fires at
/// the next chunk start, as LongLive).
pub(crate) fn fire_chunks(
    indices: &[usize],
    chunk_starts: &[usize],
) -> Result<Vec<usize>, PipelineError> {
    let err = |m: String| Err(PipelineError::Config(m));
    let mut fired = Vec::with_capacity(indices.len());
    let mut next_chunk = 0;
    for (k, &index) in indices.iter().enumerate() {
        if index == 0 {
            return err(
                "a prompt switch at latent frame 0 would replace the first prompt before anything \
                 is generated: start with that prompt instead (switch frames must be ≥ 1)"
                    .into(),
            );
        }
        if k > 0 && index <= indices[k - 1] {
            let why = if index == indices[k - 1] {
                "appears twice"
            } else {
                "comes after a later one"
            };
            return err(format!(
                "prompt switch frame {index} {why}: list switch frames once each, in increasing \
                 order ({indices:?})"
            ));
        }
        let chunk = chunk_starts
            .iter()
            .enumerate()
            .skip(next_chunk)
            .find(|(_, s)| **s >= index)
            .map(|(j, _)| j);
        let Some(chunk) = chunk else {
            let last = chunk_starts.last().copied().unwrap_or(0);
            return err(format!(
                "the prompt switch at latent frame {index} never fires: switches fire at the next \
                 chunk start and the last chunk starts at frame {last} (at most one switch per \
                 chunk); use a smaller frame or generate more frames"
            ));
        };
        fired.push(chunk);
        next_chunk = chunk + 1;
    }
    Ok(fired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_round_up_to_chunk_starts() {
        let starts = [0, 3, 6, 9];
        assert_eq!(fire_chunks(&[9], &starts).unwrap(), [3]);
        assert_eq!(fire_chunks(&[1, 7], &starts).unwrap(), [1, 3]);
        // Two indices in one chunk: the second waits for the next chunk start.
        assert_eq!(fire_chunks(&[4, 5], &starts).unwrap(), [2, 3]);
        let msg = |i: &[usize]| fire_chunks(i, &starts).unwrap_err().to_string();
        assert!(msg(&[0]).contains("≥ 1"));
        assert!(msg(&[10]).contains("never fires"));
        assert!(msg(&[8, 9]).contains("never fires"));
        assert!(msg(&[3, 3]).contains("appears twice"));
        assert!(msg(&[6, 3]).contains("increasing"));
    }
}
