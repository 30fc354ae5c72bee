//! One forward of the real-size DiT (Wan2.1-T2V-1.3B config) on one chunk against a KV cache
//! already holding the earlier frames, with its time and memory.
//!
//! ```text
//! cargo run --features wgpu --example dit_real_size -- [--device cpu] [--dtype f32|bf16]
//!     [--cached-frames 18] [--chunk-frames 3] [--layers 30] [--height 480] [--width 832]
//!     [--weights diffusion_pytorch_model.safetensors] [--repeat 1]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! The default is the last chunk of a 21-latent-frame video at 480x832: 3 frames (4680 query
//! tokens) attending to 21 frames (32760 keys) in every layer. A materialised score tensor
//! would take 12 x 4680 x 32760 x 4 bytes = 7.4 GB per layer; the printed working memory of the
//! forward shows that attention does not build it. Weights are random unless `--weights` names
//! a Wan-layout safetensors file (as `benches/compare_pytorch.py` writes); `--repeat` times
//! several forwards and ends with a `RESULT {json}` line.

#[path = "common/measure.rs"]
mod measure;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::{Distribution, FloatDType, Tensor};
use clap::Parser;
use sf_device::{
    DeviceRequest, Dtype, cast_module, current_rss_bytes, human_bytes, peak_rss_bytes, sync,
};
use sf_pipeline::sf_models::{CacheConfig, CheckpointFormat, WanConfig, WanModel, load_wan_model};

/// One forward of the real-size DiT on one chunk against a filled KV cache, with its time and
/// memory.
#[derive(Parser, Debug)]
#[command(name = "dit_real_size")]
struct Args {
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<DeviceRequest>,
    /// Weight and activation dtype: f32, f16 or bf16
    #[arg(long, value_name = "DTYPE", default_value = "f32", value_parser = measure::parse_dtype)]
    dtype: Dtype,
    /// Latent frames already in the KV cache
    #[arg(long, value_name = "N", default_value_t = 18)]
    cached_frames: usize,
    /// Latent frames of the chunk the forward computes
    #[arg(long, value_name = "N", default_value_t = 3)]
    chunk_frames: usize,
    /// Transformer blocks [default: 30, the real model's]
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Video height in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "H", default_value_t = 480)]
    height: usize,
    /// Video width in pixels (the latent is an eighth of it)
    #[arg(long, value_name = "W", default_value_t = 832)]
    width: usize,
    /// A Wan-layout safetensors file to load instead of random weights
    #[arg(long, value_name = "FILE.safetensors")]
    weights: Option<PathBuf>,
    /// Timed forwards, each against a freshly filled cache (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = measure::at_least_one)]
    repeat: usize,
}

fn main() -> ExitCode {
    measure::exit(run(Args::parse()))
}

fn run(a: Args) -> Result<(), String> {
    let selected = measure::device(a.device)?;
    let device = selected.device.clone();
    let mut config = WanConfig::wan2_1_t2v_1_3b();
    if let Some(layers) = a.layers {
        config.num_layers = layers;
    }
    let (lat_h, lat_w) = (a.height / 8, a.width / 8);
    let fs = (lat_h / config.patch_size[1]) * (lat_w / config.patch_size[2]);
    let total_frames = a.cached_frames + a.chunk_frames;
    println!(
        "device {}, {} threads, dtype {}, {} layers, chunk {} frames ({} queries) against {} \
         frames ({} keys)",
        selected.info,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        a.dtype,
        config.num_layers,
        a.chunk_frames,
        a.chunk_frames * fs,
        total_frames,
        total_frames * fs
    );
    let started = Instant::now();
    let model = match &a.weights {
        Some(path) => load_wan_model(
            path,
            &CheckpointFormat::WanSafetensors,
            &config,
            &device,
            a.dtype,
        )
        .map_err(|e| e.to_string())?,
        // Casting visits every parameter, which initialises the lazily created random weights.
        None => cast_module(
            WanModel::new(&config, &device).map_err(|e| e.to_string())?,
            a.dtype,
        ),
    };
    sync(&device).map_err(|e| e.to_string())?;
    println!(
        "weights ready in {:.1?}; {}",
        started.elapsed(),
        measure::rss()
    );

    let float: FloatDType = a.dtype.float_dtype();
    let random = |shape: [usize; 3]| {
        Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device).cast(float)
    };
    let context = random([1, config.text_len, config.text_dim]);
    let x = Tensor::<5>::random(
        [1, config.in_dim, a.chunk_frames, lat_h, lat_w],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .cast(float);
    let t = vec![750.0f32; a.chunk_frames];
    let heads = config.num_heads;
    let hd = config.dim / heads;
    let mut seconds = Vec::new();
    for _ in 0..a.repeat {
        let mut caches = model.new_cache(CacheConfig::global(total_frames, fs).with_dtype(float));
        if a.cached_frames > 0 {
            let started = Instant::now();
            for layer in &mut caches.layers {
                let kv = || {
                    Tensor::<4>::random(
                        [1, heads, a.cached_frames * fs, hd],
                        Distribution::Normal(0.0, 1.0),
                        &device,
                    )
                    .cast(float)
                };
                layer
                    .self_attn
                    .update(kv(), kv(), 0)
                    .map_err(|e| e.to_string())?;
            }
            sync(&device).map_err(|e| e.to_string())?;
            println!(
                "KV cache filled with {} frames in {:.1?}; {}",
                a.cached_frames,
                started.elapsed(),
                measure::rss()
            );
        }
        let before = current_rss_bytes().unwrap_or(0);
        let started = Instant::now();
        let out = model
            .forward(
                x.clone(),
                &t,
                context.clone(),
                Some(&mut caches),
                a.cached_frames,
            )
            .map_err(|e| e.to_string())?;
        sync(&device).map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        seconds.push(elapsed.as_secs_f64());
        let non_finite = out
            .clone()
            .is_finite()
            .bool_not()
            .any()
            .into_scalar::<bool>();
        println!(
            "forward: {:.1?}, output {:?}{}; {}",
            elapsed,
            out.dims(),
            if non_finite { " (NOT FINITE)" } else { "" },
            measure::rss()
        );
        println!(
            "working memory of the forward (peak - rss before it): {}",
            human_bytes(peak_rss_bytes().unwrap_or(0).saturating_sub(before))
        );
    }
    println!(
        "a materialised score tensor would need {} per layer",
        human_bytes((heads * a.chunk_frames * fs * total_frames * fs * 4) as u64)
    );
    measure::result_line(
        &seconds,
        serde_json::json!({ "queries": a.chunk_frames * fs, "keys": total_frames * fs }),
    );
    Ok(())
}
