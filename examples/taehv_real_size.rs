//! The real-size TAEHV decoder (`taew2_1` config, random f32 weights) decoding a 480x832 video
//! streamed latent by latent, with the time and memory of every latent frame.
//!
//! ```text
//! flock /tmp/sf-bigmem.lock cargo run --features wgpu --example taehv_real_size -- \
//!     [--device cpu] [--dtype f32]
//!     [--latents 6] [--chunk 1] [--height 480] [--width 832]
//!     [--weights taew2_1.pth|.safetensors] [--repeat 1]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! Weights are random unless `--weights` names a TAEHV checkpoint; `--repeat` decodes again
//! with fresh memories and the last line is `RESULT {json}` with the seconds of each run.
//!
//! Each chunk goes through `VideoDecoder::decode_chunk` with the MemBlock memories kept between
//! chunks, exactly as the pipeline streams: the first latent yields 1 frame, every later one 4.

#[path = "common/measure.rs"]
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use clap::Parser;
use sf_device::{DeviceRequest, Dtype, cast_module, human_bytes, peak_rss_bytes, sync};
use sf_pipeline::sf_vae::VideoDecoder;
use sf_pipeline::sf_vae::taehv::{Taehv, TaehvConfig, TaehvDecoder, load_taehv};

/// The real-size TAEHV decoder (taew2_1) decoding a video streamed latent by latent, with the
/// time and memory of every chunk.
#[derive(Parser, Debug)]
#[command(name = "taehv_real_size")]
struct Args {
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<DeviceRequest>,
    /// Weight and activation dtype: f32, f16 or bf16
    #[arg(long, value_name = "DTYPE", default_value = "f32", value_parser = measure::parse_dtype)]
    dtype: Dtype,
    /// Latent frames to decode
    #[arg(long, value_name = "N", default_value_t = 6)]
    latents: usize,
    /// Latent frames per decode_chunk call (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = measure::at_least_one)]
    chunk: usize,
    /// Video height in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "H", default_value_t = 480)]
    height: usize,
    /// Video width in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "W", default_value_t = 832)]
    width: usize,
    /// A TAEHV checkpoint (.pth or .safetensors) to load instead of random weights
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Decodes of the whole video, each with fresh memories (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = measure::at_least_one)]
    repeat: usize,
}

fn main() -> ExitCode {
    measure::exit(run(Args::parse()))
}

fn run(a: Args) -> Result<(), String> {
    let selected = measure::device(a.device.clone())?;
    let device = selected.device.clone();
    let config = TaehvConfig::taew2_1();
    let (lat_h, lat_w) = (a.height / 8, a.width / 8);
    println!(
        "device {}, {} threads, dtype {}, taew2_1 decoder, {} latents of {}x{} -> {}x{} frames, \
         {} latent(s) per chunk",
        selected.info,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        a.dtype,
        a.latents,
        lat_h,
        lat_w,
        lat_h * config.spatial_upscale(),
        lat_w * config.spatial_upscale(),
        a.chunk
    );
    let started = Instant::now();
    let model = match &a.weights {
        Some(path) => load_taehv(path, &config, &device, a.dtype).map_err(|e| e.to_string())?,
        // Casting visits every parameter, which initialises the lazily created random weights.
        None => cast_module(
            Taehv::new(&config, false, &device).map_err(|e| e.to_string())?,
            a.dtype,
        ),
    };
    sync(&device).map_err(|e| e.to_string())?;
    println!(
        "weights ready in {:.1?}; {}",
        started.elapsed(),
        measure::rss()
    );
    // The rollout's layout `[B, C, F, h, w]`, as the pipeline hands latents over.
    let latents = Tensor::<5>::random(
        [1, config.latent_channels, a.latents, lat_h, lat_w],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut runs = Vec::new();
    for _ in 0..a.repeat {
        runs.push(decode(&model, &latents, &a, &device)?);
    }
    println!(
        "peak rss {}",
        peak_rss_bytes().map_or("?".into(), human_bytes)
    );
    measure::result_line(&runs, serde_json::json!({}));
    Ok(())
}

/// Streams `latents` through a fresh decoder, `a.chunk` latents per call; returns the seconds.
fn decode(
    model: &Taehv,
    latents: &Tensor<5>,
    a: &Args,
    device: &burn::tensor::Device,
) -> Result<f64, String> {
    let mut decoder = TaehvDecoder::new(model.clone());
    let (mut frames, mut total, mut start) = (0, 0.0f64, 0);
    let mut later = Vec::new();
    while start < a.latents {
        let f = a.chunk.min(a.latents - start);
        let started = Instant::now();
        let out = decoder
            .decode_chunk(latents.clone().narrow(2, start, f))
            .map_err(|e| e.to_string())?;
        sync(device).map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let dims = out.dims();
        frames += dims[1];
        total += seconds;
        if start > 0 {
            later.push(seconds / f as f64);
        }
        println!(
            "latents {start}..{}: {} frames {:?}, {seconds:.2} s ({:.2} s per latent), \
             memories {}; {}",
            start + f,
            dims[1],
            &dims[2..],
            seconds / f as f64,
            human_bytes(decoder.memory_bytes() as u64),
            measure::rss()
        );
        start += f;
    }
    let steady = later.iter().sum::<f64>() / later.len().max(1) as f64;
    println!(
        "total {frames} frames in {total:.2} s ({:.2} frames/s); steady state {steady:.2} s per \
         latent frame (4 video frames)",
        frames as f64 / total,
    );
    Ok(total)
}
