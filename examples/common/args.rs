//! The command lines of `generate` and `stream` (clap): the model, device and video options both
//! take ([`ModelArgs`]), and each example's own ([`GenerateArgs`], [`StreamArgs`]).

use std::ops::Deref;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args, Parser};
use sf_pipeline::sf_device::DeviceRequest;
use sf_pipeline::{
    DecoderKind, ModelConfigs, ModelFamily, ModelLocation, Pipeline, PipelineBuilder,
};

use super::CliError;

use super::measure::VERSION;

/// A rolling KV cache: `window` latent frames, the first `sink` of them always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvWindow {
    /// Latent frames the cache holds.
    pub window: usize,
    /// First frames kept at the start of the cache.
    pub sink: usize,
}

fn parse_kv_window(text: &str) -> Result<KvWindow, String> {
    let (window, sink) = text.split_once(',').unwrap_or((text, "0"));
    let number = |v: &str, what: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| format!("the {what} must be a whole number, got '{v}': {e}"))
    };
    let kv = KvWindow {
        window: number(window, "window")?,
        sink: number(sink, "sink")?,
    };
    if kv.window == 0 {
        return Err("the window must hold at least one latent frame".into());
    }
    if kv.sink >= kv.window {
        return Err(format!(
            "the sink ({}) must be smaller than the window ({})",
            kv.sink, kv.window
        ));
    }
    Ok(kv)
}

fn parse_decoder(text: &str) -> Result<DecoderKind, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn parse_family(text: &str) -> Result<ModelFamily, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn parse_alpha(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("the LoRA alpha must be a positive number, got {x}")),
        Err(e) => Err(format!("a number, got '{text}': {e}")),
    }
}

fn parse_device(text: &str) -> Result<DeviceRequest, String> {
    text.parse().map_err(|e| format!("{e}"))
}

fn parse_frames(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("at least 1 latent frame (21 make 81 video frames)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!(
            "a whole number of latent frames, got '{text}': {e}"
        )),
    }
}

fn parse_shift(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(x) => Err(format!("the shift must be a positive number, got {x}")),
        Err(e) => Err(format!("a number, got '{text}': {e}")),
    }
}

/// The model, device and video options of both examples.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// The DiT: self-forcing, or longlive (LongLive's base checkpoint with its LoRA merged, a
    /// 12-frame KV window with a 3-frame sink unless --kv-window says otherwise)
    #[arg(long = "model", value_name = "NAME", default_value = "self-forcing",
          value_parser = parse_family)]
    pub family: ModelFamily,
    /// LongLive's LoRA alpha: the merge scale is alpha / rank [default: the rank, scale 1]
    #[arg(long, value_name = "X", value_parser = parse_alpha)]
    pub lora_alpha: Option<f64>,
    /// Latent frames to generate (21 = 81 video frames; more than the KV cache holds needs
    /// --kv-window)
    #[arg(long, value_name = "N", default_value_t = 21, value_parser = parse_frames)]
    pub frames: usize,
    /// Decoder: wan-vae or taehv
    #[arg(long, value_name = "NAME", default_value = "wan-vae", value_parser = parse_decoder)]
    pub decoder: DecoderKind,
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: auto, or SF_DEVICE]
    #[arg(long, value_name = "DEVICE", value_parser = parse_device)]
    pub device: Option<DeviceRequest>,
    /// Precision overrides, e.g. f16 or dit=bf16,text_encoder=bf16/f32
    #[arg(long, value_name = "SPEC")]
    pub precision: Option<String>,
    /// Rolling KV cache of N latent frames keeping the first SINK (for long videos)
    #[arg(long, value_name = "N[,SINK]", value_parser = parse_kv_window)]
    pub kv_window: Option<KvWindow>,
    /// Stream the text encoder block by block (less memory)
    #[arg(long)]
    pub low_memory: bool,
    /// Video height in pixels (a multiple of 16)
    #[arg(long, value_name = "H", default_value_t = 480)]
    pub height: usize,
    /// Video width in pixels (a multiple of 16)
    #[arg(long, value_name = "W", default_value_t = 832)]
    pub width: usize,
    /// Frames per second of the MP4
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub fps: u32,
    /// The weights in the upstream layout (wan_models/..., checkpoints/...) [default: the
    /// current directory if it has wan_models/, else the Hugging Face hub]
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Hugging Face hub endpoint (the --models layout is checked first)
    #[arg(long, value_name = "URL")]
    pub hub_endpoint: Option<String>,
    /// Model hyper-parameters as JSON (ModelConfigs), for other model sizes
    #[arg(long, value_name = "FILE.json")]
    pub model_config: Option<PathBuf>,
    /// Cache prompt embeddings in DIR
    #[arg(long, value_name = "DIR")]
    pub prompt_cache: Option<PathBuf>,
}

impl ModelArgs {
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

