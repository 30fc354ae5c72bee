//! Wan VAE fixtures: `vae_<x>_io.safetensors` (decode, streamed decode, encode, the rollout
//! decode; against the weights `vae_<x>.safetensors` and, if present, `vae_<x>.pth`) and the
//! weights file itself.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};
use sf_vae::VaeError;
use sf_vae::wan::{ConvStrategy, DecodeOptions, VaeParts, WanVae, WanVaeConfig, load_wan_vae};

use super::ParityReport;
use crate::PipelineError;

fn vae(err: VaeError) -> PipelineError {
    PipelineError::Config(err.to_string())
}

fn sibling(fx: &Fixture, name: &str) -> PathBuf {
    fx.path().parent().unwrap_or(Path::new(".")).join(name)
}

/// The configuration stored in the weights file's metadata.
fn config_of(weights: &Path) -> Result<WanVaeConfig, PipelineError> {
    WanVaeConfig::from_fixture_config(Fixture::open(weights)?.config()).map_err(vae)
}

fn load(path: &Path, config: &WanVaeConfig, device: &Device) -> Result<WanVae, PipelineError> {
    load_wan_vae(path, config, VaeParts::Full, device, Dtype::F32).map_err(vae)
}

/// Dispatches on the file name: `*_io.safetensors` holds outputs, anything else weights.
pub(super) fn checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    if fx.file_name().ends_with("_io.safetensors") {
        io_checks(fx, device, report)
    } else {
        weights_check(fx, device, report);
        Ok(())
    }
}

fn io_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let weights = sibling(fx, &file.replace("_io.safetensors", ".safetensors"));
    let config = config_of(&weights)?;
    let model = load(&weights, &config, device)?;
    let mut push = |check: &str, out: Tensor<5>, name: &str| -> Result<(), PipelineError> {
        report.results.push(compare_f32(
            &file,
            check,
            &to_f32s(out),
            &fx.f32s(name)?,
            Tolerance::F32,
        ));
        Ok(())
    };
    // The fixtures' tensors are in the VAE's layout `[B, C, T, H, W]`.
    let z = fx.tensor::<5>("z", device)?;
    let options = DecodeOptions::default();
    let raw = |m: &WanVae, z: Tensor<5>| {
        let mut cache = options.new_cache(device);
        m.decode_step(z, &mut cache).map_err(vae)
    };
    push("video_raw", raw(&model, z.clone())?, "video_raw")?;
    push(
        "video",
        model.decode(z.clone(), options).map_err(vae)?,
        "video",
    )?;
    push(
        "video_first_latent_frame_raw",
        raw(&model, z.clone().narrow(2, 0, 1))?,
        "video_first_latent_frame_raw",
    )?;
    // Streamed one latent frame per call with a persistent cache.
    let mut cache = options.new_cache(device);
    let frames = (0..z.dims()[2])
        .map(|i| model.decode_step(z.clone().narrow(2, i, 1), &mut cache))
        .collect::<Result<Vec<_>, _>>()
        .map_err(vae)?;
    push(
        "video_raw streamed 1 latent/call",
        Tensor::cat(frames, 2),
        "video_raw",
    )?;
    let video = fx.tensor::<5>("encode.video", device)?;
    push(
        "encode.mu",
        model.encode(video, ConvStrategy::Auto).map_err(vae)?,
        "encode.mu",
    )?;
    if fx.has("rollout_latents") {
        let latents = fx.tensor::<5>("rollout_latents", device)?;
        push(
            "rollout_video",
            model.decode(latents, options).map_err(vae)?,
            "rollout_video",
        )?;
    }
    let pth = weights.with_extension("pth");
    if pth.exists() {
        let from_pth = load(&pth, &config, device)?;
        let label = format!(
            "video_raw from {}",
            pth.file_name().unwrap_or_default().to_string_lossy()
        );
        push(&label, raw(&from_pth, z)?, "video_raw")?;
    }
    Ok(())
}

/// Weight files: every tensor present with the configured shape, loaded.
fn weights_check(fx: &Fixture, device: &Device, report: &mut ParityReport) {
    let file = fx.file_name();
    let check = "loads: every key, every shape";
    let result = config_of(fx.path()).and_then(|c| load(fx.path(), &c, device));
    report.results.push(match result {
        Ok(_) => CheckResult {
            file,
            check: check.into(),
            max_abs_diff: 0.0,
            bound: 0.0,
            passed: true,
            note: None,
        },
        Err(err) => CheckResult::error(&file, check, err),
    });
}
