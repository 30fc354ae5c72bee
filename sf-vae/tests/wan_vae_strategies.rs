//! The Wan VAE's convolution strategies: what `Auto` resolves to, the activation layout each
//! one uses, and that all three give the same frames and latents for odd sizes, a batch of two,
//! streaming with a zero-history cache, and encoding.

use crate::common::wan::load;

use burn::tensor::{Device, Distribution, Tensor};
use sf_testkit::{Tolerance, compare_f32, to_f32s};
use sf_vae::VideoDecoder;
use sf_vae::wan::{ConvStrategy, DecodeOptions, Layout, VaeParts, WanVae, WanVaeDecoder};

#[test]
fn auto_strategy_is_the_fastest_measured_per_backend() {
    // docs/decoders.md: burn-flex's conv3d beats both conv2d lowerings on the CPU.
    let flex = Device::flex();
    assert_eq!(ConvStrategy::Auto.resolve(&flex), ConvStrategy::Conv3d);
    assert_eq!(
        ConvStrategy::Conv2dSum.resolve(&flex),
        ConvStrategy::Conv2dSum
    );
    // The layout follows the strategy, and the cache resolves `Auto`.
    for (strategy, layout) in [
        (ConvStrategy::Auto, Layout::ChannelMajor),
        (ConvStrategy::Conv3d, Layout::ChannelMajor),
        (ConvStrategy::Conv2dSum, Layout::TimeMajor),
        (ConvStrategy::Conv2dStacked, Layout::TimeMajor),
    ] {
        assert_eq!(strategy.layout(&flex), layout, "{strategy:?}");
        let options = DecodeOptions {
            strategy,
            zero_history: false,
        };
        let cache = options.new_cache(&flex);
        assert_eq!(cache.layout(), layout, "{strategy:?}");
        assert_eq!(cache.strategy(), strategy.resolve(&flex));
    }
}

/// Offline raw decode, a streamed decode with the zero-history cache (chunks of 1 and 2
/// latents) and an encode, each with `strategy`, in channel-major order.
fn outputs(
    vae: &WanVae,
    latents: &Tensor<5>,
    video: &Tensor<5>,
    strategy: ConvStrategy,
) -> [(&'static str, Vec<f32>); 3] {
    let options = DecodeOptions {
        strategy,
        zero_history: false,
    };
    let mut cache = options.new_cache(&vae.device());
    let raw = vae.decode_step(latents.clone(), &mut cache).unwrap();
    let zero_history = DecodeOptions {
        strategy,
        zero_history: true,
    };
    let mut decoder = WanVaeDecoder::new(vae.clone(), zero_history);
    let streamed: Vec<Tensor<5>> = [(0, 1), (1, 2)]
        .into_iter()
        .map(|(start, n)| {
            decoder
                .decode_chunk(latents.clone().narrow(2, start, n))
                .unwrap()
        })
        .collect();
    let streamed = Tensor::cat(streamed, 1);
    let encoded = vae.encode(video.clone(), strategy).unwrap();
    [
        ("decode_step", to_f32s(raw)),
        ("decode_chunk, zero history", to_f32s(streamed)),
        ("encode", to_f32s(encoded)),
    ]
}

#[test]
fn every_strategy_gives_the_same_frames_for_odd_sizes() {
    let device = Device::flex();
    let vae = load("vae_tiny.safetensors", VaeParts::Full, &device);
    // Odd latent frames, height and width, and a batch of two.
    let latents = Tensor::<5>::random([2, 16, 3, 3, 5], Distribution::Normal(0.0, 1.0), &device);
    let video = Tensor::<5>::random([2, 3, 5, 24, 40], Distribution::Uniform(-1.0, 1.0), &device);
    let reference = outputs(&vae, &latents, &video, ConvStrategy::Conv3d);
    for (name, values) in &reference {
        let peak = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak > 1e-2, "{name}: the reference is all but zero");
    }
    for strategy in [ConvStrategy::Conv2dSum, ConvStrategy::Conv2dStacked] {
        let got = outputs(&vae, &latents, &video, strategy);
        for ((name, want), (_, values)) in reference.iter().zip(&got) {
            let r = compare_f32(
                "odd-sized random latents",
                &format!("{name}: {strategy:?} vs Conv3d"),
                values,
                want,
                Tolerance::F32,
            );
            println!("{r}");
            assert!(r.passed, "{r}");
        }
    }
}
