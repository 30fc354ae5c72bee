//! Text to video: the README's main command.
//!
//! ```text
//! cargo run --release --features wgpu --example generate -- \
//!     --prompt "a red fox running through fresh snow, cinematic" --output fox.mp4
//! ```
//!
//! Options (`--help` lists them; all optional except a prompt):
//! - `--prompt TEXT` or `--prompts FILE` (one prompt per line; one video each), and
//!   `--extended-prompts FILE` (LLM-extended versions, line by line, used for conditioning);
//! - `--prompt-schedule FILE` (later prompts of one video: `LATENT_FRAME<TAB>PROMPT` lines,
//!   `#` comments; a first `0<TAB>PROMPT` line may replace `--prompt`; `docs/switching.md`),
//!   `--endless` (until Ctrl-C, through a rolling window: `--kv-window` or `--model longlive`;
//!   it ends by itself at the RoPE table's 1024 latent frames);
//! - `--seed N` (default: a random seed, printed; `-1` = random), `--frames N` latent frames
//!   (21 = 81 video frames; more needs `--kv-window`), `--shift X`, `--height H --width W`
//!   (default 480x832);
//! - `--decoder wan-vae|taehv`, `--device auto|cpu|metal|cuda[:N]|vulkan|wgpu`,
//!   `--precision SPEC` (e.g. `f16`, `dit=bf16`), `--kv-window N[,SINK]`, `--low-memory`;
//! - `--model self-forcing|longlive` (LongLive: its base DiT with its LoRA merged at load, a
//!   12-frame KV window with a 3-frame sink; `--kv-window` overrides them), `--lora-alpha X`
//!   (LongLive's LoRA scale alpha / rank; default: the rank);
//! - `--models DIR` (upstream layout: `wan_models/Wan2.1-T2V-1.3B/…`, `checkpoints/…`; default:
//!   the current directory if it has `wan_models/`, else the Hugging Face hub with the local
//!   layout checked first), `--hub-endpoint URL`, `--model-config FILE` (JSON
//!   `ModelConfigs`, for other model sizes), `--prompt-cache DIR`;
//! - `--output FILE.mp4` (default `<videos>/<prompt>-<seed>.mp4`, `--videos DIR` default
//!   `videos`), `--png-dir DIR`, `--fps N`, `--overwrite`.
//!
//! Everything that needs no weights is checked before any model is loaded, and an existing
//! file is never replaced without `--overwrite` (`docs/pipeline.md`). Frames reach the MP4 as
//! each chunk is decoded. Ctrl-C (SIGINT, SIGTERM, SIGHUP) while loading exits at once; while
//! generating it stops after the current model call and finishes the MP4 with the frames made;
//! a second one exits at once (the fragmented file written so far plays). Exit code 130.

use std::path::Path;
use std::process::ExitCode;

use sf_pipeline::sf_device::human_bytes;
use sf_pipeline::video::ExistingFile;
use sf_pipeline::{
    Mp4Options, Mp4Writer, Pipeline, PipelineError, PngWriter, StreamEnd, StreamSummary, VideoError,
};

#[path = "common/mod.rs"]
mod common;

use common::args::GenerateArgs;
use common::preflight::{self, Job};
use common::signals::Interrupts;
use common::{CliError, console};

fn main() -> ExitCode {
    common::main_with(|args: GenerateArgs| run(args).map_err(Into::into))
}

fn run(args: GenerateArgs) -> Result<(), CliError> {
    let interrupts = Interrupts::install()?;
    let plan = preflight::plan_generate(&args, interrupts.token())?;
    preflight::print_setup(&plan.prepared, &args);
    console::say("loading models…");
    let mut pipeline = plan
        .prepared
        .load()
        .map_err(|e| CliError::Failed(e.to_string()))?;
    interrupts.generating();

    let count = plan.jobs.len();
    for (i, job) in plan.jobs.iter().enumerate() {
        if interrupts.interrupted() {
            return Err(stopped_batch(i, count));
        }
        console::say("");
        console::say(format!(
            "[{}/{count}] seed {}: {}",
            i + 1,
            job.request.seed,
            job.request.prompt
        ));
        match generate_one(&mut pipeline, job, args.fps, plan.png_existing)? {
            Outcome::Done => {}
            Outcome::Interrupted(message) => {
                let rest = if i + 1 < count {
                    format!("; the batch stopped ({} videos not made)", count - i - 1)
                } else {
                    String::new()
                };
                return Err(CliError::Interrupted(format!("{message}{rest}")));
            }
        }
    }
    Ok(())
}

fn stopped_batch(done: usize, count: usize) -> CliError {
    CliError::Interrupted(format!(
        "interrupted: the batch stopped after {done} of {count} videos"
    ))
}

/// How one video ended when it did not fail.
enum Outcome {
    Done,
    /// Cancelled by a signal: what was kept.
    Interrupted(String),
}

