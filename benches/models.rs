//! Criterion benchmarks of the model parts, per backend: attention at DiT shapes, one DiT block
//! and one chunk forward at a mid and at the real width, a Wan VAE and a TAEHV decode of one
//! latent frame, one umT5-XXL layer, and the whole tiny pipeline.
//!
//! ```text
//! cargo bench --features wgpu --bench models [-- <filter>]
//! SF_BENCH_WGPU=1 cargo bench --features wgpu --bench models -- wgpu
//! ```
//!
//! Flex (the CPU) always runs; the wgpu group runs when `SF_BENCH_WGPU=1` (a software Vulkan
//! such as lavapipe is 10-40x slower than Flex, so it is opt-in). Shapes are chosen so one
//! iteration takes at most a few seconds on a 2-core machine; real-size forwards (minutes on a
//! CPU) are measured side by side with PyTorch by `benches/compare_pytorch.py`.

use std::time::Duration;

use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sf_device::{BackendKind, DeviceRequest, Dtype, cast_module, select, sync};
use sf_pipeline::sf_models::sdpa;
use sf_pipeline::sf_models::{CacheConfig, WanConfig, WanModel};
use sf_pipeline::sf_text::{Tokenized, UmT5Config, UmT5Encoder};
use sf_pipeline::sf_vae::VideoDecoder;
use sf_pipeline::sf_vae::taehv::{Taehv, TaehvConfig, TaehvDecoder};
use sf_pipeline::sf_vae::wan::{DecodeOptions, VaeParts, WanVae, WanVaeConfig, WanVaeDecoder};
use sf_pipeline::{DecoderKind, GenerationRequest, ModelLocation, Pipeline};
use sf_testkit::tiny_models;

fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// The devices to measure: Flex, and wgpu when `SF_BENCH_WGPU=1`.
fn devices() -> Vec<(&'static str, Device)> {
    let mut out = vec![("flex", Device::flex())];
    if std::env::var("SF_BENCH_WGPU").is_ok_and(|v| v == "1") {
        match select(&DeviceRequest::backend(BackendKind::Wgpu)) {
            Ok(selected) => {
                eprintln!("wgpu benches on {}", selected.info);
                out.push(("wgpu", selected.device));
            }
            Err(e) => eprintln!("SF_BENCH_WGPU=1 but no wgpu device: {e}"),
        }
    }
    out
}

/// The 1.3B DiT config at `dim` width (head width 128 as in the real model) with `layers`.
fn dit_config(dim: usize, layers: usize) -> WanConfig {
    let mut c = WanConfig::wan2_1_t2v_1_3b();
    c.num_heads = dim / 128;
    c.ffn_dim = dim * 8960 / 1536;
    c.dim = dim;
    c.num_layers = layers;
    c
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sample_size(10);
    for (name, device) in devices() {
        // 12 heads of 128: one latent frame (1560 tokens) and one chunk (4680) at 480x832.
        for (lq, lk) in [(1560, 1560), (4680, 4680)] {
            let (q, k, v) = (
                normal([1, 12, lq, 128], &device),
                normal([1, 12, lk, 128], &device),
                normal([1, 12, lk, 128], &device),
            );
            group.bench_function(BenchmarkId::new(name, format!("12x{lq}x{lk}x128")), |b| {
                b.iter(|| {
                    let out = sdpa(q.clone(), k.clone(), v.clone());
                    sync(&device).unwrap();
                    out
                })
            });
        }
    }
    group.finish();
}

/// One forward of a `layers`-layer DiT on 3 latent frames of `h x w` latents, with the KV and
/// cross-attention caches already filled (the steady state of a denoising step).
fn dit(c: &mut Criterion, group_name: &str, layers: usize, lat: (usize, usize)) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, device) in devices() {
        for (width_name, dim) in [("mid768", 768), ("real1536", 1536)] {
            let config = dit_config(dim, layers);
            let model = cast_module(WanModel::new(&config, &device).unwrap(), Dtype::F32);
            let fs = (lat.0 / 2) * (lat.1 / 2);
            let mut caches = model.new_cache(CacheConfig::global(3, fs));
            let x = normal([1, 16, 3, lat.0, lat.1], &device);
            let t = [750.0f32; 3];
            let ctx = normal([1, config.text_len, config.text_dim], &device);
            let id = format!("{width_name}/{}tokens", 3 * fs);
            group.bench_function(BenchmarkId::new(name, id), |b| {
                b.iter(|| {
                    let out = model
                        .forward(x.clone(), &t, ctx.clone(), Some(&mut caches), 0)
                        .unwrap();
                    sync(&device).unwrap();
                    out
                })
            });
        }
    }
    group.finish();
}

