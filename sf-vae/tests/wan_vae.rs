//! Wan2.1 VAE: parity with `fixtures/vae_tiny_io.safetensors` ([`sf_testkit::checks::wan_vae`]:
//! decode, streaming, encode) for every convolution strategy on Flex and the default one on
//! wgpu, streaming equals offline for any chunking, the zero-history variant, bf16 compute, and
//! clear errors for bad inputs.

use crate::common;
use crate::common::wan::{config, fixture, io, load, max_abs_diff, tensor};

use burn::tensor::{Device, Tensor};
use sf_device::{Dtype, cast_module};
use sf_testkit::checks::wan_vae::{self, STRATEGIES};
use sf_testkit::{Tolerance, compare_f32, to_f32s};
use sf_vae::wan::{
    ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, WanVaeDecoder, load_wan_vae,
};
use sf_vae::{VaeError, VideoDecoder};

#[test]
fn decode_and_encode_match_fixture_on_flex() {
    // Every strategy: video_raw, video, the first latent frame, streamed, encode.mu, the
    // `global` rollout's latents decoded and clamped; the .pth weights.
    wan_vae::io(&io(), &Device::flex()).assert_complete();
    wan_vae::weights(
        &sf_testkit::open_workspace_fixture("vae_tiny.safetensors"),
        &Device::flex(),
    )
    .assert_complete();
}

#[cfg(feature = "wgpu")]
#[test]
fn decode_and_encode_match_fixture_on_wgpu() {
    let Some(device) = common::wgpu_device() else {
        return;
    };
    wan_vae::io_with(&io(), &device, &[ConvStrategy::Auto]).assert_complete();
}

/// Decodes `latents` `[B, C, F, h, w]` through a [`WanVaeDecoder`] in chunks of the given sizes.
fn stream(
    vae: WanVae,
    latents: &Tensor<5>,
    sizes: &[usize],
    options: DecodeOptions,
) -> Vec<Tensor<5>> {
    let mut decoder = WanVaeDecoder::new(vae, options);
    assert_eq!(decoder.kind(), sf_vae::DecoderKind::WanVae);
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let chunk = latents.clone().narrow(2, start, n);
            start += n;
            decoder.decode_chunk(chunk).unwrap()
        })
        .collect()
}