fn generate_one(
    pipeline: &mut Pipeline,
    job: &Job,
    fps: u32,
    png_existing: ExistingFile,
) -> Result<Outcome, CliError> {
    let failed = |e: &dyn std::fmt::Display| CliError::Failed(e.to_string());
    // The folder is made now (not before loading) and removed again if no frame comes.
    let parent = job.output.parent().filter(|p| !p.as_os_str().is_empty());
    let made_parent = parent.filter(|p| !p.exists());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)
            .map_err(|e| failed(&format!("cannot create {}: {e}", parent.display())))?;
    }
    let (h, w) = pipeline.resolution();
    let options = Mp4Options::new(fps).existing(job.existing);
    let mut mp4 = Mp4Writer::create_with(&job.output, w, h, options).map_err(|e| failed(&e))?;
    // Like the MP4, the PNG folder is made with the first frame.
    let mut png: Option<PngWriter> = None;
    let total = (!job.request.endless).then(|| job.request.video_frames());
    let mut progress = console::Progress::new(total);
    let mut stream = pipeline.stream(&job.request).map_err(|e| failed(&e))?;
    if let Some(warning) = stream.summary().prompt_warning {
        progress.warn(warning);
    }
    let mut failure: Option<String> = None;
    let mut cancelled = false;
    for chunk in stream.by_ref() {
        let chunk = match chunk {
            Ok(c) => c,
            Err(PipelineError::Cancelled) => {
                cancelled = true;
                break;
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        let written = chunk.frames.iter().try_for_each(|frame| {
            mp4.push(frame)?;
            if let Some(dir) = &job.png_dir {
                if png.is_none() {
                    png = Some(PngWriter::create_with(dir, png_existing)?);
                }
                if let Some(png) = png.as_mut() {
                    png.push(frame)?;
                }
            }
            Ok::<(), VideoError>(())
        });
        if let Err(e) = written {
            failure = Some(e.to_string());
            break;
        }
        progress.chunk(
            chunk.index,
            chunk.frames.len(),
            chunk.timings.get("denoise") + chunk.timings.get("refresh"),
            chunk.timings.get("decode"),
        );
    }
    let summary = stream.summary();
    progress.finish();
    let (path, frames) = match mp4.finish() {
        Ok(written) => {
            print_summary(&summary, written.frames, &written.path);
            (written.path, written.frames)
        }
        Err(VideoError::NoFrames(_)) => {
            if let Some(dir) = made_parent {
                // Only if empty: it holds nothing of the user's.
                let _ = std::fs::remove_dir(dir);
            }
            (job.output.clone(), 0)
        }
        Err(e) => {
            let before = failure.map_or(String::new(), |f| format!("{f}; "));
            return Err(CliError::Failed(format!("{before}{e}")));
        }
    };
    let kept = if frames == 0 {
        "no frame was made: nothing was written".to_string()
    } else {
        format!("the {frames} frames made are in {}", path.display())
    };
    if let Some(e) = failure {
        if frames > 0 {
            console::warn(format!("frames kept after the failure: {kept}"));
        }
        return Err(CliError::Failed(format!("{e}; {kept}")));
    }
    if cancelled {
        return Ok(Outcome::Interrupted(format!("interrupted: {kept}")));
    }
    Ok(Outcome::Done)
}

fn print_summary(s: &StreamSummary, frames_written: usize, output: &Path) {
    // One line, never wrapped: scripts read it.
    console::say_line(format!(
        "saved:     {} ({frames_written} frames)",
        output.display()
    ));
    if s.prompts.len() > 1 {
        for (i, start) in s.prompts.iter().enumerate() {
            let asked = start
                .requested_frame
                .filter(|&f| f != start.latent_frame)
                .map_or(String::new(), |f| format!(", scheduled at {f}"));
            console::field(
                &format!("prompt {}", i + 1),
                format!(
                    "from latent frame {} (video frame {}{asked}): {}",
                    start.latent_frame,
                    start.video_frame,
                    start.prompt.as_deref().unwrap_or("(encoded prompt)")
                ),
            );
        }
    }
    if let Some(end @ StreamEnd::RopeLimit { .. }) = &s.end {
        console::field("ended", end);
    }
    console::field(
        "timing",
        format!(
            "denoise {:.1} fps ({:.2?}), end to end {:.1} fps ({:.2?}), first frame after {}",
            s.denoise_fps(),
            s.denoise,
            s.end_to_end_fps(),
            s.elapsed,
            s.time_to_first_frame
                .map_or("-".to_string(), |t| format!("{t:.2?}"))
        ),
    );
    console::field(
        "text",
        format!(
            "{}; decode {:.2?}; peak memory {}",
            if s.prompt_cache_hit {
                "prompt cache hit".to_string()
            } else {
                format!("encoded in {:.2?}", s.text_encode)
            },
            s.decode,
            s.peak_rss.map_or("?".into(), human_bytes)
        ),
    );
}
