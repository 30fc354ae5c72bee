//! Wan VAE fixtures: `vae_<x>_io.safetensors` (decode, streamed decode, encode and the rollout
//! decode for every convolution strategy; against the weights `vae_<x>.safetensors` and, if
//! present, `vae_<x>.pth`) and the weights file itself.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_vae::wan::{ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, load_wan_vae};

use super::{CheckError, Checks};
use crate::compare::{CheckResult, Tolerance, compare_tensor};
use crate::configs;
use crate::fixture::{Fixture, file_name};

/// Every convolution strategy.
pub const STRATEGIES: [ConvStrategy; 4] = [
    ConvStrategy::Auto,
    ConvStrategy::Conv3d,
    ConvStrategy::Conv2dSum,
    ConvStrategy::Conv2dStacked,
];

fn load(path: &Path, config: &WanVaeConfig, device: &Device) -> Result<WanVae, CheckError> {
    Ok(load_wan_vae(
        path,
        config,
        VaeParts::Full,
        device,
        Dtype::F32,
    )?)
}

/// `vae_<x>_io.safetensors` with every strategy of [`STRATEGIES`].
pub fn io(fx: &Fixture, device: &Device) -> Checks {
    io_with(fx, device, &STRATEGIES)
}

/// `vae_<x>_io.safetensors` with the given strategies: `video_raw`, `video`,
/// `video_first_latent_frame_raw`, `video_raw` streamed one latent frame per call, `encode.mu`
/// and `rollout_video` (optional) for each; `video_raw` from `vae_<x>.pth` (optional).
pub fn io_with(fx: &Fixture, device: &Device, strategies: &[ConvStrategy]) -> Checks {
    Checks::run(&fx.file_name(), |c| run_io(fx, device, strategies, c))
}

fn run_io(
    fx: &Fixture,
    device: &Device,
    strategies: &[ConvStrategy],
    c: &mut Checks,
) -> Result<(), CheckError> {
    let weights = fx.sibling(&fx.file_name().replace("_io.safetensors", ".safetensors"));
    let config = configs::wan_vae(&weights)?;
    let model = load(&weights, &config, device)?;
    let tol = Tolerance::F32;
    // The fixtures' tensors are in the VAE's layout `[B, C, T, H, W]`.
    let z = fx.tensor::<5>("z", device)?;
    let video = fx.tensor::<5>("encode.video", device)?;
    for &strategy in strategies {
        let options = DecodeOptions {
            strategy,
            zero_history: false,
        };
        let raw = |m: &WanVae, z: Tensor<5>| {
            let mut cache = options.new_cache(device);
            m.decode_step(z, &mut cache)
        };
        let label = |name: &str| format!("{name} ({strategy:?})");
        let mut push = |check: String, out: Tensor<5>, name: &str| -> Result<(), CheckError> {
            c.push(compare_tensor(fx, &check, out, name, tol)?);
            Ok(())
        };
        push(label("video_raw"), raw(&model, z.clone())?, "video_raw")?;
        push(label("video"), model.decode(z.clone(), options)?, "video")?;
        let name = "video_first_latent_frame_raw";
        push(label(name), raw(&model, z.clone().narrow(2, 0, 1))?, name)?;
        // Streamed one latent frame per call with a persistent cache.
        let mut cache = options.new_cache(device);
        let frames = (0..z.dims()[2])
            .map(|i| model.decode_step(z.clone().narrow(2, i, 1), &mut cache))
            .collect::<Result<Vec<_>, _>>()?;
        let streamed = Tensor::cat(frames, 2);
        push(
            label("video_raw, streamed 1 latent/call"),
            streamed,
            "video_raw",
        )?;
        let encoded = model.encode(video.clone(), strategy)?;
        push(label("encode.mu"), encoded, "encode.mu")?;
        if fx.has("rollout_latents") {
            let latents = fx.tensor::<5>("rollout_latents", device)?;
            let out = model.decode(latents, options)?;
            push(label("rollout_video"), out, "rollout_video")?;
        } else {
            c.skip(label("rollout_video"), "no rollout_latents in the file");
        }
    }
    let pth = weights.with_extension("pth");
    let label = format!("video_raw from {}", file_name(&pth));
    if pth.exists() {
        let from_pth = load(&pth, &config, device)?;
        let mut cache = DecodeOptions::default().new_cache(device);
        let out = from_pth.decode_step(z, &mut cache)?;
        c.push(compare_tensor(fx, &label, out, "video_raw", tol)?);
    } else {
        c.skip(label, "no such file next to the weights");
    }
    Ok(())
}

/// A `vae_<x>.safetensors` weight file: every tensor present with the configured shape; it
/// loads.
pub fn weights(fx: &Fixture, device: &Device) -> Checks {
    let file = fx.file_name();
    let outcome = configs::wan_vae(fx)
        .map_err(CheckError::from)
        .and_then(|config| load(fx.path(), &config, device).map(drop));
    let mut c = Checks::new(&file);
    c.push(CheckResult::from_outcome(
        &file,
        "loads: every key, every shape",
        outcome,
    ));
    c
}
