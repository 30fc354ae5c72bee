//! Criterion benchmarks of sf-device's own Flex kernels against burn's compositions of the same
//! operations (what every other device runs), at the real models' shapes.
//!
//! ```text
//! cargo bench --features wgpu --bench kernels [-- <filter>]
//! ```
//!
//! - `attention/{ours,burn}/12x{1560,4680}x...x128`: one latent frame and one 3-frame chunk
//!   of 480x832 attending to themselves (12 heads of 128), f32 and bf16;
//! - `gelu_tanh/{ours,burn}`: the FFN activation of one chunk, `[1, 4680, 8960]`;
//! - `silu/{ours,burn}`: a Wan VAE activation, 96 channels x 4 frames of 240x416;
//! - `conv3d/{ours,burn}`: a Wan VAE decoder 3x3x3 convolution at the latent resolution of
//!   480x832 (384 channels, one latent frame plus its two cached frames);
//! - `conv2d/{ours,burn}`: a TAEHV 3x3 convolution (64 channels) on one 240x416 frame.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sf_device::kernels::{self, reference};

fn normal<const D: usize>(shape: [usize; D]) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
}

fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.sample_size(10);
    for (dtype_name, dtype) in [("f32", FloatDType::F32), ("bf16", FloatDType::BF16)] {
        for (lq, lk) in [(1560, 1560), (4680, 4680)] {
            // The DiT's layout: [B, L, H, D] projections viewed as [B, H, L, D].
            let view = |l: usize| normal([1, l, 12, 128]).cast(dtype).swap_dims(1, 2);
            let (q, k, v) = (view(lq), view(lk), view(lk));
            let id = format!("{dtype_name}/12x{lq}x{lk}x128");
            group.bench_function(BenchmarkId::new("ours", &id), |b| {
                b.iter(|| kernels::attention(q.clone(), k.clone(), v.clone()))
            });
            group.bench_function(BenchmarkId::new("burn", &id), |b| {
                b.iter(|| reference::attention(q.clone(), k.clone(), v.clone()))
            });
        }
    }
    group.finish();
}

fn gelu(c: &mut Criterion) {
    let mut group = c.benchmark_group("gelu_tanh");
    group.sample_size(10);
    let x = normal([1, 4680, 8960]);
    // A fresh (unshared) input per iteration, as in the FFN, so ours may work in place.
    group.bench_function("ours/1x4680x8960", |b| {
        b.iter_batched(
            || x.clone() * 1.0,
            kernels::gelu_tanh,
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("burn/1x4680x8960", |b| {
        b.iter_batched(
            || x.clone() * 1.0,
            reference::gelu_tanh,
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("silu");
    group.sample_size(10);
    // A Wan VAE activation: 96 channels, 4 frames of 240x416.
    let x = normal([1, 96, 4, 240, 416]);
    group.bench_function("ours/96x4x240x416", |b| {
        b.iter_batched(
            || x.clone() * 1.0,
            kernels::silu,
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("burn/96x4x240x416", |b| {
        b.iter_batched(
            || x.clone() * 1.0,
            reference::silu,
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3d");
    group.sample_size(10);
    let x = normal([1, 384, 3, 60, 104]);
    let w = normal([384, 384, 3, 3, 3]) * 0.02;
    let b = normal([384]);
    let options = ConvOptions::new([1, 1, 1], [0, 1, 1], [1, 1, 1], 1);
    group.bench_function("ours/384x3x60x104", |bench| {
        bench.iter(|| kernels::conv3d(x.clone(), w.clone(), Some(b.clone()), options.clone()))
    });
    group.bench_function("burn/384x3x60x104", |bench| {
        bench.iter(|| reference::conv3d(x.clone(), w.clone(), Some(b.clone()), options.clone()))
    });
    group.finish();

    let mut group = c.benchmark_group("conv2d");
    group.sample_size(10);
    let x = normal([1, 64, 240, 416]);
    let w = normal([64, 64, 3, 3]) * 0.05;
    let b = normal([64]);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    group.bench_function("ours/64x240x416", |bench| {
        bench.iter(|| kernels::conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone()))
    });
    group.bench_function("burn/64x240x416", |bench| {
        bench.iter(|| reference::conv2d(x.clone(), w.clone(), Some(b.clone()), options.clone()))
    });
    group.finish();
}

criterion_group!(benches, attention, gelu, conv);
criterion_main!(benches);