#[test]
fn streaming_equals_offline_for_any_chunking() {
    let device = Device::flex();
    let fx = io();
    let latents = tensor(&fx, "rollout_latents", &device);
    let frames = latents.dims()[2];
    for strategy in STRATEGIES {
        let options = DecodeOptions {
            strategy,
            zero_history: false,
        };
        let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
        // The offline decode is `[B, 3, T, H, W]`; the streamed frames are `[B, T, 3, H, W]`.
        let offline = ((vae.decode(latents.clone(), options).unwrap() + 1.0) / 2.0).swap_dims(1, 2);
        assert_eq!(offline.dims()[1], 1 + 4 * (frames - 1));
        let plans: Vec<Vec<usize>> = vec![vec![1; frames], vec![2; frames / 2], vec![2, 1, 3]];
        for sizes in plans {
            assert_eq!(sizes.iter().sum::<usize>(), frames, "{sizes:?}");
            let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
            let chunks = stream(vae, &latents, &sizes, options);
            for (i, (chunk, n)) in chunks.iter().zip(&sizes).enumerate() {
                let want = if i == 0 { 1 + 4 * (n - 1) } else { 4 * n };
                assert_eq!(
                    chunk.dims()[1],
                    want,
                    "{strategy:?}: chunk {i} of {sizes:?}"
                );
            }
            let streamed = Tensor::cat(chunks, 1);
            let diff = max_abs_diff(streamed.clone(), offline.clone());
            println!("{strategy:?}, chunks {sizes:?}: max|streamed - offline| = {diff:e}");
            assert_eq!(diff, 0.0, "{strategy:?}: chunks {sizes:?}");
            let values = to_f32s(streamed);
            assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
}

#[test]
fn reset_starts_a_new_video() {
    let device = Device::flex();
    let fx = io();
    let z = tensor(&fx, "z", &device);
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let mut decoder = WanVaeDecoder::new(vae, DecodeOptions::default());
    let first = decoder.decode_chunk(z.clone()).unwrap();
    let second = decoder.decode_chunk(z.clone()).unwrap();
    assert_eq!(first.dims()[1], 9);
    assert_eq!(second.dims()[1], 12);
    decoder.reset();
    let again = decoder.decode_chunk(z).unwrap();
    assert_eq!(max_abs_diff(first, again), 0.0);
}

#[test]
fn zero_history_variant_keeps_frame_counts() {
    let device = Device::flex();
    let fx = io();
    let latents = tensor(&fx, "rollout_latents", &device);
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let exact = stream(vae, &latents, &[3, 3], DecodeOptions::default());
    let vae = load("vae_tiny.safetensors", VaeParts::DecoderOnly, &device);
    let zero_history = DecodeOptions {
        zero_history: true,
        ..DecodeOptions::default()
    };
    let zero = stream(vae, &latents, &[3, 3], zero_history);
    for (a, b) in exact.iter().zip(&zero) {
        assert_eq!(a.dims(), b.dims());
    }
    let values = to_f32s(Tensor::cat(zero.clone(), 1));
    assert!(
        values
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
    );
    // Its first frames use a different temporal context, so they differ from the exact decode.
    let diff = max_abs_diff(exact[0].clone(), zero[0].clone());
    println!("zero-history vs exact, first chunk: max|diff| = {diff:e}");
    assert!(diff > 1e-4, "the zero-history cache made no difference");
}

#[test]
fn bf16_compute_meets_the_bf16_bound() {
    // FORMAT.md §1: bf16 compute against f32 compute with the same bf16-rounded weights (never
    // bf16-rounded weights against the f32-weight fixture).
    let device = Device::flex();
    let z = tensor(&io(), "z", &device);
    let bf16 = load_wan_vae(
        fixture("vae_tiny.safetensors"),
        &config(),
        VaeParts::DecoderOnly,
        &device,
        Dtype::Bf16,
    )
    .unwrap();
    let f32 = cast_module(bf16.clone(), Dtype::F32);
    let options = DecodeOptions::default();
    let r = compare_f32(
        "vae_tiny.safetensors",
        "video, bf16 compute vs f32 compute (bf16 weights)",
        &to_f32s(bf16.decode(z.clone(), options).unwrap()),
        &to_f32s(f32.decode(z, options).unwrap()),
        Tolerance::BF16_COMPUTE,
    );
    println!("{r}");
    assert!(r.passed, "{r}");
}

#[test]
fn bad_inputs_are_errors() {
    let device = Device::flex();
    let vae = load("vae_tiny.safetensors", VaeParts::Full, &device);
    // Time-major latents ([B, F, C, h, w]) are not the layout the VAE takes.
    let wrong_channels = Tensor::<5>::zeros([1, 2, 16, 4, 6], &device);
    let err = vae
        .decode(wrong_channels, DecodeOptions::default())
        .unwrap_err();
    assert!(matches!(err, VaeError::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("[B, 16, F, h, w]"), "{err}");
    let two_frames = Tensor::<5>::zeros([1, 3, 2, 32, 48], &device);
    let err = vae.encode(two_frames, ConvStrategy::Auto).unwrap_err();
    assert!(err.to_string().contains("1 + 4k"), "{err}");
    let odd_size = Tensor::<5>::zeros([1, 3, 1, 30, 48], &device);
    assert!(vae.encode(odd_size, ConvStrategy::Auto).is_err());
    let bad = WanVaeConfig {
        z_dim: 8,
        ..WanVaeConfig::wan2_1()
    };
    assert!(matches!(bad.validate(), Err(VaeError::Config(_))));
}
