//! DiT fixtures: `dit_*_io.safetensors` (with the weights file of the same stem), diffusers-named
//! weights, the Self-Forcing `.pt` checkpoint and its `selfforcing_*_io.safetensors` outputs.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};
use sf_models::loader::config_from_safetensors_metadata;
use sf_models::{CheckpointFormat, WanConfig, WanModel, load_wan_model};

use super::ParityReport;
use crate::PipelineError;

fn sibling(fx: &Fixture, name: &str) -> std::path::PathBuf {
    fx.path().parent().unwrap_or(Path::new(".")).join(name)
}

fn load(
    path: &Path,
    format: CheckpointFormat,
    config: &WanConfig,
    device: &Device,
) -> Result<WanModel, PipelineError> {
    Ok(load_wan_model(path, &format, config, device, Dtype::F32)?)
}

fn frame_t(fx: &Fixture, prefix: &str, frames: usize) -> Result<Vec<f32>, PipelineError> {
    let name = format!("{prefix}t_uniform");
    let t = fx.f32s(&name)?;
    let t = t
        .first()
        .copied()
        .ok_or_else(|| PipelineError::Shape(format!("{name} is empty")))?;
    Ok(vec![t; frames])
}

/// The three forwards every DiT io file stores, compared to `<prefix>out_*`.
fn forwards(
    model: &WanModel,
    refs: &Fixture,
    prefix: &str,
    label: &str,
    nfpb: usize,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let inputs = refs;
    let file = refs.file_name();
    let x = inputs.tensor::<5>("x", device)?;
    let frames = x.dims()[2];
    let context = inputs.tensor::<3>("context", device)?;
    let t_frames = inputs.f32s("t_frames")?;
    let uniform = model.forward(
        x.clone(),
        &frame_t(inputs, "", frames)?,
        context.clone(),
        None,
        0,
    )?;
    let mut push = |check: &str, out: Tensor<5>, name: &str| -> Result<(), PipelineError> {
        report.results.push(compare_f32(
            &file,
            &format!("{label}{check}"),
            &to_f32s(out),
            &refs.f32s(name)?,
            Tolerance::F32,
        ));
        Ok(())
    };
    push("out_uniform", uniform, &format!("{prefix}out_uniform"))?;
    let name = format!("{prefix}out_per_frame_bidirectional");
    if refs.has(&name) {
        let out = model.forward(x.clone(), &t_frames, context.clone(), None, 0)?;
        push("out_per_frame_bidirectional", out, &name)?;
    }
    let out = model.forward_block_causal(x, &t_frames, context, nfpb)?;
    push(
        "out_block_causal",
        out,
        &format!("{prefix}out_block_causal"),
    )
}

/// `dit_<x>_io.safetensors`: forwards and intermediates against the weights `dit_<x>.safetensors`.
pub(super) fn io_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let weights = sibling(fx, &file.replace("_io.safetensors", ".safetensors"));
    let config = config_from_safetensors_metadata(&weights)?;
    let model = load(&weights, CheckpointFormat::WanSafetensors, &config, device)?;
    let nfpb = fx.config()["num_frame_per_block"].as_u64().unwrap_or(3) as usize;
    forwards(&model, fx, "", "", nfpb, device, report)?;

    let x = fx.tensor::<5>("x", device)?;
    let frames = x.dims()[2];
    let t = frame_t(fx, "", frames)?;
    let (_, inter) =
        model.forward_with_intermediates(x, &t, fx.tensor::<3>("context", device)?, None, 0)?;
    let tol = Tolerance::F32;
    let mut push = |name: &str, values: Vec<f32>| -> Result<(), PipelineError> {
        if fx.has(name) {
            report
                .results
                .push(compare_f32(&file, name, &values, &fx.f32s(name)?, tol));
        }
        Ok(())
    };
    push(
        "inter.uniform.patch_embedding",
        to_f32s(inter.patch_embedding),
    )?;
    if let Some(text) = inter.text_embedding {
        push("inter.uniform.text_embedding", to_f32s(text))?;
    }
    // Stored per token, computed per frame: expand over each frame's tokens.
    let tokens_per_frame = fx.config()["frame_seqlen"].as_u64().unwrap_or(1) as usize;
    let per_token = |t: Tensor<3>| {
        let [b, f, w] = t.dims();
        to_f32s(
            t.reshape([b, f, 1, w])
                .expand([b, f, tokens_per_frame, w])
                .reshape([b, f * tokens_per_frame, w]),
        )
    };
    push(
        "inter.uniform.time_embedding",
        per_token(inter.time_embedding),
    )?;
    push(
        "inter.uniform.time_projection",
        per_token(inter.time_projection),
    )?;
    for (i, block) in inter.blocks.into_iter().enumerate() {
        push(&format!("inter.uniform.blocks.{i}"), to_f32s(block))?;
    }
    push("inter.uniform.head", to_f32s(inter.head))
}

