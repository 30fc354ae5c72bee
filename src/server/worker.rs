//! The generation thread: owns the [`Pipeline`], runs one job at a time, writes each run's MP4
//! and broadcasts every decoded frame as soon as its chunk is decoded.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use sf_pipeline::{
    CancelToken, DecoderKind, GenerationRequest, Mp4Writer, Pipeline, PipelineError, VideoError,
    encode_png,
};
use tokio::sync::broadcast;

use super::protocol::{RunReport, frame_header};
use super::{Event, Shared};

/// One generation the server accepted.
pub(crate) struct Job {
    pub run: u64,
    pub prompt: String,
    pub seed: u64,
    pub latent_frames: usize,
    pub decoder: DecoderKind,
    pub cancel: CancelToken,
}

/// Runs jobs until every sender is gone.
pub(crate) fn run_jobs(
    mut pipeline: Pipeline,
    jobs: Receiver<Job>,
    shared: Arc<Shared>,
    videos: PathBuf,
    fps: u32,
) {
    for job in jobs {
        let report = run_one(&mut pipeline, &job, &shared, &videos, fps);
        *shared.decoder.lock().unwrap_or_else(|e| e.into_inner()) = pipeline.decoder();
        let event = Event::json(&serde_json::json!({
            "type": report.outcome,
            "report": report,
        }));
        // Idle before the final event goes out: a viewer that reads `done` and asks for the
        // status, or starts again at once, finds the server free.
        {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.active = None;
            state.last = Some(report);
        }
        shared.send(event);
    }
}

fn run_one(
    pipeline: &mut Pipeline,
    job: &Job,
    shared: &Shared,
    videos: &std::path::Path,
    fps: u32,
) -> RunReport {
    let request = GenerationRequest::new(job.prompt.clone())
        .seed(job.seed)
        .latent_frames(job.latent_frames)
        .cancel(job.cancel.clone());
    let mut report = RunReport {
        run: job.run,
        prompt: job.prompt.clone(),
        seed: job.seed,
        decoder: job.decoder.to_string(),
        outcome: "failed".into(),
        total_frames: request.video_frames(),
        ..RunReport::default()
    };
    if let Err(e) = pipeline.set_decoder(job.decoder) {
        report.message = Some(e.to_string());
        return report;
    }
    let (height, width) = pipeline.resolution();
    let name = format!("run-{}-seed{}.mp4", job.run, job.seed);
    let path = videos.join(&name);
    let mut mp4 = match std::fs::create_dir_all(videos)
        .map_err(|e| format!("cannot create {}: {e}", videos.display()))
        .and_then(|_| Mp4Writer::create(&path, width, height, fps).map_err(|e| e.to_string()))
    {
        Ok(w) => w,
        Err(e) => {
            report.message = Some(e);
            return report;
        }
    };
    report.video = Some(format!("/videos/{name}"));
    shared.send(Event::json(&serde_json::json!({
        "type": "started",
        "run": job.run,
        "prompt": job.prompt,
        "seed": job.seed,
        "decoder": job.decoder.to_string(),
        "total_frames": report.total_frames,
        "width": width,
        "height": height,
        "fps": fps,
        "video": report.video,
    })));
    let mut failure = None;
    let summary = match pipeline.stream(&request) {
        Err(e) => {
            failure = Some(e);
            None
        }
        Ok(mut stream) => {
            if let Some(warning) = stream.summary().prompt_warning {
                shared.send(Event::json(
                    &serde_json::json!({"type": "warning", "run": job.run, "message": warning}),
                ));
            }
            for chunk in stream.by_ref() {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                for (i, frame) in chunk.frames.iter().enumerate() {
                    // The MP4 first: a frame that reached a viewer is also on disk.
                    if let Err(e) = mp4.push(frame) {
                        report.message = Some(e.to_string());
                        report.frames = mp4.frames_pushed();
                        let _ = mp4.finish();
                        return report;
                    }
                    let mut bytes = frame_header(job.run, chunk.first_frame + i).to_vec();
                    if encode_png(frame, &mut bytes).is_ok() {
                        shared.send(Event::Frame(Arc::new(bytes)));
                    }
                }
                let frames = chunk.first_frame + chunk.frames.len();
                if let Some(active) = shared
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .active
                    .as_mut()
                {
                    active.frames_done = frames;
                }
                shared.send(Event::json(&serde_json::json!({
                    "type": "progress",
                    "run": job.run,
                    "chunk": chunk.index,
                    "frames": frames,
                    "total_frames": report.total_frames,
                    "denoise_ms": (chunk.timings.get("denoise") + chunk.timings.get("refresh"))
                        .as_secs_f64() * 1e3,
                    "decode_ms": chunk.timings.get("decode").as_secs_f64() * 1e3,
                })));
            }
            Some(stream.summary())
        }
    };
    match mp4.finish() {
        Ok(written) => report.frames = written.frames,
        Err(e) => {
            if matches!(e, VideoError::NoFrames(_)) {
                report.video = None;
            }
            failure.get_or_insert(PipelineError::Video(e));
        }
    }
    if let Some(s) = summary {
        report.denoise_fps = s.denoise_fps();
        report.end_to_end_fps = s.end_to_end_fps();
        report.time_to_first_frame = s.time_to_first_frame.map(|t| t.as_secs_f64());
        report.elapsed = s.elapsed.as_secs_f64();
    }
    report.outcome = match &failure {
        None => "done",
        Some(PipelineError::Cancelled) => "stopped",
        Some(_) => "failed",
    }
    .into();
    report.message = failure.map(|e| e.to_string());
    report
}

impl Event {
    /// A JSON text event.
    pub(crate) fn json(value: &serde_json::Value) -> Event {
        Event::Text(Arc::new(value.to_string()))
    }
}

impl Shared {
    /// Sends to every connected viewer (none connected is fine).
    pub(crate) fn send(&self, event: Event) {
        let _: Result<usize, broadcast::error::SendError<Event>> = self.events.send(event);
    }
}
