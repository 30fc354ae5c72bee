//! The whole Self-Forcing rollout of the real-size 1.3B DiT with random weights on one device
//! and dtype: denoise FPS, end-to-end FPS with TAEHV, time to first chunk and peak memory.
//!
//! ```text
//! cargo run --release --features wgpu --example rollout_bench -- [--device cuda] [--dtype bf16]
//!     [--latent-frames 21] [--height 480] [--width 832] [--layers 30] [--decoder taehv|none]
//!     [--runs 2]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! What runs is what [`Pipeline::stream`](sf_pipeline::Pipeline::stream) runs after the prompt is
//! encoded: the library's [`Rollout`] over a [`DitDenoiser`] (chunks of 3 latent frames, 4
//! denoising steps and a cache refresh per chunk, the global 21-frame KV cache), each chunk's
//! latents decoded by TAEHV and copied to the host as 8-bit frames. The text encoder is not
//! run: the context is a random `[1, 512, 4096]` tensor (umT5-XXL's output shape). Run 1 includes
//! the device's kernel compilation and autotuning; later runs reuse them. The last line is
//! `RESULT {json}` with every run's figures (`scripts/gpu-bench.sh` reads it).

#[path = "common/measure.rs"]
mod measure;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use burn::tensor::{Device, Distribution, Tensor};
use clap::{Parser, ValueEnum};
use sf_device::{
    DeviceMemory, Dtype, SelectedDevice, cast_module, device_memory, human_bytes, sync,
};
use sf_pipeline::sf_models::{WanConfig, WanModel};
use sf_pipeline::sf_vae::taehv::{Taehv, TaehvConfig, TaehvDecoder};
use sf_pipeline::sf_vae::{VideoDecoder, frames_to_rgb8};
use sf_pipeline::{DitDenoiser, LatentShape, Rollout, RolloutConfig, SeededNoise};

/// The whole rollout of the real-size DiT (random weights) with TAEHV, timed.
#[derive(Parser, Debug)]
#[command(name = "rollout_bench", version = measure::VERSION)]
struct Args {
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<sf_device::DeviceRequest>,
    /// Weight, activation and KV-cache dtype: f32, f16 or bf16
    #[arg(long, value_name = "DTYPE", default_value = "f32", value_parser = measure::parse_dtype)]
    dtype: Dtype,
    /// Latent frames to generate (21 = 81 video frames)
    #[arg(long, value_name = "N", default_value_t = 21, value_parser = measure::at_least_one)]
    latent_frames: usize,
    /// Video height in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "H", default_value_t = 480)]
    height: usize,
    /// Video width in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "W", default_value_t = 832)]
    width: usize,
    /// Transformer blocks [default: 30, the real model's]
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Decoder run on every chunk
    #[arg(long, value_enum, default_value_t = Decoder::Taehv)]
    decoder: Decoder,
    /// Timed rollouts (the first includes kernel compilation)
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = measure::at_least_one)]
    runs: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Decoder {
    Taehv,
    None,
}

/// The figures of one rollout.
#[derive(Default)]
struct Run {
    denoise: Duration,
    decode: Duration,
    total: Duration,
    first_chunk: Duration,
    frames: usize,
    /// Largest device-allocator figures seen after a chunk (`None`: the backend reports none).
    peak_in_use: Option<u64>,
    peak_reserved: Option<u64>,
}

fn main() -> ExitCode {
    measure::exit(run(Args::parse()))
}