/// `dit_<x>_diffusers.safetensors`: diffusers-named weights give the outputs of `dit_<x>_io`.
pub(super) fn diffusers_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let config = WanConfig::from_fixture_config(fx.config())?;
    let model = load(
        fx.path(),
        CheckpointFormat::DiffusersSafetensors,
        &config,
        device,
    )?;
    let io = Fixture::open(sibling(
        fx,
        &file.replace("_diffusers.safetensors", "_io.safetensors"),
    ))?;
    let nfpb = io.config()["num_frame_per_block"].as_u64().unwrap_or(3) as usize;
    let before = report.results.len();
    forwards(&model, &io, "", "diffusers names: ", nfpb, device, report)?;
    for r in &mut report.results[before..] {
        r.file = file.clone();
    }
    Ok(())
}

/// Weight files: every tensor present with the configured shape, loaded.
pub(super) fn weights_check(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let fx_path = fx.path();
    let file = fx.file_name();
    let result = config_from_safetensors_metadata(fx_path)
        .map_err(PipelineError::from)
        .and_then(|config| {
            load(fx_path, CheckpointFormat::WanSafetensors, &config, device).map(|_| ())
        });
    report.results.push(match result {
        Ok(()) => CheckResult {
            file,
            check: "loads: every key, every shape".into(),
            max_abs_diff: 0.0,
            bound: 0.0,
            passed: true,
            note: None,
        },
        Err(err) => CheckResult::error(&file, "loads: every key, every shape", err),
    });
    Ok(())
}

/// `selfforcing_<x>_io.safetensors`: both entries of the `.pt` checkpoint (bf16, upcast to f32).
pub(super) fn selfforcing_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let ckpt = fx.config()["checkpoint"]
        .as_str()
        .ok_or_else(|| PipelineError::Config("selfforcing io config lacks checkpoint".into()))?;
    let config = config_from_safetensors_metadata(sibling(fx, "dit_tiny.safetensors"))
        .or_else(|_| WanConfig::from_fixture_config(&fx.config()["dit"]))?;
    let nfpb = fx.config()["num_frame_per_block"].as_u64().unwrap_or(3) as usize;
    for key in ["generator_ema", "generator"] {
        let format = CheckpointFormat::SelfForcingPt {
            top_level_key: key.into(),
        };
        let model = load(&sibling(fx, ckpt), format, &config, device)?;
        forwards(
            &model,
            fx,
            &format!("{key}."),
            &format!("{key}."),
            nfpb,
            device,
            report,
        )?;
        if key == "generator_ema"
            && let Some(name) = fx.config()["bf16_rollout"].as_str()
        {
            let rollout = Fixture::open(sibling(fx, &format!("rollout_{name}.safetensors")))?;
            let latents = super::rollout::free_running_latents(&model, &rollout, device)?;
            report.results.push(compare_f32(
                &fx.file_name(),
                &format!("{key}.rollout_{name}.latents"),
                &to_f32s(latents),
                &fx.f32s(&format!("{key}.rollout_{name}.latents"))?,
                Tolerance::F32,
            ));
        }
    }
    Ok(())
}
