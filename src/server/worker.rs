//! The generation thread: owns the [`Pipeline`], runs one job at a time, writes each run's MP4,
//! broadcasts every decoded frame as soon as its chunk is decoded; the prompt switches the
//! viewers send are encoded on a thread of the run while it computes chunks (`switches.rs`).

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use sf_device::{current_rss_bytes, human_bytes};
use sf_pipeline::{
    DecoderKind, ExistingFile, GenerationRequest, Mp4Options, Mp4Writer, Pipeline, PipelineError,
    VideoError, encode_png,
};

use super::protocol::{RunReport, frame_header};
use super::switches::{Switches, dropped};
use super::{Event, Shared};

/// One generation the server accepted (its request already validated, with seed and cancel
/// token).
pub(crate) struct Job {
    pub run: u64,
    pub request: GenerationRequest,
    pub decoder: DecoderKind,
    /// The prompts viewers switch to while it runs (the sender is in its `ActiveRun`).
    pub switches: Mutex<Receiver<String>>,
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
        // The sender went with `active`: whatever is left came too late.
        for prompt in super::lock(&job.switches).try_iter() {
            dropped(&shared, job.run, &prompt, "the run had ended");
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
    let request = &job.request;
    let rollout = request.rollout_config(pipeline.configs());
    let chunks = rollout
        .plan(request.latent_frames, 0)
        .map_or(0, |plan| plan.generated.len());
    let mut report = RunReport {
        run: job.run,
        prompt: request.prompt.clone(),
        seed: request.seed,
        decoder: job.decoder.to_string(),
        // Rounded: an f32 such as 0.3 reads back as 0.30000001.
        shift: (f64::from(rollout.scheduler.shift) * 1e6).round() / 1e6,
        outcome: "failed".into(),
        total_frames: (!request.endless).then(|| request.video_frames()),
        endless: request.endless,
        ..RunReport::default()
    };
    if let Err(e) = pipeline.set_decoder(job.decoder) {
        report.message = Some(e.to_string());
        return report;
    }
    let (height, width) = pipeline.resolution();
    // A restarted server numbers runs from 1 again: never replace an earlier run's file.
    let path = videos.join(format!("run-{}-seed{}.mp4", job.run, request.seed));
    let options = Mp4Options::new(fps).existing(ExistingFile::NewName);
    let mut mp4 = match std::fs::create_dir_all(videos)
        .map_err(|e| format!("cannot create {}: {e}", videos.display()))
        .and_then(|_| {
            Mp4Writer::create_with(&path, width, height, options).map_err(|e| e.to_string())
        }) {
        Ok(w) => w,
        Err(e) => {
            report.message = Some(e);
            return report;
        }
    };
    report.video = Some(video_url(mp4.path()));
    shared.send(Event::json(&serde_json::json!({
        "type": "started",
        "run": job.run,
        "prompt": request.prompt,
        "seed": request.seed,
        "decoder": job.decoder.to_string(),
        "shift": report.shift,
        "chunks": (!request.endless).then_some(chunks),
        "total_frames": report.total_frames,
        "endless": request.endless,
        "width": width,
        "height": height,
        "fps": fps,
        "video": report.video,
    })));
    let mut failure = None;
    let summary = match pipeline.stream(request) {
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
            let switches = Switches::new(job, shared, (!request.endless).then_some(chunks));
            let encoder = stream.prompt_encoder();
            let mut write_error = None;
            std::thread::scope(|scope| {
                // Stops the encoding thread however this loop ends (the scope waits for it).
                let _stop = switches.stop_on_drop();
                scope.spawn(|| switches.encode_requests(&encoder));
                let mut next = 0;
                loop {
                    switches.computing(next);
                    let chunk = match stream.next() {
                        None => break,
                        Some(Ok(c)) => c,
                        Some(Err(e)) => {
                            failure = Some(e);
                            break;
                        }
                    };
                    if let Some(record) = switches.applied(&chunk) {
                        report.switches.push(record);
                    }
                    if let Err(e) = send_chunk(&chunk, job.run, &mut mp4, shared) {
                        write_error = Some(e);
                        break;
                    }
                    let frames = chunk.first_frame + chunk.frames.len();
                    if let Some(active) = super::lock(&shared.state).active.as_mut() {
                        active.frames_done = frames;
                    }
                    shared.send(progress(&chunk, job.run, frames, report.total_frames));
                    next = chunk.index + 1;
                }
            });
            // The encoding thread has stopped: what the stream still holds never fires.
            let summary = stream.summary();
            let unapplied = match &summary.end {
                Some(_) => summary.unapplied_switch.clone().and_then(|u| u.prompt),
                None => stream.prompt_switch().pending_prompt(),
            };
            switches.unapplied(unapplied);
            if let Some(e) = write_error {
                report.message = Some(e.to_string());
                report.frames = mp4.frames_pushed();
                let _ = mp4.finish();
                return report;
            }
            Some(summary)
        }
    };
    match mp4.finish() {
        Ok(written) => {
            report.frames = written.frames;
            report.video = Some(video_url(&written.path));
        }
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

/// Writes the frames of `chunk` to the MP4 and then to every viewer (a frame that reached a
/// viewer is also on disk).
fn send_chunk(
    chunk: &sf_pipeline::FrameChunk,
    run: u64,
    mp4: &mut Mp4Writer,
    shared: &Shared,
) -> Result<(), VideoError> {
    for (i, frame) in chunk.frames.iter().enumerate() {
        mp4.push(frame)?;
        let mut bytes = frame_header(run, chunk.first_frame + i).to_vec();
        if encode_png(frame, &mut bytes).is_ok() {
            shared.send(Event::Frame(Arc::new(bytes)));
        }
    }
    Ok(())
}

/// The `progress` event of `chunk`.
fn progress(
    chunk: &sf_pipeline::FrameChunk,
    run: u64,
    frames: usize,
    total_frames: Option<usize>,
) -> Event {
    Event::json(&serde_json::json!({
        "type": "progress",
        "run": run,
        "chunk": chunk.index,
        "frames": frames,
        "total_frames": total_frames,
        "denoise_ms": (chunk.timings.get("denoise") + chunk.timings.get("refresh"))
            .as_secs_f64() * 1e3,
        "recache_ms": chunk.timings.get("recache").as_secs_f64() * 1e3,
        "decode_ms": chunk.timings.get("decode").as_secs_f64() * 1e3,
        "memory_in_use": current_rss_bytes(),
        "memory_in_use_text": current_rss_bytes().map(human_bytes),
    }))
}

/// The URL path of an MP4 in the videos folder.
fn video_url(path: &std::path::Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!("/videos/{name}")
}