fn run(a: Args) -> Result<(), String> {
    let selected = measure::device(a.device.clone())?;
    let device = selected.device.clone();
    if !a.height.is_multiple_of(16) || !a.width.is_multiple_of(16) || a.height == 0 || a.width == 0
    {
        return Err(format!(
            "--height and --width must be positive multiples of 16 (the DiT patches 2x2 latents \
             of an eighth of the size), got {}x{}",
            a.height, a.width
        ));
    }
    let mut config = WanConfig::wan2_1_t2v_1_3b();
    if let Some(layers) = a.layers {
        config.num_layers = layers;
    }
    let rollout = RolloutConfig {
        global_cache_frames: a
            .latent_frames
            .max(RolloutConfig::default().global_cache_frames),
        ..RolloutConfig::default()
    };
    rollout
        .plan(a.latent_frames, 0)
        .map_err(|e| e.to_string())?;
    println!(
        "device {}, dtype {}, {} layers, {} latent frames at {}x{}, decoder {:?}",
        selected.info, a.dtype, config.num_layers, a.latent_frames, a.height, a.width, a.decoder
    );
    let started = Instant::now();
    // Casting visits every parameter, which initialises the lazily created random weights.
    let dit = cast_module(
        WanModel::new(&config, &device).map_err(|e| e.to_string())?,
        a.dtype,
    );
    let taehv = match a.decoder {
        Decoder::Taehv => Some(cast_module(
            Taehv::new(&TaehvConfig::taew2_1(), false, &device).map_err(|e| e.to_string())?,
            a.dtype,
        )),
        Decoder::None => None,
    };
    sync(&device).map_err(|e| e.to_string())?;
    println!(
        "weights ready in {:.1?}; {}",
        started.elapsed(),
        measure::rss()
    );
    let context = Tensor::<3>::random(
        [1, config.text_len, config.text_dim],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .cast(a.dtype.float_dtype());
    let mut runs = Vec::new();
    for index in 0..a.runs {
        let r = rollout_once(
            &a,
            &selected,
            &dit,
            taehv.as_ref(),
            &context,
            &rollout,
            &device,
        )?;
        println!(
            "run {}: {} frames, denoise {:.2} s ({:.2} FPS), decode {:.2} s, end to end {:.2} s \
             ({:.2} FPS), first chunk {:.2} s, device memory peak {} in use / {} reserved; {}",
            index + 1,
            r.frames,
            r.denoise.as_secs_f64(),
            fps(r.frames, r.denoise),
            r.decode.as_secs_f64(),
            r.total.as_secs_f64(),
            fps(r.frames, r.total),
            r.first_chunk.as_secs_f64(),
            r.peak_in_use.map_or("n/a".into(), human_bytes),
            r.peak_reserved.map_or("n/a".into(), human_bytes),
            measure::rss()
        );
        runs.push(r);
    }
    let fields = |f: &dyn Fn(&Run) -> serde_json::Value| runs.iter().map(f).collect::<Vec<_>>();
    measure::result_line(
        &runs
            .iter()
            .map(|r| r.total.as_secs_f64())
            .collect::<Vec<_>>(),
        serde_json::json!({
            "device": selected.info.to_string(),
            "backend": selected.kind().name(),
            "dtype": a.dtype.to_string(),
            "layers": config.num_layers,
            "latent_frames": a.latent_frames,
            "height": a.height,
            "width": a.width,
            "decoder": format!("{:?}", a.decoder).to_lowercase(),
            "frames": fields(&|r| r.frames.into()),
            "denoise_seconds": fields(&|r| r.denoise.as_secs_f64().into()),
            "decode_seconds": fields(&|r| r.decode.as_secs_f64().into()),
            "first_chunk_seconds": fields(&|r| r.first_chunk.as_secs_f64().into()),
            "denoise_fps": fields(&|r| fps(r.frames, r.denoise).into()),
            "end_to_end_fps": fields(&|r| fps(r.frames, r.total).into()),
            "device_peak_in_use_bytes": fields(&|r| r.peak_in_use.into()),
            "device_peak_reserved_bytes": fields(&|r| r.peak_reserved.into()),
        }),
    );
    Ok(())
}

/// One rollout from fresh caches, decoding every chunk as it comes.
fn rollout_once(
    a: &Args,
    selected: &SelectedDevice,
    dit: &WanModel,
    taehv: Option<&Taehv>,
    context: &Tensor<3>,
    rollout: &RolloutConfig,
    device: &Device,
) -> Result<Run, String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let (lat_h, lat_w) = (a.height / 8, a.width / 8);
    let kv = Some(a.dtype.float_dtype());
    let started = Instant::now();
    let denoiser =
        DitDenoiser::new(dit, context.clone(), rollout, lat_h, lat_w, kv).map_err(|x| e(&x))?;
    let shape = LatentShape {
        batch: 1,
        channels: dit.config().in_dim,
        height: lat_h,
        width: lat_w,
    };
    let chunks = Rollout::new(
        denoiser,
        SeededNoise::new(1),
        rollout.clone(),
        shape,
        a.latent_frames,
        None,
        device,
    )
    .map_err(|x| e(&x))?;
    let mut decoder = taehv.map(|m| TaehvDecoder::new(m.clone()));
    let mut run = Run::default();
    for chunk in chunks {
        let chunk = chunk.map_err(|x| e(&x))?;
        run.denoise += chunk.timings.get("denoise") + chunk.timings.get("refresh");
        let latent_frames = chunk.latents.dims()[2];
        let decode_started = Instant::now();
        run.frames += match decoder.as_mut() {
            Some(d) => {
                let frames = d.decode_chunk(chunk.latents).map_err(|x| e(&x))?;
                frames_to_rgb8(frames).map_err(|x| e(&x))?.len()
            }
            None => {
                // Without a decoder the latents still reach the host, as a consumer's would.
                chunk.latents.into_data();
                if run.frames == 0 {
                    1 + 4 * (latent_frames - 1)
                } else {
                    4 * latent_frames
                }
            }
        };
        sync(device).map_err(|x| e(&x))?;
        run.decode += decode_started.elapsed();
        if run.first_chunk.is_zero() {
            run.first_chunk = started.elapsed();
        }
        let DeviceMemory {
            in_use, reserved, ..
        } = device_memory(selected);
        run.peak_in_use = in_use.map(|b| b.max(run.peak_in_use.unwrap_or(0)));
        run.peak_reserved = reserved.map(|b| b.max(run.peak_reserved.unwrap_or(0)));
    }
    run.total = started.elapsed();
    Ok(run)
}

fn fps(frames: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        frames as f64 / time.as_secs_f64()
    }
}
