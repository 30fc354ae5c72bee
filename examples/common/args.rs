//! Command-line options shared by the `generate` and `stream` examples.
// Each example uses a part of these options.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sf_device::human_bytes;
use sf_pipeline::{DecoderKind, ModelConfigs, ModelLocation, Pipeline, PipelineBuilder};

pub const USAGE: &str = "usage: generate --prompt TEXT | --prompts FILE [--extended-prompts FILE]
       stream [--prompt TEXT (the first example)] [--port N] [--videos DIR]
  [--seed N (-1 random)] [--frames N (latent, 21 = 81 frames)] [--shift X]
  [--decoder wan-vae|taehv] [--device auto|cpu|metal|cuda[:N]|vulkan|wgpu] [--precision SPEC]
  [--kv-window N[,SINK]] [--low-memory] [--height H] [--width W] [--fps N]
  [--models DIR] [--hub-endpoint URL] [--model-config FILE.json] [--prompt-cache DIR]
  [--output FILE.mp4] [--png-dir DIR] [--port N (stream only)] [--videos DIR (stream only)]";

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Args {
    pub help: bool,
    pub prompt: Option<String>,
    pub prompts_file: Option<PathBuf>,
    pub extended_file: Option<PathBuf>,
    pub seed: Option<i64>,
    pub frames: usize,
    pub shift: Option<f32>,
    pub decoder: DecoderKind,
    pub device: Option<String>,
    pub precision: Option<String>,
    pub kv_window: Option<(usize, usize)>,
    pub low_memory: bool,
    pub height: usize,
    pub width: usize,
    pub fps: u32,
    pub models: Option<PathBuf>,
    pub hub_endpoint: Option<String>,
    pub model_config: Option<PathBuf>,
    pub prompt_cache: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub png_dir: Option<PathBuf>,
    pub port: u16,
    pub videos: PathBuf,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            help: false,
            prompt: None,
            prompts_file: None,
            extended_file: None,
            seed: None,
            frames: 21,
            shift: None,
            decoder: DecoderKind::WanVae,
            device: None,
            precision: None,
            kv_window: None,
            low_memory: false,
            height: 480,
            width: 832,
            fps: 16,
            models: None,
            hub_endpoint: None,
            model_config: None,
            prompt_cache: None,
            output: None,
            png_dir: None,
            port: 7860,
            videos: PathBuf::from("videos"),
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| format!("{flag} expects a number, got '{v}': {e}"))
}

