//! The real-size Wan2.1 VAE decoder (random f32 weights) decoding a 480x832 video latent by
//! latent, with seconds and memory per latent frame; optionally a micro-measure of the ways to
//! compute its 3x3x3 convolutions.
//!
//! ```text
//! flock /tmp/sf-bigmem.lock cargo run --features wgpu --example wan_vae_real_size -- \
//!     [--device cpu] [--frames 3] [--height 480] [--width 832] [--dtype f32|f16|bf16]
//!     [--strategy auto|conv3d|conv2d-sum|conv2d-stacked] [--bench-conv] [--no-decode]
//!     [--weights Wan2.1_VAE.pth|.safetensors] [--repeat 1]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! Weights are random unless `--weights` names a VAE checkpoint; `--repeat` decodes the video
//! again from a fresh cache and the last line is `RESULT {json}` with the seconds of each run.
//!
//! `--bench-conv` times one causal 3x3x3 convolution (384 channels at 60x104 with one new
//! frame, and 192 channels at 240x416 with four new frames, both after two cached frames) with
//! every [`ConvStrategy`] and prints the largest difference between them.

#[path = "common/measure.rs"]
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use clap::Parser;
use sf_device::{DeviceRequest, Dtype, cast_module, sync};
use sf_pipeline::sf_vae::VideoDecoder;
use sf_pipeline::sf_vae::wan::{
    CausalConv3d, ConvStrategy, DecodeOptions, Layout, VaeParts, WanVae, WanVaeConfig,
    WanVaeDecoder, load_wan_vae,
};

/// The real-size Wan2.1 VAE decoder decoding a video latent by latent, with seconds and memory
/// per latent frame; optionally a micro-measure of its 3x3x3 convolution strategies.
#[derive(Parser, Debug)]
#[command(name = "wan_vae_real_size")]
struct Args {
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<DeviceRequest>,
    /// Latent frames to decode (at least 1)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = measure::at_least_one)]
    frames: usize,
    /// Video height in pixels (a multiple of 8)
    #[arg(long, value_name = "H", default_value_t = 480, value_parser = multiple_of_8)]
    height: usize,
    /// Video width in pixels (a multiple of 8)
    #[arg(long, value_name = "W", default_value_t = 832, value_parser = multiple_of_8)]
    width: usize,
    /// Weight and activation dtype: f32, f16 or bf16
    #[arg(long, value_name = "DTYPE", default_value = "f32", value_parser = measure::parse_dtype)]
    dtype: Dtype,
    /// Convolution strategy: auto, conv3d, conv2d-sum or conv2d-stacked
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = strategy)]
    strategy: ConvStrategy,
    /// Before decoding, time one causal 3x3x3 convolution with every strategy
    #[arg(long)]
    bench_conv: bool,
    /// Skip the decode (with --bench-conv: only the convolutions)
    #[arg(long)]
    no_decode: bool,
    /// A VAE checkpoint (.pth or .safetensors) to load instead of random weights
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Decodes of the whole video, each from a fresh cache (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = measure::at_least_one)]
    repeat: usize,
}

fn strategy(name: &str) -> Result<ConvStrategy, String> {
    Ok(match name {
        "auto" => ConvStrategy::Auto,
        "conv3d" => ConvStrategy::Conv3d,
        "conv2d-sum" => ConvStrategy::Conv2dSum,
        "conv2d-stacked" => ConvStrategy::Conv2dStacked,
        other => return Err(format!("unknown strategy '{other}'")),
    })
}

fn multiple_of_8(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n.is_multiple_of(8) => Ok(n),
        Ok(n) => Err(format!("{n} is not a multiple of 8")),
        Err(e) => Err(format!("a whole number, got '{text}': {e}")),
    }
}

fn main() -> ExitCode {
    measure::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), String> {
    let selected = measure::device(args.device.clone())?;
    let device = selected.device.clone();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("device: {} ({threads} CPU threads)", selected.info);
    if args.bench_conv {
        bench_conv(&device, args.dtype)?;
    }
    if !args.no_decode {
        decode(&args, &device)?;
    }
    Ok(())
}

