//! One 512-token prompt through the full-size umT5-XXL encoder (random bf16 weights written once
//! to a temporary safetensors file), with its time and peak memory.
//!
//! ```text
//! cargo run --features wgpu --example umt5_real_size -- [--mode streaming|resident]
//!     [--layers 24] [--file /tmp/sf-umt5-xxl-random.safetensors] [--compute f32|bf16]
//!     [--vocab 256384] [--device cpu|wgpu|...] [--delete] [--repeat 1]
//! ```
//!
//! `--help` lists the flags; a bad flag exits with code 2.
//!
//! `streaming` reads one block at a time from the file ([`LayerStreamingEncoder`]); `resident`
//! loads every weight in bf16 (11.4 GB) and upcasts one matrix at a time ([`UmT5Encoder`]). The
//! file (11.4 GB at 24 layers) is written only if it is absent or does not match the
//! configuration, so both modes can be measured in separate processes; `--delete` removes it at
//! the end. `--layers` and `--vocab` shrink the model (for machines without 11.4 GB of disk:
//! the per-block memory of streaming does not depend on either). Run real-size measurements
//! under `flock /tmp/sf-bigmem.lock`.

#[path = "common/measure.rs"]
mod measure;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use sf_device::safetensors;
use sf_device::{DeviceRequest, Dtype, Precision, human_bytes, peak_rss_bytes, select, sync};
use sf_pipeline::sf_text::{
    LayerStreamingEncoder, Tokenized, UmT5Config, UmT5Encoder, check_checkpoint, expected_keys,
};

/// One 512-token prompt through the full-size umT5-XXL encoder (random bf16 weights), with its
/// time and peak memory.
#[derive(Parser, Debug)]
#[command(name = "umt5_real_size")]
struct Args {
    /// streaming (one block at a time from the file) or resident (every weight loaded in bf16)
    #[arg(long, value_name = "MODE", default_value = "streaming",
          value_parser = ["streaming", "resident"])]
    mode: String,
    /// Encoder blocks [default: 24, the real model's]
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// Vocabulary size [default: 256384, the real model's]
    #[arg(long, value_name = "N")]
    vocab: Option<usize>,
    /// The random weights, written if absent or not matching the configuration
    #[arg(long, value_name = "FILE", default_value_os_t = default_file())]
    file: PathBuf,
    /// Compute dtype (the weights are stored in bf16): f32, f16 or bf16
    #[arg(long, value_name = "DTYPE", default_value = "f32", value_parser = measure::parse_dtype)]
    compute: Dtype,
    /// Device: auto, cpu, metal, cuda[:N], vulkan or wgpu (SF_DEVICE is not read)
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = measure::parse_device)]
    device: DeviceRequest,
    /// Remove the weights file at the end
    #[arg(long)]
    delete: bool,
    /// Timed encodes of the prompt (at least 1)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = measure::at_least_one)]
    repeat: usize,
}

/// `--file`'s default: `sf-umt5-xxl-random.safetensors` in the temporary directory.
fn default_file() -> PathBuf {
    std::env::temp_dir().join("sf-umt5-xxl-random.safetensors")
}

