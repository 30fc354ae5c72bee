//! `load_decoder`, the one constructor of both decoders: each kind from its fixture weights,
//! streaming the rollout's `[B, C, F, h, w]` latents to the frames of the offline decode, and
//! clear errors for latents in another layout and for the other decoder's file.

use crate::common::wan;

use burn::tensor::{Device, Distribution, Tensor};
use sf_device::Dtype;
use sf_testkit::{Tolerance, compare_f32, to_f32s, workspace_fixtures};
use sf_vae::taehv::load_taehv;
use sf_vae::wan::{DecodeOptions, VaeParts};
use sf_vae::{DecoderConfigs, DecoderKind, VaeError, load_decoder};

fn configs() -> DecoderConfigs {
    DecoderConfigs {
        wan_vae: wan::config(),
        taehv: sf_testkit::configs::taehv(&weights(DecoderKind::Taehv)).unwrap(),
        ..DecoderConfigs::default()
    }
}

fn weights(kind: DecoderKind) -> std::path::PathBuf {
    workspace_fixtures().join(match kind {
        DecoderKind::WanVae => "vae_tiny.safetensors",
        DecoderKind::Taehv => "taehv_tiny.safetensors",
    })
}

/// The whole-video decode of `latents` `[B, C, F, h, w]` in `[0, 1]` as `[B, T, 3, H, W]`, by
/// the model itself rather than through `load_decoder`.
fn offline(kind: DecoderKind, latents: Tensor<5>, device: &Device) -> Tensor<5> {
    let configs = configs();
    match kind {
        DecoderKind::WanVae => {
            let vae = wan::load("vae_tiny.safetensors", VaeParts::DecoderOnly, device);
            let video = vae.decode(latents, DecodeOptions::default()).unwrap();
            ((video + 1.0) / 2.0).swap_dims(1, 2)
        }
        DecoderKind::Taehv => load_taehv(weights(kind), &configs.taehv, device, Dtype::F32)
            .unwrap()
            .decode_video(latents.swap_dims(1, 2))
            .unwrap(),
    }
}

#[test]
fn load_decoder_builds_either_kind() {
    let device = Device::flex();
    let latents = Tensor::<5>::random([1, 16, 3, 3, 5], Distribution::Normal(0.0, 1.0), &device);
    for kind in [DecoderKind::WanVae, DecoderKind::Taehv] {
        let mut decoder =
            load_decoder(kind, weights(kind), &configs(), &device, Dtype::F32).unwrap();
        assert_eq!(decoder.kind(), kind);
        let first = decoder
            .decode_chunk(latents.clone().narrow(2, 0, 1))
            .unwrap();
        let rest = decoder
            .decode_chunk(latents.clone().narrow(2, 1, 2))
            .unwrap();
        assert_eq!(first.dims(), [1, 1, 3, 24, 40], "{kind}");
        assert_eq!(rest.dims(), [1, 8, 3, 24, 40], "{kind}");
        let streamed = to_f32s(Tensor::cat(vec![first.clone(), rest], 1));
        assert!(streamed.iter().all(|v| (0.0..=1.0).contains(v)), "{kind}");
        let r = compare_f32(
            "load_decoder",
            &format!("{kind}: streamed = offline"),
            &streamed,
            &to_f32s(offline(kind, latents.clone(), &device)),
            Tolerance::F32,
        );
        println!("{r}");
        assert!(r.passed, "{r}");
        decoder.reset();
        let again = decoder.decode_chunk(latents.clone().narrow(2, 0, 1));
        assert_eq!(to_f32s(again.unwrap()), to_f32s(first), "{kind}: reset");
    }
}

#[test]
fn wrong_layouts_and_files_are_clear_errors() {
    let device = Device::flex();
    // TAEHV's own `[B, F, C, h, w]`, not the rollout's layout.
    let time_major = Tensor::<5>::zeros([1, 2, 16, 3, 5], &device);
    for kind in [DecoderKind::WanVae, DecoderKind::Taehv] {
        let mut decoder =
            load_decoder(kind, weights(kind), &configs(), &device, Dtype::F32).unwrap();
        let err = decoder.decode_chunk(time_major.clone()).unwrap_err();
        assert!(matches!(err, VaeError::InvalidInput(_)), "{kind}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("[B, 16, F, h, w]") && text.contains("[1, 2, 16, 3, 5]"),
            "{kind}: {text}"
        );
        // The other decoder's weights: every mismatch in one error.
        let other = match kind {
            DecoderKind::WanVae => DecoderKind::Taehv,
            DecoderKind::Taehv => DecoderKind::WanVae,
        };
        let err = load_decoder(kind, weights(other), &configs(), &device, Dtype::F32)
            .err()
            .unwrap();
        assert!(
            matches!(err, VaeError::Checkpoint { .. }),
            "{kind} from {other}'s file: {err}"
        );
    }
}
