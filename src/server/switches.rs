//! The prompt switches of one run: a thread that encodes the viewers' requests while the
//! generation thread computes chunks and hands each to the stream (so a prompt the prompt cache
//! does not hold delays the switch, not the frames), and the `switched` / `switch_dropped`
//! reports.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use sf_pipeline::{FrameChunk, PipelineError, PromptEncoder};

use super::protocol::SwitchRecord;
use super::worker::Job;
use super::{Event, Shared};

/// How often the encoding thread looks whether the run has ended while no request comes.
const POLL: Duration = Duration::from_millis(20);

const REPLACED: &str = "a later switch replaced it before it was applied";

/// The switches of one run (shared by the generation thread and the encoding thread).
pub(super) struct Switches<'a> {
    job: &'a Job,
    shared: &'a Shared,
    /// Chunks of the run (`None`: endless).
    chunks: Option<usize>,
    /// The chunk being computed: a request made now fires at the next one at the earliest.
    computing: AtomicUsize,
    stop: AtomicBool,
}

impl<'a> Switches<'a> {
    pub fn new(job: &'a Job, shared: &'a Shared, chunks: Option<usize>) -> Self {
        Switches {
            job,
            shared,
            chunks,
            computing: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The generation thread starts computing chunk `index`.
    pub fn computing(&self, index: usize) {
        self.computing.store(index, Ordering::SeqCst);
    }

    /// Encodes each request as it comes (the latest of those waiting; earlier ones are
    /// replaced, as the stream's own switch does) and hands it to the stream, until
    /// [`stop_on_drop`](Self::stop_on_drop)'s guard goes.
    pub fn encode_requests(&self, encoder: &PromptEncoder) {
        let requests = super::lock(&self.job.switches);
        while !self.stop.load(Ordering::SeqCst) {
            let first = match requests.recv_timeout(POLL) {
                Ok(prompt) => prompt,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let latest = std::iter::once(first)
                .chain(requests.try_iter())
                .reduce(|earlier, later| {
                    self.drop_one(&earlier, REPLACED);
                    later
                })
                .unwrap_or_default();
            let next = self.computing.load(Ordering::SeqCst) + 1;
            if self.chunks.is_some_and(|chunks| next >= chunks) {
                self.drop_one(
                    &latest,
                    "the last chunk is already being made: start a new run with this prompt",
                );
                continue;
            }
            match encoder.switch_to(&latest) {
                Ok(None) => {}
                Ok(Some(replaced)) => {
                    self.drop_one(&replaced.prompt.unwrap_or_default(), REPLACED);
                }
                Err(PipelineError::StreamEnded) => self.drop_one(&latest, "the run had ended"),
                Err(e) => self.drop_one(
                    &latest,
                    &format!("it cannot be encoded: {}", super::session::plain(&e)),
                ),
            }
        }
    }

    /// Ends [`encode_requests`](Self::encode_requests) (after the encode in progress, if any)
    /// when the result is dropped.
    pub fn stop_on_drop(&self) -> StopOnDrop<'_, 'a> {
        StopOnDrop(self)
    }

    /// The record of the switch `chunk` follows, broadcast as `switched` and kept in the run.
    pub fn applied(&self, chunk: &FrameChunk) -> Option<SwitchRecord> {
        let event = chunk.switch.as_ref()?;
        let record = SwitchRecord {
            prompt: event.prompt.clone().unwrap_or_default(),
            frame: chunk.first_frame,
            latent_frame: event.applied_at_frame,
            chunk: event.chunk,
            segment: event.segment,
        };
        // The status first: a viewer that reads it after the message finds the switch there.
        if let Some(active) = super::lock(&self.shared.state).active.as_mut() {
            active.applied.push(record.clone());
        }
        let mut message = serde_json::to_value(&record).unwrap_or_default();
        message["type"] = "switched".into();
        message["run"] = self.job.run.into();
        self.shared.send(Event::json(&message));
        Some(record)
    }

    /// The run has ended with `prompt` handed to the stream and never applied.
    pub fn unapplied(&self, prompt: Option<String>) {
        if let Some(prompt) = prompt {
            self.drop_one(&prompt, "the run ended before another chunk started");
        }
    }

    fn drop_one(&self, prompt: &str, why: &str) {
        dropped(self.shared, self.job.run, prompt, why);
    }
}

/// Stops the encoding thread of [`Switches`] when dropped.
pub(super) struct StopOnDrop<'s, 'a>(&'s Switches<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// Tells every viewer that the switch to `prompt` will not be applied, and why.
pub(super) fn dropped(shared: &Shared, run: u64, prompt: &str, why: &str) {
    shared.send(Event::json(&serde_json::json!({
        "type": "switch_dropped",
        "run": run,
        "prompt": prompt,
        "message": format!("the switch was not applied: {why}"),
    })));
}