fn decode(args: &Args, device: &Device) -> Result<(), String> {
    let config = WanVaeConfig::wan2_1();
    let vae = match &args.weights {
        Some(path) => load_wan_vae(path, &config, VaeParts::DecoderOnly, device, args.dtype)
            .map_err(|e| e.to_string())?,
        None => cast_module(
            WanVae::new(&config, VaeParts::DecoderOnly, device).map_err(|e| e.to_string())?,
            args.dtype,
        ),
    };
    let options = DecodeOptions {
        strategy: args.strategy,
        zero_history: false,
    };
    println!(
        "Wan2.1 VAE decoder ({} {} weights), {}x{} video, {} latent frames streamed one per \
         call, strategy {:?}; {}",
        if args.weights.is_some() {
            "loaded"
        } else {
            "random"
        },
        args.dtype,
        args.height,
        args.width,
        args.frames,
        options.strategy.resolve(device),
        measure::rss()
    );
    let (h, w) = (args.height / 8, args.width / 8);
    // The rollout's layout `[B, C, F, h, w]`, as the pipeline hands latents over.
    let latents = Tensor::<5>::random(
        [1, config.z_dim, args.frames, h, w],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        let mut decoder = WanVaeDecoder::new(vae.clone(), options);
        let mut total = 0.0;
        for i in 0..args.frames {
            let start = Instant::now();
            let frames = decoder
                .decode_chunk(latents.clone().narrow(2, i, 1))
                .map_err(|e| e.to_string())?;
            sync(device).map_err(|e| e.to_string())?;
            let seconds = start.elapsed().as_secs_f64();
            total += seconds;
            let dims = frames.dims();
            println!(
                "latent frame {i}: {:>7.2} s -> {} frames {}x{}; {}",
                seconds,
                dims[1],
                dims[3],
                dims[4],
                measure::rss()
            );
        }
        println!(
            "total {:.2} s for {} video frames",
            total,
            config.video_frames(args.frames)
        );
        runs.push(total);
    }
    measure::result_line(
        &runs,
        serde_json::json!({ "video_frames": config.video_frames(args.frames) }),
    );
    Ok(())
}

fn bench_conv(device: &Device, dtype: Dtype) -> Result<(), String> {
    for (channels, new_frames, h, w) in [(384, 1, 60, 104), (192, 4, 240, 416)] {
        let conv = cast_module(
            CausalConv3d::new(channels, channels, [3, 3, 3], [1, 1, 1], 1, device),
            dtype,
        );
        // Channel-major inputs; each strategy gets them in its own layout.
        let random = |t: usize| {
            Tensor::<5>::random(
                [1, channels, t, h, w],
                Distribution::Normal(0.0, 1.0),
                device,
            )
            .cast(dtype.float_dtype())
        };
        let (x, history) = (random(new_frames), random(2));
        let gflop = 2.0 * (channels * channels * 27 * new_frames * h * w) as f64 / 1e9;
        println!(
            "conv 3x3x3 {channels}->{channels}, {new_frames} new + 2 cached frames, {h}x{w} ({gflop:.1} GFLOP)"
        );
        let mut reference: Option<Vec<f32>> = None;
        for strategy in [
            ConvStrategy::Conv3d,
            ConvStrategy::Conv2dSum,
            ConvStrategy::Conv2dStacked,
        ] {
            let layout = strategy.layout(device);
            let (x, history) = (
                layout.convert(x.clone(), Layout::ChannelMajor),
                layout.convert(history.clone(), Layout::ChannelMajor),
            );
            let run = || {
                let out = conv.forward(x.clone(), Some(history.clone()), strategy);
                sync(device).map(|_| out).map_err(|e| e.to_string())
            };
            let out = run()?; // warm-up (and kernel compilation on GPUs)
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let start = Instant::now();
                run()?;
                best = best.min(start.elapsed().as_secs_f64());
            }
            let values = sf_testkit::to_f32s(Layout::ChannelMajor.convert(out, layout));
            let diff = reference.as_ref().map_or(0.0, |r| {
                r.iter()
                    .zip(&values)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            });
            reference.get_or_insert(values);
            println!(
                "  {strategy:<14?} best of 3: {best:>7.3} s  {:>6.1} GFLOP/s  max|diff vs Conv3d| {diff:.2e}; {}",
                gflop / best,
                measure::rss()
            );
        }
    }
    Ok(())
}