/// A xorshift generator: uniform values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Writes random bf16 weights for `config`: norm gains near 1, linears scaled by 1/√fan-in.
fn write_random(path: &Path, config: &UmT5Config) -> Result<(), String> {
    let keys = expected_keys(config);
    let declared: Vec<(String, &str, Vec<usize>)> = keys
        .iter()
        .map(|(k, s)| (k.clone(), "BF16", s.clone()))
        .collect();
    let mut writer = safetensors::Writer::create(path, &declared, &BTreeMap::new())
        .map_err(|e| e.to_string())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (name, shape) in &keys {
        let n: usize = shape.iter().product();
        let (offset, scale) = if name.ends_with("norm1.weight")
            || name.ends_with("norm2.weight")
            || name == "norm.weight"
        {
            (1.0, 0.1)
        } else if name.contains("embedding") {
            (0.0, 1.0)
        } else {
            (0.0, 1.0 / (shape[1] as f32).sqrt())
        };
        writer
            .write_chunks(name, 2 * n as u64, |out: &mut dyn Write| {
                let mut buf = Vec::with_capacity(1 << 22);
                let mut left = n;
                while left > 0 {
                    let m = left.min(1 << 21);
                    buf.clear();
                    for _ in 0..m {
                        let v = offset + scale * rng.next();
                        buf.extend_from_slice(&burn::tensor::bf16::from_f32(v).to_le_bytes());
                    }
                    out.write_all(&buf)?;
                    left -= m;
                }
                Ok(())
            })
            .map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    measure::exit(measure(Args::parse()))
}

fn measure(args: Args) -> Result<(), String> {
    let mut config = UmT5Config::umt5_xxl();
    if let Some(layers) = args.layers {
        config.num_layers = layers;
    }
    if let Some(vocab) = args.vocab {
        config.vocab = vocab;
    }
    let selected = select(&args.device).map_err(|e| e.to_string())?;
    let device = selected.device.clone();
    println!(
        "device: {}; umT5-XXL with {} layers, {} parameters ({} in bf16)",
        selected.info,
        config.num_layers,
        config.num_params(),
        human_bytes(2 * config.num_params())
    );

    if check_checkpoint(&args.file, &config).is_err() {
        println!("writing random bf16 weights to {} ...", args.file.display());
        let t = Instant::now();
        write_random(&args.file, &config)?;
        println!(
            "  written in {:.1} s; {}",
            t.elapsed().as_secs_f64(),
            measure::rss()
        );
    } else {
        println!("reusing {}", args.file.display());
    }

    let text_len = 512;
    let ids: Vec<u32> = (0..text_len as u32 - 1)
        .map(|i| 5 + (i * 7919) % (config.vocab as u32 - 5))
        .chain([1])
        .collect();
    let prompt = Tokenized {
        cleaned: "random ids".into(),
        mask: vec![1; text_len],
        len: text_len,
        ids,
        truncated_from: None,
    };
    let precision = Precision {
        storage: Dtype::Bf16,
        compute: args.compute,
    };
    let start = Instant::now();
    let mut seconds = Vec::new();
    let mut timed = |encode: &dyn Fn() -> Result<burn::tensor::Tensor<3>, String>| {
        let mut out = None;
        for _ in 0..args.repeat {
            let t = Instant::now();
            out = Some(encode()?);
            sync(&device).map_err(|e| e.to_string())?;
            seconds.push(t.elapsed().as_secs_f64());
            println!(
                "encoded in {:.1} s; {}",
                t.elapsed().as_secs_f64(),
                measure::rss()
            );
        }
        out.ok_or_else(|| "nothing encoded".to_string())
    };
    let out = if args.mode == "streaming" {
        let encoder = LayerStreamingEncoder::open(&args.file, &config, &device, precision)
            .map_err(|e| e.to_string())?;
        println!(
            "opened in {:.1} s; {}",
            start.elapsed().as_secs_f64(),
            measure::rss()
        );
        timed(&|| {
            encoder
                .encode(std::slice::from_ref(&prompt))
                .map_err(|e| e.to_string())
        })?
    } else {
        let encoder = UmT5Encoder::load(&args.file, &config, &device, precision)
            .map_err(|e| e.to_string())?;
        println!(
            "loaded in {:.1} s; {}",
            start.elapsed().as_secs_f64(),
            measure::rss()
        );
        let out = timed(&|| {
            encoder
                .encode(std::slice::from_ref(&prompt))
                .map_err(|e| e.to_string())
        })?;
        drop(encoder);
        println!("encoder dropped; {}", measure::rss());
        out
    };
    let values = sf_testkit::to_f32s(out.clone());
    let finite = values.iter().all(|v| v.is_finite());
    let mean_abs = values.iter().map(|v| v.abs() as f64).sum::<f64>() / values.len() as f64;
    println!(
        "output {:?}, finite {finite}, mean |x| {mean_abs:.4}; total {:.1} s; peak rss {}",
        out.dims(),
        start.elapsed().as_secs_f64(),
        peak_rss_bytes().map_or("?".into(), human_bytes)
    );
    if args.delete {
        std::fs::remove_file(&args.file).map_err(|e| e.to_string())?;
        println!("deleted {}", args.file.display());
    }
    measure::result_line(&seconds, serde_json::json!({ "mode": args.mode }));
    if finite {
        Ok(())
    } else {
        Err("the output has NaN or Inf".into())
    }
}
