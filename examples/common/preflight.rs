//! Everything checked before a model is loaded: the prompts, each request against the model
//! configurations (the same check the rollout makes), the video size, the output paths, the
//! device, the precision and the memory plan. A failure here names the flag to change and has
//! loaded, read or written nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sf_pipeline::PlanMode;
use sf_pipeline::sf_device::{DeviceError, human_bytes};
use sf_pipeline::video::{ExistingFile, numbered};
use sf_pipeline::{
    CancelToken, GenerationRequest, ModelConfigs, Mp4Options, Mp4Writer, PipelineBuilder,
    PipelineError, PngWriter, PreparedPipeline, VideoError, check_target, random_seed,
};

use super::args::{GenerateArgs, ModelArgs, StreamArgs, file_stem_of};
use super::{CliError, console, schedule};

/// One video of a `generate` run, checked.
#[derive(Debug)]
pub struct Job {
    /// What to generate (carries the run's cancel token).
    pub request: GenerationRequest,
    /// The MP4 path (already checked).
    pub output: PathBuf,
    /// What the writer does if a file appears at `output` meanwhile.
    pub existing: ExistingFile,
    /// The PNG folder, with `--png-dir`.
    pub png_dir: Option<PathBuf>,
}

/// A `generate` run that passed every check: the prepared pipeline and the videos to make.
pub struct GeneratePlan {
    /// Device, precision and memory plan settled; no weights read yet.
    pub prepared: PreparedPipeline,
    /// The videos, in order.
    pub jobs: Vec<Job>,
    /// What the PNG writers do with a folder that holds frames.
    pub png_existing: ExistingFile,
}

fn usage(flag: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("{flag}: {e}"))
}

