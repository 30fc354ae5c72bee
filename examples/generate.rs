//! Text to video: the README's main command.
//!
//! ```text
//! cargo run --release --features wgpu --example generate -- \
//!     --prompt "a red fox running through fresh snow, cinematic" --output fox.mp4
//! ```
//!
//! Options (all optional except a prompt):
//! - `--prompt TEXT` or `--prompts FILE` (one prompt per line; one video each), and
//!   `--extended-prompts FILE` (LLM-extended versions, line by line, used for conditioning);
//! - `--seed N` (`-1` = random; default 0), `--frames N` latent frames (21 = 81 video frames;
//!   more needs `--kv-window`), `--shift X`, `--height H --width W` (default 480x832);
//! - `--decoder wan-vae|taehv`, `--device auto|cpu|metal|cuda[:N]|vulkan|wgpu`,
//!   `--precision SPEC` (e.g. `f16`, `dit=bf16`), `--kv-window N[,SINK]`, `--low-memory`;
//! - `--models DIR` (upstream layout: `wan_models/Wan2.1-T2V-1.3B/…`, `checkpoints/…`; default:
//!   the current directory if it has `wan_models/`, else the Hugging Face hub with the local
//!   layout checked first), `--hub-endpoint URL`, `--model-config FILE` (JSON
//!   `ModelConfigs`, for other model sizes), `--prompt-cache DIR`;
//! - `--output FILE.mp4` (default `videos/<prompt>-<seed>.mp4`), `--png-dir DIR`, `--fps N`.
//!
//! Frames reach the MP4 as each chunk is decoded; a cancelled (Ctrl-C kills the process: the
//! fragmented file written so far still plays) or failed run keeps what was made.

use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use sf_device::human_bytes;
use sf_pipeline::{GenerationRequest, Mp4Writer, Pipeline, PngWriter, StreamSummary, random_seed};

#[path = "common/args.rs"]
mod args;

use args::Args;

fn main() -> ExitCode {
    args::main_with(run)
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let prompts = args.prompts()?;
    let builder = args.pipeline_builder()?;
    println!("loading models…");
    let mut pipeline = builder.build()?;
    args::print_setup(&pipeline);

    for (i, (prompt, extended)) in prompts.iter().enumerate() {
        let seed = match args.seed {
            Some(s) if s >= 0 => s as u64,
            _ => random_seed(),
        };
        let mut request = GenerationRequest::new(prompt.clone())
            .seed(seed)
            .latent_frames(args.frames);
        if let Some(extended) = extended {
            request = request.extended_prompt(extended.clone());
        }
        if let Some(shift) = args.shift {
            request = request.shift(shift);
        }
        let output = args.output_for(i, prompts.len(), prompt, seed);
        println!("\n[{}/{}] seed {seed}: {prompt}", i + 1, prompts.len());
        generate_one(
            &mut pipeline,
            &request,
            &output,
            args.png_dir.as_deref(),
            args.fps,
        )?;
    }
    Ok(())
}

fn generate_one(
    pipeline: &mut Pipeline,
    request: &GenerationRequest,
    output: &Path,
    png_dir: Option<&Path>,
    fps: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let (h, w) = pipeline.resolution();
    let mut mp4 = Mp4Writer::create(output, w, h, fps)?;
    let mut png = png_dir.map(PngWriter::create).transpose()?;
    let total = request.video_frames() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} frames {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut stream = pipeline.stream(request)?;
    if let Some(w) = stream.summary().prompt_warning {
        bar.println(format!("warning: {w}"));
    }
    let mut failure = None;
    for chunk in stream.by_ref() {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        };
        for frame in &chunk.frames {
            mp4.push(frame)?;
            if let Some(png) = png.as_mut() {
                png.push(frame)?;
            }
        }
        bar.inc(chunk.frames.len() as u64);
        bar.set_message(format!(
            "chunk {}: denoise {:.2?}, decode {:.2?}",
            chunk.index,
            chunk.timings.get("denoise") + chunk.timings.get("refresh"),
            chunk.timings.get("decode")
        ));
    }
    let summary = stream.summary();
    bar.finish();
    let written = mp4.finish()?;
    print_summary(&summary, written.frames, output);
    match failure {
        None => Ok(()),
        Some(e) => Err(format!(
            "{e}\nthe {} frames made before the failure are in {}",
            written.frames,
            output.display()
        )
        .into()),
    }
}

fn print_summary(s: &StreamSummary, frames_written: usize, output: &Path) {
    println!("saved:     {} ({frames_written} frames)", output.display());
    println!(
        "timing:    denoise {:.1} fps ({:.2?}), end to end {:.1} fps ({:.2?}), first frame after {}",
        s.denoise_fps(),
        s.denoise,
        s.end_to_end_fps(),
        s.elapsed,
        s.time_to_first_frame
            .map_or("-".to_string(), |t| format!("{t:.2?}"))
    );
    println!(
        "text:      {}; decode {:.2?}; peak memory {}",
        if s.prompt_cache_hit {
            "prompt cache hit".to_string()
        } else {
            format!("encoded in {:.2?}", s.text_encode)
        },
        s.decode,
        s.peak_rss.map_or("?".into(), human_bytes)
    );
}