fn dit_block(c: &mut Criterion) {
    // 3 latent frames at 240x416: 1170 tokens.
    dit(c, "dit_block", 1, (30, 52));
}

fn dit_chunk(c: &mut Criterion) {
    // All 30 layers, 3 latent frames at 128x208: 312 tokens.
    dit(c, "dit_chunk", 30, (16, 26));
}

/// One later latent frame (4 video frames) through a streaming decoder, after the first
/// latent (1 frame) has filled its history.
fn decoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("decoder_latent_frame");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for (name, device) in devices() {
        // The Wan VAE at 64x104 (a 480x832 latent frame takes minutes on a CPU); TAEHV at
        // 240x416 on Flex.
        let vae = cast_module(
            WanVae::new(&WanVaeConfig::wan2_1(), VaeParts::DecoderOnly, &device).unwrap(),
            Dtype::F32,
        );
        let taehv = cast_module(
            Taehv::new(&TaehvConfig::taew2_1(), false, &device).unwrap(),
            Dtype::F32,
        );
        let taehv_size = if name == "flex" { (30, 52) } else { (8, 13) };
        let cases: [(Box<dyn VideoDecoder>, (usize, usize)); 2] = [
            (
                Box::new(WanVaeDecoder::new(vae, DecodeOptions::default())),
                (8, 13),
            ),
            (Box::new(TaehvDecoder::new(taehv)), taehv_size),
        ];
        for (mut decoder, (h, w)) in cases {
            // One latent frame in the rollout's layout `[B, C, F, h, w]`.
            let latent = normal([1, 16, 1, h, w], &device);
            decoder.decode_chunk(latent.clone()).unwrap();
            let id = format!("{}/{}x{}/4frames", decoder.kind(), h * 8, w * 8);
            group.bench_function(BenchmarkId::new(name, id), |b| {
                b.iter(|| {
                    let out = decoder.decode_chunk(latent.clone()).unwrap();
                    sync(&device).unwrap();
                    out
                })
            });
        }
    }
    group.finish();
}

fn umt5_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("umt5_layer");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let device = Device::flex();
    let config = UmT5Config {
        num_layers: 1,
        vocab: 1024,
        ..UmT5Config::umt5_xxl()
    };
    let encoder = cast_module(UmT5Encoder::new(&config, &device).unwrap(), Dtype::F32);
    let prompt = Tokenized {
        cleaned: "random ids".into(),
        ids: (0..512u32).map(|i| 5 + (i * 7919) % 1000).collect(),
        mask: vec![1; 512],
        len: 512,
        truncated_from: None,
    };
    group.bench_function(BenchmarkId::new("flex", "4096wide/512tokens"), |b| {
        b.iter(|| {
            let out = encoder.encode(std::slice::from_ref(&prompt)).unwrap();
            sync(&device).unwrap();
            out
        })
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_tiny");
    group.sample_size(10);
    let (root, configs) = tiny_models::tiny_model_dir("bench");
    for decoder in [DecoderKind::Taehv, DecoderKind::WanVae] {
        let mut pipeline = Pipeline::builder()
            .device("cpu".parse().unwrap())
            .models(ModelLocation::Local(root.clone()))
            .configs(configs.clone())
            .decoder(decoder)
            .resolution(tiny_models::HEIGHT, tiny_models::WIDTH)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let request = GenerationRequest::new("a red fox in the snow").latent_frames(6);
        group.bench_function(
            BenchmarkId::new("flex", format!("{decoder}/6latents")),
            |b| b.iter(|| pipeline.generate(&request).unwrap()),
        );
    }
    group.finish();
    let _ = std::fs::remove_dir_all(root);
}

criterion_group!(
    benches, attention, dit_block, dit_chunk, decoders, umt5_layer, pipeline
);
criterion_main!(benches);
