//! TAEHV fixtures: `taehv_<x>_io.safetensors` (decoder outputs, against the weights
//! `taehv_<x>.safetensors`) and the weights file itself.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};
use sf_vae::VideoDecoder;
use sf_vae::taehv::{Taehv, TaehvDecoder, config_from_safetensors_metadata, load_taehv};

use super::ParityReport;
use crate::PipelineError;

fn load(weights: &Path, device: &Device) -> Result<Taehv, PipelineError> {
    let config = config_from_safetensors_metadata(weights)?;
    Ok(load_taehv(weights, &config, device, Dtype::F32)?)
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

/// Whole-video raw and upstream decodes, and the upstream decode streamed latent by latent.
fn io_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let weights = fx
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .join(file.replace("_io.safetensors", ".safetensors"));
    let model = load(&weights, device)?;
    let latents = fx.tensor::<5>("latents_ntchw", device)?;
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
    let raw = model.decode_raw(latents.clone())?;
    push("decoded_raw", raw, "decoded_raw")?;
    let video = model.decode_video(latents.clone())?;
    push("decoded_upstream", video, "decoded_upstream")?;
    let mut decoder = TaehvDecoder::new(model);
    // The streaming decoder takes the rollout's `[B, C, F, h, w]`.
    let frames = (0..latents.dims()[1])
        .map(|i| decoder.decode_chunk(latents.clone().narrow(1, i, 1).swap_dims(1, 2)))
        .collect::<Result<Vec<_>, _>>()?;
    push(
        "decoded_upstream (streamed, 1 latent per chunk)",
        Tensor::cat(frames, 1),
        "decoded_upstream",
    )
}

/// Weight files: every tensor present with the configured shape, loaded.
fn weights_check(fx: &Fixture, device: &Device, report: &mut ParityReport) {
    let file = fx.file_name();
    let check = "loads: every key, every shape";
    report.results.push(match load(fx.path(), device) {
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
