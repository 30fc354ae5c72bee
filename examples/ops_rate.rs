//! Throughput of the two kernels the DiT spends its time in, f32: a square matmul and the fused
//! attention at DiT shapes, in GFLOP/s.
//!
//! ```text
//! cargo run --features wgpu --example ops_rate -- --op matmul|attention|attention-burn|attention-tiled
//!     [--device cpu] [--n 4096] [--heads 12] [--queries 4680] [--keys 4680] [--head-dim 128]
//!     [--tile 1024] [--repeat 3]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! `attention` is what the DiT runs (on the CPU sf-device's own kernel, elsewhere burn's);
//! `attention-burn` is burn's fused attention on every device; `attention-tiled` computes the
//! same result as `softmax(q·kᵀ/√d)·v` over tiles of `--tile` queries with two matmuls, to
//! compare the fused kernels with the matmul rate.
//!
//! One untimed warm-up, then `--repeat` timed runs; the last line is `RESULT {json}` for
//! `benches/compare_pytorch.py`, which runs the same shapes through PyTorch in the same run.

#[path = "common/measure.rs"]
mod measure;

use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, Tensor};
use clap::Parser;
use sf_device::{DeviceRequest, kernels, sync};
use sf_pipeline::sf_models::sdpa;

/// The f32 rate of a square matmul or of attention at DiT shapes, in GFLOP/s.
#[derive(Parser, Debug)]
#[command(name = "ops_rate")]
struct Args {
    /// The kernel (attention: the DiT's; attention-burn: burn's fused kernel; attention-tiled:
    /// two matmuls per query tile)
    #[arg(long, value_name = "OP", value_parser = ["matmul", "attention", "attention-burn", "attention-tiled"])]
    op: String,
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu [default: SF_DEVICE, else auto]
    #[arg(long, value_name = "DEVICE", value_parser = measure::parse_device)]
    device: Option<DeviceRequest>,
    /// Side of the square matrices (matmul)
    #[arg(long, value_name = "N", default_value_t = 4096)]
    n: usize,
    /// Attention heads
    #[arg(long, value_name = "N", default_value_t = 12)]
    heads: usize,
    /// Query tokens per head
    #[arg(long, value_name = "N", default_value_t = 4680)]
    queries: usize,
    /// Key and value tokens per head
    #[arg(long, value_name = "N", default_value_t = 4680)]
    keys: usize,
    /// Channels per head
    #[arg(long, value_name = "N", default_value_t = 128)]
    head_dim: usize,
    /// Queries per tile of attention-tiled (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = measure::at_least_one)]
    tile: usize,
    /// Timed runs after the warm-up (at least 1)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = measure::at_least_one)]
    repeat: usize,
}

fn main() -> ExitCode {
    measure::exit(run(Args::parse()))
}

fn run(a: Args) -> Result<(), String> {
    let selected = measure::device(a.device)?;
    let device = selected.device.clone();
    let normal = Distribution::Normal(0.0, 1.0);
    let (gflop, op): (f64, Box<dyn Fn() -> Result<(), String>>) = match a.op.as_str() {
        "matmul" => {
            let x = Tensor::<2>::random([a.n, a.n], normal, &device);
            let y = Tensor::<2>::random([a.n, a.n], normal, &device);
            let d = device.clone();
            (
                2.0 * (a.n as f64).powi(3) / 1e9,
                Box::new(move || {
                    let _out = x.clone().matmul(y.clone());
                    sync(&d).map_err(|e| e.to_string())
                }),
            )
        }
        "attention" | "attention-burn" | "attention-tiled" => {
            let shape = |l: usize| [1, a.heads, l, a.head_dim];
            let q = Tensor::<4>::random(shape(a.queries), normal, &device);
            let k = Tensor::<4>::random(shape(a.keys), normal, &device);
            let v = Tensor::<4>::random(shape(a.keys), normal, &device);
            let (d, tile, queries, op) = (device.clone(), a.tile, a.queries, a.op.clone());
            let scale = 1.0 / (a.head_dim as f64).sqrt();
            (
                4.0 * (a.heads * a.queries * a.keys * a.head_dim) as f64 / 1e9,
                Box::new(move || {
                    if op == "attention" {
                        let _out = sdpa(q.clone(), k.clone(), v.clone());
                        return sync(&d).map_err(|e| e.to_string());
                    }
                    if op == "attention-burn" {
                        let _out = kernels::reference::attention(q.clone(), k.clone(), v.clone());
                        return sync(&d).map_err(|e| e.to_string());
                    }
                    // Two matmuls and a softmax per tile of `--tile` queries.
                    let kt = k.clone().swap_dims(2, 3);
                    let mut start = 0;
                    while start < queries {
                        let n = tile.min(queries - start);
                        let s = q
                            .clone()
                            .narrow(2, start, n)
                            .mul_scalar(scale)
                            .matmul(kt.clone());
                        let _out = softmax(s, 3).matmul(v.clone());
                        start += n;
                    }
                    sync(&d).map_err(|e| e.to_string())
                }),
            )
        }
        other => {
            return Err(format!(
                "--op {other:?}: expected matmul, attention, attention-burn or attention-tiled"
            ));
        }
    };
    println!(
        "{} on {}, {} threads, {gflop:.1} GFLOP per run",
        a.op,
        selected.info,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    op()?;
    let mut seconds = Vec::new();
    for _ in 0..a.repeat {
        let start = Instant::now();
        op()?;
        let s = start.elapsed().as_secs_f64();
        println!("  {s:.3} s, {:.1} GFLOP/s", gflop / s);
        seconds.push(s);
    }
    measure::result_line(&seconds, serde_json::json!({ "gflop": gflop }));
    Ok(())
}