/// The text of a pipeline error without the `invalid configuration:` prefix.
fn reason(e: &PipelineError) -> String {
    match e {
        PipelineError::Config(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The lines of a prompts file, trimmed, without empty lines.
fn read_lines(flag: &str, path: &Path) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(flag, format!("cannot read {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// The prompts of `generate`, each with its extended version if a file gave one.
pub fn read_prompts(args: &GenerateArgs) -> Result<Vec<(String, Option<String>)>, CliError> {
    let prompts = match (&args.prompt, &args.prompts) {
        (None, None) if args.prompt_schedule.is_some() => Vec::new(),
        (Some(prompt), _) => {
            if prompt.trim().is_empty() {
                return Err(usage(
                    "--prompt",
                    "the prompt is empty: describe the video to generate",
                ));
            }
            vec![prompt.trim().to_string()]
        }
        (None, Some(file)) => {
            let lines = read_lines("--prompts", file)?;
            if lines.is_empty() {
                return Err(usage(
                    "--prompts",
                    format!(
                        "{} holds no prompt (it is empty or has only empty lines): write one \
                         prompt per line",
                        file.display()
                    ),
                ));
            }
            lines
        }
        (None, None) => {
            return Err(CliError::Usage(
                "no prompt: give --prompt TEXT or --prompts FILE".into(),
            ));
        }
    };
    let extended = match &args.extended_prompts {
        Some(file) => {
            let lines = read_lines("--extended-prompts", file)?;
            if lines.len() != prompts.len() {
                return Err(usage(
                    "--extended-prompts",
                    format!(
                        "{} has {} non-empty lines but there are {} prompts (one extended \
                         prompt per prompt, in the same order)",
                        file.display(),
                        lines.len(),
                        prompts.len()
                    ),
                ));
            }
            lines.into_iter().map(Some).collect()
        }
        None => vec![None; prompts.len()],
    };
    Ok(prompts.into_iter().zip(extended).collect())
}

/// Checks `request` against `configs` and names the flag that makes it fail.
pub fn check_request(request: &GenerationRequest, configs: &ModelConfigs) -> Result<(), CliError> {
    if request.conditioning_text().trim().is_empty() {
        return Err(usage(
            "--prompt",
            "the prompt is empty: describe the video to generate",
        ));
    }
    let mut frames_only = request.clone();
    frames_only.shift = None;
    frames_only.prompt_schedule.clear();
    let flag = if request.endless {
        "--endless".to_string()
    } else {
        format!("--frames {}", request.latent_frames)
    };
    frames_only
        .validate(configs)
        .map_err(|e| usage(&flag, reason(&e)))?;
    if let Some(shift) = request.shift {
        let mut shifted = request.clone();
        shifted.prompt_schedule.clear();
        shifted
            .validate(configs)
            .map_err(|e| usage(&format!("--shift {shift}"), reason(&e)))?;
    }
    Ok(())
}

/// The video size: positive multiples of 16 (the VAE's stride 8 times the DiT's patch 2).
pub fn check_size(args: &ModelArgs) -> Result<(), CliError> {
    let ok = |v: usize| v > 0 && v.is_multiple_of(16);
    if !ok(args.height) || !ok(args.width) {
        return Err(CliError::Usage(format!(
            "--height {} --width {}: the video size must be positive multiples of 16 pixels \
             (e.g. --height 480 --width 832)",
            args.height, args.width
        )));
    }
    Ok(())
}

/// Settles the device, the precision and the memory plan (no file is read).
pub fn prepare(builder: PipelineBuilder) -> Result<PreparedPipeline, CliError> {
    builder.prepare().map_err(|e| {
        let flag = match &e {
            PipelineError::Device(
                DeviceError::Unknown { .. }
                | DeviceError::NotCompiled { .. }
                | DeviceError::NotPresent { .. },
            ) => "--device",
            PipelineError::Device(
                DeviceError::UnsupportedDType { .. } | DeviceError::InvalidPrecision { .. },
            ) => "--precision",
            PipelineError::DoesNotFit { .. } => "memory plan",
            PipelineError::Config(_) => "--model-config",
            _ => "setup",
        };
        usage(flag, reason(&e))
    })
}

/// The MP4 paths and PNG folders of `requests`, checked: an existing file is refused (an
/// explicit `--output`) or avoided (the default names) unless `--overwrite`; a directory,
/// device, FIFO or symbolic link is always refused; no two videos of the run share a path.
fn plan_outputs(
    args: &GenerateArgs,
    requests: Vec<GenerationRequest>,
    png_existing: ExistingFile,
) -> Result<Vec<Job>, CliError> {
    let count = requests.len();
    let mut taken = HashSet::new();
    let mut jobs = Vec::with_capacity(count);
    for (i, request) in requests.into_iter().enumerate() {
        let (wanted, existing, flag) = match &args.output {
            Some(path) => {
                let path = if count == 1 {
                    path.clone()
                } else {
                    let stem = path
                        .file_stem()
                        .map_or("video".into(), |s| s.to_string_lossy());
                    path.with_file_name(format!("{stem}-{i:03}.mp4"))
                };
                let existing = if args.overwrite {
                    ExistingFile::Overwrite
                } else {
                    ExistingFile::Refuse
                };
                (path, existing, "--output")
            }
            None => {
                let name = format!("{}-{}.mp4", file_stem_of(&request.prompt), request.seed);
                let existing = if args.overwrite {
                    ExistingFile::Overwrite
                } else {
                    ExistingFile::NewName
                };
                (args.videos.join(name), existing, "--videos")
            }
        };
        let mut output = check_target(&wanted, existing).map_err(|e| usage(flag, e))?;
        let mut n = 0;
        while taken.contains(&output) {
            n += 1;
            output = check_target(&numbered(&wanted, n), ExistingFile::NewName)
                .map_err(|e| usage(flag, e))?;
        }
        if output != wanted {
            console::warn(format!(
                "{} is taken: this video goes to {} (--output chooses the name, --overwrite \
                 replaces)",
                wanted.display(),
                output.display()
            ));
        }
        taken.insert(output.clone());
        let png_dir = match &args.png_dir {
            Some(dir) if count == 1 => Some(dir.clone()),
            Some(dir) => Some(dir.join(output.file_stem().unwrap_or("video".as_ref()))),
            None => None,
        };
        if let Some(dir) = &png_dir {
            PngWriter::check(dir, png_existing).map_err(|e| usage("--png-dir", e))?;
        }
        jobs.push(Job {
            request,
            output,
            existing,
            png_dir,
        });
    }
    Ok(jobs)
}

/// Every check of `generate`, in the order a user would fix them; returns what to load and make.
pub fn plan_generate(args: &GenerateArgs, cancel: &CancelToken) -> Result<GeneratePlan, CliError> {
    let mut prompts = read_prompts(args)?;
    let schedule = match &args.prompt_schedule {
        Some(path) => {
            let schedule = schedule::read(path)?;
            let flag = format!("--prompt-schedule {}", path.display());
            match (&schedule.first, prompts.first_mut()) {
                (Some(_), Some(_)) => {
                    return Err(usage(
                        &flag,
                        "its frame-0 line gives the first prompt, and so does --prompt: keep \
                         one of them",
                    ));
                }
                (Some(first), None) => prompts.push((first.clone(), None)),
                (None, Some(_)) => {}
                (None, None) => {
                    return Err(usage(
                        &flag,
                        "no first prompt: give --prompt TEXT or start the file with a line \
                         0<TAB>PROMPT",
                    ));
                }
            }
            Some((path.clone(), schedule))
        }
        None => None,
    };
    let builder = args.pipeline_builder()?;
    let mut requests = Vec::with_capacity(prompts.len());
    for (prompt, extended) in prompts {
        let seed = match args.seed {
            Some(s) if s >= 0 => s as u64,
            _ => random_seed(),
        };
        let mut request = GenerationRequest::new(prompt)
            .seed(seed)
            .latent_frames(args.frames)
            .cancel(cancel.clone());
        if let Some(extended) = extended {
            request = request.extended_prompt(extended);
        }
        if let Some(shift) = args.shift {
            request = request.shift(shift);
        }
        request = request.endless(args.endless);
        check_request(&request, builder.model_configs())?;
        if let Some((path, schedule)) = &schedule {
            schedule::check(path, schedule, &request, builder.model_configs())?;
            request.prompt_schedule = schedule.pairs();
        }
        requests.push(request);
    }
    check_size(args)?;
    let png_existing = if args.overwrite {
        ExistingFile::Overwrite
    } else {
        ExistingFile::Refuse
    };
    let jobs = plan_outputs(args, requests, png_existing)?;
    // The encoder's limits (size, fps); the writer creates nothing before its first frame.
    let first = &jobs[0];
    let options = Mp4Options::new(args.fps).existing(first.existing);
    Mp4Writer::create_with(&first.output, args.width, args.height, options).map_err(
        |e| match e {
            VideoError::Options(_) | VideoError::OddSize { .. } => {
                usage("--height/--width/--fps", e)
            }
            other => usage("--output", other),
        },
    )?;
    let prepared = prepare(builder)?;
    Ok(GeneratePlan {
        prepared,
        jobs,
        png_existing,
    })
}

/// Every check of `stream`: its `--prompt`, the page's default request (`--frames`, with
/// `--kv-window` and `--model-config`), the size, `--videos`, then the device and plan.
pub fn prepare_stream(args: &StreamArgs) -> Result<PreparedPipeline, CliError> {
    if args.prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
        return Err(usage(
            "--prompt",
            "the prompt is empty: give an example prompt or leave the flag out",
        ));
    }
    let builder = args.pipeline_builder()?;
    let prompt = args.prompt.clone().unwrap_or_else(|| "an example".into());
    let request = GenerationRequest::new(prompt).latent_frames(args.frames);
    check_request(&request, builder.model_configs()).map_err(|e| {
        CliError::Usage(format!(
            "{e} (this is the page's default request: the server would refuse every run)"
        ))
    })?;
    check_size(args)?;
    match std::fs::metadata(&args.videos) {
        Ok(meta) if !meta.is_dir() => {
            return Err(usage(
                "--videos",
                format!("{} is not a directory", args.videos.display()),
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(usage(
                "--videos",
                format!("cannot use {}: {e}", args.videos.display()),
            ));
        }
        _ => {}
    }
    prepare(builder)
}

/// Prints the device, the precision, the memory plan, the decoder and the features turned off.
pub fn print_setup(prepared: &PreparedPipeline, args: &ModelArgs) {
    let rollout = &prepared.configs().rollout;
    let cache = match rollout.local_attn_size {
        Some(window) => format!(
            "KV window {window} latent frames, sink {}",
            rollout.sink_size
        ),
        None => format!(
            "global KV cache of {} latent frames",
            rollout.global_cache_frames
        ),
    };
    console::field("model", format!("{} ({cache})", prepared.family()));
    console::field("device", &prepared.selected().info);
    console::field("precision", prepared.precision());
    let plan = prepared.plan();
    let peak = match plan.mode {
        PlanMode::AllResident => plan.estimate.all_resident_peak,
        PlanMode::LowMemory => plan.estimate.low_memory_peak,
    };
    let budget = if plan.budget == u64::MAX {
        "an unknown amount".to_string()
    } else {
        human_bytes(plan.budget)
    };
    console::field(
        "plan",
        format!(
            "{:?}, peak about {} of {budget} available",
            plan.mode,
            human_bytes(peak)
        ),
    );
    console::field(
        "decoder",
        format!("{}, video {}x{}", args.decoder, args.width, args.height),
    );
    for off in prepared.disabled_features() {
        console::field("off", format!("{} ({})", off.feature, off.reason));
    }
}