impl Args {
    /// Parses `--flag value` and `--flag=value` pairs.
    pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = argv.into_iter();
        while let Some(raw) = it.next() {
            let (flag, inline) = match raw.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (raw.clone(), None),
            };
            if matches!(flag.as_str(), "-h" | "--help") {
                a.help = true;
                continue;
            }
            if flag == "--low-memory" {
                a.low_memory = true;
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => it.next().ok_or(format!("{flag} needs a value"))?,
            };
            let v = value.as_str();
            match flag.as_str() {
                "--prompt" => a.prompt = Some(value),
                "--prompts" => a.prompts_file = Some(value.into()),
                "--extended-prompts" => a.extended_file = Some(value.into()),
                "--seed" => a.seed = Some(number(&flag, v)?),
                "--frames" => a.frames = number(&flag, v)?,
                "--shift" => a.shift = Some(number(&flag, v)?),
                "--decoder" => a.decoder = v.parse().map_err(|e| format!("{e}"))?,
                "--device" => a.device = Some(value),
                "--precision" => a.precision = Some(value),
                "--kv-window" => {
                    let (w, s) = v.split_once(',').unwrap_or((v, "0"));
                    a.kv_window = Some((number(&flag, w)?, number(&flag, s)?));
                }
                "--height" => a.height = number(&flag, v)?,
                "--width" => a.width = number(&flag, v)?,
                "--fps" => a.fps = number(&flag, v)?,
                "--models" => a.models = Some(value.into()),
                "--hub-endpoint" => a.hub_endpoint = Some(value),
                "--model-config" => a.model_config = Some(value.into()),
                "--prompt-cache" => a.prompt_cache = Some(value.into()),
                "--output" => a.output = Some(value.into()),
                "--png-dir" => a.png_dir = Some(value.into()),
                "--port" => a.port = number(&flag, v)?,
                "--videos" => a.videos = value.into(),
                _ => return Err(format!("unknown option '{flag}'")),
            }
        }
        if a.frames == 0 {
            return Err("--frames must be at least 1".into());
        }
        if a.fps == 0 {
            return Err("--fps must be at least 1".into());
        }
        Ok(a)
    }

    /// The prompts to generate, each with its extended version if a file gave one.
    pub fn prompts(&self) -> Result<Vec<(String, Option<String>)>, String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .map(|text| {
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
        };
        let prompts = match (&self.prompt, &self.prompts_file) {
            (Some(p), None) => vec![p.clone()],
            (None, Some(file)) => read(file)?,
            (Some(_), Some(_)) => return Err("give --prompt or --prompts, not both".into()),
            (None, None) => return Err("no prompt: give --prompt TEXT or --prompts FILE".into()),
        };
        if prompts.is_empty() {
            return Err("the prompts file has no prompts".into());
        }
        let extended = match &self.extended_file {
            Some(file) => {
                let lines = read(file)?;
                if lines.len() != prompts.len() {
                    return Err(format!(
                        "{} has {} lines but there are {} prompts",
                        file.display(),
                        lines.len(),
                        prompts.len()
                    ));
                }
                lines.into_iter().map(Some).collect()
            }
            None => vec![None; prompts.len()],
        };
        Ok(prompts.into_iter().zip(extended).collect())
    }

    /// Where the weights are: `--models DIR` alone is a local directory; otherwise the hub,
    /// checking the local layout (`--models` or the current directory) first. A current
    /// directory with `wan_models/` is used directly.
    pub fn location(&self) -> ModelLocation {
        match (&self.models, &self.hub_endpoint) {
            (Some(dir), None) => ModelLocation::Local(dir.clone()),
            (None, None) if Path::new("wan_models").is_dir() => ModelLocation::Local(".".into()),
            (local, endpoint) => ModelLocation::Hub {
                endpoint: endpoint.clone(),
                cache_dir: None,
                local_dir: local.clone().or_else(|| Some(".".into())),
                progress: true,
            },
        }
    }

    /// The MP4 path of prompt `index` of `count`.
    pub fn output_for(&self, index: usize, count: usize, prompt: &str, seed: u64) -> PathBuf {
        match &self.output {
            Some(path) if count == 1 => path.clone(),
            Some(path) => {
                let stem = path
                    .file_stem()
                    .map_or("video".into(), |s| s.to_string_lossy());
                path.with_file_name(format!("{stem}-{index:03}.mp4"))
            }
            None => self
                .videos
                .join(format!("{}-{seed}.mp4", file_stem_of(prompt))),
        }
    }

    /// A pipeline builder with every model and device option of the command line.
    pub fn pipeline_builder(&self) -> Result<PipelineBuilder, Box<dyn std::error::Error>> {
        let args = self;
        let mut builder = Pipeline::builder()
            .decoder(args.decoder)
            .models(args.location())
            .resolution(args.height, args.width)
            .max_latent_frames(args.frames);
        if let Some(device) = &args.device {
            builder = builder.device(device.parse()?);
        }
        if let Some(precision) = &args.precision {
            builder = builder.precision(precision.clone());
        }
        let mut configs = match &args.model_config {
            Some(path) => ModelConfigs::from_json_file(path)?,
            None => ModelConfigs::default(),
        };
        if let Some((window, sink)) = args.kv_window {
            configs.rollout.local_attn_size = Some(window);
            configs.rollout.sink_size = sink;
        }
        builder = builder.configs(configs);
        if args.low_memory {
            builder = builder.low_memory(true);
        }
        if let Some(dir) = &args.prompt_cache {
            builder = builder.prompt_cache(dir.clone());
        }
        Ok(builder)
    }
}

/// A file-name-safe stem from the first words of a prompt.
pub fn file_stem_of(prompt: &str) -> String {
    let stem: String = prompt
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .take(60)
        .collect();
    let stem = stem.trim_matches('_').to_string();
    if stem.is_empty() {
        "video".into()
    } else {
        stem
    }
}

/// Prints the device, precision, memory plan, decoder and the features turned off.
pub fn print_setup(pipeline: &Pipeline) {
    let (h, w) = pipeline.resolution();
    println!("device:    {}", pipeline.selected().info);
    println!("precision: {}", pipeline.precision());
    let plan = pipeline.plan();
    println!(
        "plan:      {:?}, peak about {} of {} available",
        plan.mode,
        human_bytes(match plan.mode {
            sf_pipeline::PlanMode::AllResident => plan.estimate.all_resident_peak,
            sf_pipeline::PlanMode::LowMemory => plan.estimate.low_memory_peak,
        }),
        if plan.budget == u64::MAX {
            "an unknown amount".to_string()
        } else {
            human_bytes(plan.budget)
        }
    );
    println!("decoder:   {}, video {w}x{h}", pipeline.decoder());
    for off in pipeline.disabled_features() {
        println!("off:       {} ({})", off.feature, off.reason);
    }
}

/// Parses the command line, prints the usage on `--help` or a bad option, and runs `run`.
pub fn main_with(
    run: impl FnOnce(Args) -> Result<(), Box<dyn std::error::Error>>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