    /// The model configurations: `--model-config` or the real model, then the `--model`
    /// family's KV window and sink, then `--kv-window`.
    pub fn model_configs(&self) -> Result<ModelConfigs, CliError> {
        let mut configs = match &self.model_config {
            Some(path) => ModelConfigs::from_json_file(path)
                .map_err(|e| CliError::Usage(format!("--model-config: {e}")))?,
            None => ModelConfigs::default(),
        };
        self.family.apply_rollout_defaults(&mut configs.rollout);
        if let Some(kv) = self.kv_window {
            configs.rollout.local_attn_size = Some(kv.window);
            configs.rollout.sink_size = kv.sink;
        }
        Ok(configs)
    }

    /// A pipeline builder with every model and device option of the command line (reads
    /// `--model-config`; loads nothing).
    pub fn pipeline_builder(&self) -> Result<PipelineBuilder, CliError> {
        let mut builder = Pipeline::builder()
            .decoder(self.decoder)
            .models(self.location())
            .family(self.family)
            .resolution(self.height, self.width)
            .max_latent_frames(self.frames)
            .configs(self.model_configs()?);
        if let Some(alpha) = self.lora_alpha {
            if !self.family.preset().lora {
                return Err(CliError::Usage(format!(
                    "--lora-alpha: the {} model merges no LoRA (use it with --model longlive)",
                    self.family
                )));
            }
            builder = builder.lora_alpha(alpha);
        }
        if let Some(device) = &self.device {
            builder = builder.device(device.clone());
        }
        if let Some(precision) = &self.precision {
            builder = builder.precision(precision.clone());
        }
        if self.low_memory {
            builder = builder.low_memory(true);
        }
        if let Some(dir) = &self.prompt_cache {
            builder = builder.prompt_cache(dir.clone());
        }
        Ok(builder)
    }
}

/// Text to video: one MP4 per prompt.
///
/// Everything that needs no weights (prompts, frames, shift, size, device, precision, memory
/// plan, output paths) is checked before any model is loaded. An existing file is never
/// replaced without --overwrite.
#[derive(Parser, Clone, Debug)]
#[command(name = "generate", version = VERSION,
          group(ArgGroup::new("input").required(true).multiple(true)
                 .args(["prompt", "prompts", "prompt_schedule"])))]
pub struct GenerateArgs {
    /// The prompt
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// A file with one prompt per line (one video each; empty lines are skipped)
    #[arg(long, value_name = "FILE", conflicts_with = "prompt")]
    pub prompts: Option<PathBuf>,
    /// Later prompts of the video: lines LATENT_FRAME<TAB>PROMPT (# comments, blank lines);
    /// each starts at the first chunk at or after its frame. A first line 0<TAB>PROMPT gives
    /// the first prompt instead of --prompt
    #[arg(long, value_name = "FILE", conflicts_with = "prompts")]
    pub prompt_schedule: Option<PathBuf>,
    /// Generate until Ctrl-C instead of --frames (needs a rolling KV window: --kv-window or
    /// --model longlive); ends by itself at the RoPE table's 1024 latent frames
    #[arg(long, conflicts_with = "prompts")]
    pub endless: bool,
    /// LLM-extended prompts, line by line, used for conditioning instead
    #[arg(long, value_name = "FILE")]
    pub extended_prompts: Option<PathBuf>,
    /// Seed of the initial noise [default: random; -1 = random]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub seed: Option<i64>,
    /// Overrides the scheduler's shift (a positive number)
    #[arg(long, value_name = "X", value_parser = parse_shift)]
    pub shift: Option<f32>,
    /// The MP4 (several prompts: FILE-000.mp4, FILE-001.mp4, ...) [default:
    /// <videos>/<prompt>-<seed>.mp4, a free name if taken]
    #[arg(long, value_name = "FILE.mp4")]
    pub output: Option<PathBuf>,
    /// Also write every frame as PNG in DIR (several prompts: DIR/<mp4 name>/)
    #[arg(long, value_name = "DIR")]
    pub png_dir: Option<PathBuf>,
    /// Replace an existing MP4 (and PNG frames) instead of refusing
    #[arg(long)]
    pub overwrite: bool,
    /// Folder of the default output names
    #[arg(long, value_name = "DIR", default_value = "videos")]
    pub videos: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
}

impl Deref for GenerateArgs {
    type Target = ModelArgs;

    fn deref(&self) -> &ModelArgs {
        &self.model
    }
}

/// The streaming web demo on 127.0.0.1: generates from a prompt and plays the frames as each
/// chunk is decoded; every run is saved as an MP4.
#[derive(Parser, Clone, Debug)]
#[command(name = "stream", version = VERSION)]
pub struct StreamArgs {
    /// A prompt shown first among the page's examples
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// Port on 127.0.0.1
    #[arg(long, value_name = "N", default_value_t = 7860)]
    pub port: u16,
    /// Where each run's MP4 goes
    #[arg(long, value_name = "DIR", default_value = "videos")]
    pub videos: PathBuf,
    /// Another origin allowed to use the server (e.g. http://myhost:7860 behind a proxy);
    /// repeatable. By default only the page's own address is
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
}

impl Deref for StreamArgs {
    type Target = ModelArgs;

    fn deref(&self) -> &ModelArgs {
        &self.model
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
