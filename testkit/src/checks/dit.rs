//! DiT fixtures: `dit_<x>_io.safetensors` (against the weights `dit_<x>.safetensors`), the
//! diffusers-named weights, weight files, and `selfforcing_<x>_io.safetensors` (the `.pt`
//! checkpoint its config names).

use std::path::Path;

use burn::tensor::{DType, Device, Tensor};
use sf_device::Dtype;
use sf_models::{CheckpointFormat, Rope, WanConfig, WanModel, load_wan_model};

use super::{CheckError, Checks, rollout};
use crate::compare::{CheckResult, Tolerance, compare_f32, compare_tensor};
use crate::configs;
use crate::fixture::{Fixture, FixtureError};

fn load(
    path: &Path,
    format: CheckpointFormat,
    config: &WanConfig,
    device: &Device,
    dtype: Dtype,
) -> Result<WanModel, CheckError> {
    Ok(load_wan_model(path, &format, config, device, dtype)?)
}

/// `t_uniform` for every latent frame of `x`.
fn uniform_t(fx: &Fixture, frames: usize) -> Result<Vec<f32>, CheckError> {
    let t = fx.f32s("t_uniform")?;
    let t = *t
        .first()
        .ok_or_else(|| CheckError::Other("t_uniform is empty".into()))?;
    Ok(vec![t; frames])
}

/// The forwards every DiT io file stores: `<prefix>out_uniform`,
/// `<prefix>out_per_frame_bidirectional` (optional) and `<prefix>out_block_causal`, with the
/// inputs of `io` (`x`, `context`, `t_uniform`, `t_frames`).
fn forwards(
    model: &WanModel,
    io: &Fixture,
    prefix: &str,
    nfpb: usize,
    device: &Device,
    c: &mut Checks,
) -> Result<(), CheckError> {
    let tol = Tolerance::F32;
    let x = io.tensor::<5>("x", device)?;
    let frames = x.dims()[2];
    let context = io.tensor::<3>("context", device)?;
    let t_frames = io.f32s("t_frames")?;
    let uniform = uniform_t(io, frames)?;
    let name = format!("{prefix}out_uniform");
    let out = model.forward(x.clone(), &uniform, context.clone(), None, 0)?;
    c.push(compare_tensor(io, &name, out, &name, tol)?);
    let name = format!("{prefix}out_per_frame_bidirectional");
    if io.has(&name) {
        let out = model.forward(x.clone(), &t_frames, context.clone(), None, 0)?;
        c.push(compare_tensor(io, &name, out, &name, tol)?);
    } else {
        c.skip(&name, "not in the file");
    }
    let name = format!("{prefix}out_block_causal");
    let out = model.forward_block_causal(x, &t_frames, context, nfpb)?;
    c.push(compare_tensor(io, &name, out, &name, tol)?);
    Ok(())
}

/// `dit_<x>_io.safetensors`: the forwards, the uniform forward's intermediates, the block-causal
/// forward with only the real context rows, and the RoPE table.
pub fn io(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run_io(fx, device, c))
}

fn run_io(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let weights = fx.sibling(&fx.file_name().replace("_io.safetensors", ".safetensors"));
    let config = configs::dit(&weights)?;
    let model = load(
        &weights,
        CheckpointFormat::WanSafetensors,
        &config,
        device,
        Dtype::F32,
    )?;
    let nfpb = fx.config_usize("num_frame_per_block")?;
    forwards(&model, fx, "", nfpb, device, c)?;
    intermediates(&model, fx, device, c)?;

    // Wan zero-pads a shorter context to text_len: the real rows alone give the same output.
    let real = fx
        .i64s("context_len")?
        .first()
        .copied()
        .ok_or_else(|| CheckError::Other("context_len is empty".into()))?;
    let context = fx.tensor::<3>("context", device)?;
    let real = usize::try_from(real)
        .ok()
        .filter(|r| *r <= context.dims()[1])
        .ok_or_else(|| CheckError::Other(format!("context_len {real} out of range")))?;
    let out = model.forward_block_causal(
        fx.tensor::<5>("x", device)?,
        &fx.f32s("t_frames")?,
        context.narrow(1, 0, real),
        nfpb,
    )?;
    let check = "out_block_causal, unpadded context rows";
    c.push(compare_tensor(
        fx,
        check,
        out,
        "out_block_causal",
        Tolerance::F32,
    )?);
    if fx.has("rope_freqs_real") {
        c.push(rope_table(fx, config.head_dim())?);
    } else {
        c.skip("rope_freqs_real", "not in the file");
    }
    Ok(())
}

