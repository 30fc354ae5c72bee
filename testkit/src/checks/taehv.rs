//! TAEHV fixtures: `taehv_<x>_io.safetensors` (decoder outputs, against the weights
//! `taehv_<x>.safetensors`) and the weights file itself.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_vae::VideoDecoder;
use sf_vae::taehv::{Taehv, TaehvDecoder, load_taehv};

use super::{CheckError, Checks};
use crate::compare::{CheckResult, Tolerance, compare_tensor};
use crate::configs;
use crate::fixture::Fixture;

fn load(weights: &Path, device: &Device) -> Result<Taehv, CheckError> {
    let config = configs::taehv(weights)?;
    Ok(load_taehv(weights, &config, device, Dtype::F32)?)
}

/// `taehv_<x>_io.safetensors`: the whole-video raw and upstream decodes, and both streamed one
/// latent frame per chunk through [`TaehvDecoder`] (which takes the rollout's
/// `[B, C, F, h, w]`; the fixture stores TAEHV's `[B, F, C, h, w]`).
pub fn io(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| {
        let weights = fx.sibling(&fx.file_name().replace("_io.safetensors", ".safetensors"));
        let model = load(&weights, device)?;
        let latents = fx.tensor::<5>("latents_ntchw", device)?;
        let tol = Tolerance::F32;
        let raw = model.decode_raw(latents.clone())?;
        c.push(compare_tensor(fx, "decoded_raw", raw, "decoded_raw", tol)?);
        let video = model.decode_video(latents.clone())?;
        let name = "decoded_upstream";
        c.push(compare_tensor(fx, name, video, name, tol)?);
        let mut decoder = TaehvDecoder::new(model);
        let chunk = |i: usize| latents.clone().narrow(1, i, 1).swap_dims(1, 2);
        let frames = latents.dims()[1];
        let video = (0..frames)
            .map(|i| decoder.decode_chunk(chunk(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let check = "decoded_upstream, streamed 1 latent per chunk";
        c.push(compare_tensor(fx, check, Tensor::cat(video, 1), name, tol)?);
        decoder.reset();
        let raw = (0..frames)
            .map(|i| decoder.decode_chunk_raw(chunk(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let check = "decoded_raw, streamed 1 latent per chunk";
        c.push(compare_tensor(
            fx,
            check,
            Tensor::cat(raw, 1),
            "decoded_raw",
            tol,
        )?);
        Ok(())
    })
}

/// A `taehv_<x>.safetensors` weight file: every tensor present with the configured shape; it
/// loads.
pub fn weights(fx: &Fixture, device: &Device) -> Checks {
    let file = fx.file_name();
    let mut c = Checks::new(&file);
    c.push(CheckResult::from_outcome(
        &file,
        "loads: every key, every shape",
        load(fx.path(), device).map(drop),
    ));
    c
}