fn intermediates(
    model: &WanModel,
    fx: &Fixture,
    device: &Device,
    c: &mut Checks,
) -> Result<(), CheckError> {
    let x = fx.tensor::<5>("x", device)?;
    let t = uniform_t(fx, x.dims()[2])?;
    let context = fx.tensor::<3>("context", device)?;
    let (_, inter) = model.forward_with_intermediates(x, &t, context, None, 0)?;
    // Stored per token, computed per frame: expand over each frame's tokens.
    let tokens = fx.config_usize("frame_seqlen")?;
    let per_token = |t: Tensor<3>| {
        let [b, f, w] = t.dims();
        t.reshape([b, f, 1, w])
            .expand([b, f, tokens, w])
            .reshape([b, f * tokens, w])
    };
    let mut outputs: Vec<(String, Option<Tensor<3>>)> = vec![
        ("inter.uniform.text_embedding".into(), inter.text_embedding),
        (
            "inter.uniform.time_embedding".into(),
            Some(per_token(inter.time_embedding)),
        ),
        (
            "inter.uniform.time_projection".into(),
            Some(per_token(inter.time_projection)),
        ),
    ];
    for (i, block) in inter.blocks.into_iter().enumerate() {
        outputs.push((format!("inter.uniform.blocks.{i}"), Some(block)));
    }
    outputs.push(("inter.uniform.head".into(), Some(inter.head)));
    let name = "inter.uniform.patch_embedding";
    if fx.has(name) {
        let out = inter.patch_embedding;
        c.push(compare_tensor(fx, name, out, name, Tolerance::F32)?);
    } else {
        c.skip(name, "not in the file");
    }
    for (name, out) in outputs {
        match out {
            Some(out) if fx.has(&name) => {
                c.push(compare_tensor(fx, &name, out, &name, Tolerance::F32)?);
            }
            Some(_) => c.skip(name, "not in the file"),
            None => c.push(CheckResult::error(&c.file.clone(), &name, "not computed")),
        }
    }
    Ok(())
}

/// `rope_freqs_real[pos, j]` = (cos, sin) of pair j at position pos on its own axis.
fn rope_table(fx: &Fixture, head_dim: usize) -> Result<CheckResult, CheckError> {
    let file = fx.file_name();
    let split: Vec<usize> = fx
        .config_field("rope_split_real")?
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize))
        .into_iter()
        .flatten()
        .collect();
    if Rope::split(head_dim).to_vec() != split {
        let note = format!(
            "split {:?} against rope_split_real {split:?}",
            Rope::split(head_dim)
        );
        return Ok(CheckResult::error(&file, "rope_freqs_real", note));
    }
    let rope = Rope::new(head_dim)?;
    let [positions, pairs, _]: [usize; 3] = fx
        .shape("rope_freqs_real")?
        .try_into()
        .map_err(|_| CheckError::Other("rope_freqs_real must be 3-D".into()))?;
    let (p0, p1) = (split[0] / 2, split[1] / 2);
    let mut ours = Vec::with_capacity(positions * pairs * 2);
    for pos in 0..positions {
        for j in 0..pairs {
            let a = if j < p0 {
                rope.angle(pos, 0, 0, j)
            } else if j < p0 + p1 {
                rope.angle(0, pos, 0, j)
            } else {
                rope.angle(0, 0, pos, j)
            };
            ours.push(a.cos() as f32);
            ours.push(a.sin() as f32);
        }
    }
    let reference = fx.f32s("rope_freqs_real")?;
    Ok(compare_f32(
        &file,
        "rope_freqs_real",
        &ours,
        &reference,
        Tolerance::F32,
    ))
}

/// `dit_<x>_diffusers.safetensors`: the diffusers-named weights give the outputs of
/// `dit_<x>_io.safetensors`.
pub fn diffusers(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| {
        let config = configs::dit(fx)?;
        let model = load(
            fx.path(),
            CheckpointFormat::DiffusersSafetensors,
            &config,
            device,
            Dtype::F32,
        )?;
        let io_name = fx
            .file_name()
            .replace("_diffusers.safetensors", "_io.safetensors");
        let io = Fixture::open(fx.sibling(&io_name))?;
        let nfpb = io.config_usize("num_frame_per_block")?;
        let mut from_io = Checks::new(io.file_name());
        forwards(&model, &io, "", nfpb, device, &mut from_io)?;
        for mut r in from_io.results {
            r.file = c.file.clone();
            r.check = format!("diffusers names: {}", r.check);
            c.push(r);
        }
        for s in from_io.skipped {
            c.skip(s.what, s.reason);
        }
        Ok(())
    })
}

/// A DiT weight file: every tensor present with the shape of its configuration; it loads.
pub fn weights(fx: &Fixture, device: &Device) -> Checks {
    let file = fx.file_name();
    let outcome = configs::dit(fx)
        .map_err(CheckError::from)
        .and_then(|config| {
            load(
                fx.path(),
                CheckpointFormat::WanSafetensors,
                &config,
                device,
                Dtype::F32,
            )
            .map(drop)
        });
    let mut c = Checks::new(&file);
    c.push(CheckResult::from_outcome(
        &file,
        "loads: every key, every shape",
        outcome,
    ));
    c
}

/// The configuration of a Self-Forcing checkpoint's DiT: the pickle stores none, so it is the
/// `dit` of the config (an object, or a weights file with metadata) or, without one, the DiT of
/// the rollout its `bf16_rollout` names (whose weights the EMA entry rounds).
fn selfforcing_config(fx: &Fixture) -> Result<WanConfig, CheckError> {
    let dit = &fx.config()["dit"];
    if dit.is_object() {
        return Ok(configs::dit(dit)?);
    }
    if let Some(weights) = dit.as_str() {
        return Ok(configs::dit(&fx.sibling(weights))?);
    }
    let no_config = || FixtureError::Config {
        origin: fx.file_name(),
        reason: "its metadata config names no DiT configuration ('dit' or 'bf16_rollout')".into(),
    };
    let name = fx.config()["bf16_rollout"].as_str().ok_or_else(no_config)?;
    let rollout = fx.sibling(&format!("rollout_{name}.safetensors"));
    let (origin, config) = configs::ConfigSource::config_json(&rollout)?;
    let weights = config["dit"].as_str().ok_or_else(|| FixtureError::Config {
        origin,
        reason: "its metadata config has no 'dit'".into(),
    })?;
    Ok(configs::dit(&fx.sibling(weights))?)
}

/// `selfforcing_<x>_io.safetensors`: both entries of the `.pt` checkpoint (bf16, upcast to f32)
/// give their forwards; the EMA entry gives the free-running rollout's latents and, on a device
/// with bf16, its uniform forward in bf16 compute within the bf16 bound.
pub fn selfforcing(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run_selfforcing(fx, device, c))
}

fn run_selfforcing(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let checkpoint = fx.sibling(fx.config_str("checkpoint")?);
    let config = selfforcing_config(fx)?;
    let nfpb = fx.config_usize("num_frame_per_block")?;
    for key in ["generator_ema", "generator"] {
        let format = CheckpointFormat::SelfForcingPt {
            top_level_key: key.into(),
        };
        let model = load(&checkpoint, format.clone(), &config, device, Dtype::F32)?;
        forwards(&model, fx, &format!("{key}."), nfpb, device, c)?;
        if key != "generator_ema" {
            continue;
        }
        match fx.config()["bf16_rollout"].as_str() {
            Some(name) => {
                let rollout_fx = Fixture::open(fx.sibling(&format!("rollout_{name}.safetensors")))?;
                let latents = rollout::free_running_latents(&model, &rollout_fx, device)?;
                let check = format!("{key}.rollout_{name}.latents");
                c.push(compare_tensor(fx, &check, latents, &check, Tolerance::F32)?);
            }
            None => c.skip(
                format!("{key}.rollout_*"),
                "the config names no bf16_rollout",
            ),
        }
        let check = format!("{key}.out_uniform (bf16 compute)");
        if !device.supports_dtype(DType::BF16) {
            c.skip(check, "the device has no bf16");
            continue;
        }
        let model = load(&checkpoint, format, &config, device, Dtype::Bf16)?;
        let x = fx.tensor::<5>("x", device)?;
        let t = uniform_t(fx, x.dims()[2])?;
        let out = model.forward(x, &t, fx.tensor::<3>("context", device)?, None, 0)?;
        let name = format!("{key}.out_uniform");
        c.push(compare_tensor(
            fx,
            &check,
            out,
            &name,
            Tolerance::BF16_COMPUTE,
        )?);
    }
    Ok(())
}
