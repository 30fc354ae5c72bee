//! `rollout_*.safetensors`, for whatever configuration the file's metadata holds:
//!
//! - the scheduler table the file stores;
//! - replayed: the stored flow of each call is returned in order, so the rollout's own
//!   arithmetic (chunking, scheduler, re-noising, refresh passes) is checked free-running
//!   against every stored input, `x0` and the final latents;
//! - free-running with the real DiT (`config.dit`): every call's input, flow and x0, the
//!   latents, and the cache bookkeeping of every call (exact);
//! - teacher-forced: every call fed its stored input reproduces the stored flow, `calls.meta`,
//!   `calls.cache_frames_after` and `calls.attended_frames` (exact).
//!
//! Per-call comparisons are each bounded by their own reference ([`Aggregate`]).

use burn::tensor::{Device, Tensor, TensorData};
use sf_device::Dtype;
use sf_models::{CacheConfig, CheckpointFormat, SelfAttnCache, WanModel, load_wan_model};
use sf_pipeline::{CallKind, DitDenoiser, FlowMatchScheduler, LatentShape, Rollout, RolloutConfig};

use super::{CheckError, Checks};
use crate::compare::{
    Aggregate, CheckResult, Tolerance, compare_exact, compare_f32, compare_tensor,
};
use crate::configs;
use crate::fixture::{Fixture, to_f32s};
use crate::replay::{FixtureNoise, META_COLUMNS, Recording, ReplayDenoiser, call_names};

/// Every check of a rollout fixture (a prompt-switch file goes to [`super::switch`]).
pub fn checks(fx: &Fixture, device: &Device) -> Checks {
    if super::switch::is_switch_fixture(fx) {
        return super::switch::checks(fx, device);
    }
    let mut all = replay(fx, device);
    all.extend(Checks::run(&fx.file_name(), |c| {
        let model = load_dit(fx, device)?;
        run_free_running(fx, &model, device, c)?;
        run_teacher_forced(fx, &model, device, c)
    }));
    all
}

/// The scheduler table and the rollout replayed from the stored calls.
pub fn replay(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| run_replay(fx, device, c))
}

/// The rollout free-running with the real DiT.
pub fn free_running(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| {
        run_free_running(fx, &load_dit(fx, device)?, device, c)
    })
}

/// Every stored call fed to the real DiT.
pub fn teacher_forced(fx: &Fixture, device: &Device) -> Checks {
    Checks::run(&fx.file_name(), |c| {
        run_teacher_forced(fx, &load_dit(fx, device)?, device, c)
    })
}

/// The DiT the file's config names (`dit`), in f32.
pub(crate) fn load_dit(fx: &Fixture, device: &Device) -> Result<WanModel, CheckError> {
    let weights = fx.sibling(fx.config_str("dit")?);
    let config = configs::dit(&weights)?;
    let format = CheckpointFormat::WanSafetensors;
    Ok(load_wan_model(
        &weights,
        &format,
        &config,
        device,
        Dtype::F32,
    )?)
}

struct Inputs {
    config: RolloutConfig,
    shape: LatentShape,
    frames: usize,
    initial: Option<Tensor<5>>,
    context: Tensor<3>,
    n_init: usize,
}

fn inputs(fx: &Fixture, device: &Device) -> Result<Inputs, CheckError> {
    let [batch, channels, frames, height, width]: [usize; 5] = fx
        .shape("noise")?
        .try_into()
        .map_err(|_| CheckError::Other("noise must be 5-D".into()))?;
    let initial = if fx.has("initial_latent") {
        Some(fx.tensor::<5>("initial_latent", device)?)
    } else {
        None
    };
    let n_init = fx
        .config_field("init_plan")?
        .as_array()
        .map(Vec::len)
        .ok_or_else(|| CheckError::Other("config init_plan is not a list".into()))?;
    Ok(Inputs {
        config: configs::rollout(fx)?,
        shape: LatentShape {
            batch,
            channels,
            height,
            width,
        },
        frames,
        initial,
        context: fx.tensor::<3>("context", device)?,
        n_init,
    })
}

/// The stored name prefix of a recorded call of chunk `index`.
pub(crate) fn call_name(kind: CallKind, index: usize, n_init: usize) -> String {
    let j = index.saturating_sub(n_init);
    match kind {
        CallKind::Initial => format!("init{index}"),
        CallKind::Denoise(i) => format!("c{j}.s{i}"),
        CallKind::Refresh => format!("c{j}.refresh"),
        CallKind::Recache => format!("c{j}.recache"),
    }
}

/// Calls of `calls.meta` that are denoising steps (kind 1).
fn denoise_calls(fx: &Fixture) -> Result<usize, CheckError> {
    Ok(fx
        .i64s("calls.meta")?
        .chunks_exact(META_COLUMNS)
        .filter(|row| row[0] == 1)
        .count())
}

fn run_replay(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let file = fx.file_name();
    let tol = Tolerance::F32;
    let input = inputs(fx, device)?;
    let sched = FlowMatchScheduler::from_config(&input.config.scheduler)?;
    for (name, ours) in [
        ("sched_sigmas", sched.sigmas()),
        ("sched_timesteps", sched.timesteps()),
    ] {
        c.push(compare_f32(&file, name, ours, &fx.f32s(name)?, tol));
    }
    let mut replay = ReplayDenoiser::new(fx, device)?;
    let rollout = Rollout::new(
        &mut replay,
        FixtureNoise::new(fx),
        input.config,
        input.shape,
        input.frames,
        input.initial,
        device,
    )?
    .with_recording(true);
    c.push(compare_f32(
        &file,
        "replay: denoising_timesteps",
        rollout.timesteps(),
        &fx.f32s("denoising_timesteps")?,
        tol,
    ));
    let mut x0 = Aggregate::new(&file, "replay: every step's x0 (free-running)");
    let mut latents = Vec::new();
    for chunk in rollout {
        let chunk = chunk?;
        for call in chunk.calls.iter().filter(|_| chunk.generated) {
            if let Some(ours) = &call.x0 {
                let name = format!("{}.x0", call_name(call.kind, chunk.index, input.n_init));
                x0.add(compare_tensor(fx, &name, ours.clone(), &name, tol)?);
            }
        }
        latents.push(chunk.latents);
    }
    c.push(x0.finish(Some(denoise_calls(fx)?)));
    let mut calls = Aggregate::new(&file, "replay: every call's input");
    for r in replay.inputs.drain(..) {
        calls.add(r);
    }
    for mismatch in &replay.mismatches {
        calls.add(CheckResult::error(&file, "timesteps", mismatch));
    }
    let expected = replay.stored_calls() + replay.mismatches.len();
    c.push(calls.finish(Some(expected)));
    let latents = Tensor::cat(latents, 2);
    c.push(compare_tensor(
        fx,
        "replay: latents",
        latents,
        "latents",
        tol,
    )?);
    Ok(())
}

fn run_free_running(
    fx: &Fixture,
    model: &WanModel,
    device: &Device,
    c: &mut Checks,
) -> Result<(), CheckError> {
    let file = fx.file_name();
    let tol = Tolerance::F32;
    let input = inputs(fx, device)?;
    let (h, w) = (input.shape.height, input.shape.width);
    let mut dit = Recording::new(DitDenoiser::new(
        model,
        input.context,
        &input.config,
        h,
        w,
        None,
    )?);
    let rollout = Rollout::new(
        &mut dit,
        FixtureNoise::new(fx),
        input.config,
        input.shape,
        input.frames,
        input.initial,
        device,
    )?
    .with_recording(true);
    let mut calls = [
        Aggregate::new(&file, "DiT free-running: every call's input"),
        Aggregate::new(&file, "DiT free-running: every call's flow"),
        Aggregate::new(&file, "DiT free-running: every step's x0"),
    ];
    let mut latents = Vec::new();
    for chunk in rollout {
        let chunk = chunk?;
        for call in &chunk.calls {
            let prefix = call_name(call.kind, chunk.index, input.n_init);
            let input_name = crate::replay::input_name(&prefix);
            let flow_name = format!("{prefix}.flow");
            calls[0].add(compare_tensor(
                fx,
                &input_name,
                call.x.clone(),
                &input_name,
                tol,
            )?);
            calls[1].add(compare_tensor(
                fx,
                &flow_name,
                call.flow.clone(),
                &flow_name,
                tol,
            )?);
            if let Some(x0) = &call.x0 {
                let name = format!("{prefix}.x0");
                calls[2].add(compare_tensor(fx, &name, x0.clone(), &name, tol)?);
            }
        }
        latents.push(chunk.latents);
    }
    let stored = call_names(fx)?.len();
    let [inputs, flows, x0s] = calls;
    c.push(inputs.finish(Some(stored)));
    c.push(flows.finish(Some(stored)));
    c.push(x0s.finish(Some(denoise_calls(fx)?)));
    let latents = Tensor::cat(latents, 2);
    let check = "DiT free-running: latents";
    c.push(compare_tensor(fx, check, latents, "latents", tol)?);
    let ours: Vec<i64> = dit.rows.iter().flatten().copied().collect();
    let stored: Vec<i64> = fx
        .i64s("calls.meta")?
        .chunks_exact(META_COLUMNS)
        .flat_map(|r| r[6..].to_vec())
        .collect();
    c.push(compare_exact(
        &file,
        "DiT free-running: cache bookkeeping (calls.meta)",
        &ours,
        &stored,
    ));
    Ok(())
}

/// Free-running rollout of `fx` with `model`, from the stored noise and context.
pub(crate) fn free_running_latents(
    model: &WanModel,
    fx: &Fixture,
    device: &Device,
) -> Result<Tensor<5>, CheckError> {
    let input = inputs(fx, device)?;
    let (h, w) = (input.shape.height, input.shape.width);
    let dit = DitDenoiser::new(model, input.context, &input.config, h, w, None)?;
    Ok(Rollout::new(
        dit,
        FixtureNoise::new(fx),
        input.config,
        input.shape,
        input.frames,
        input.initial,
        device,
    )?
    .run_to_end()?)
}

fn run_teacher_forced(
    fx: &Fixture,
    model: &WanModel,
    device: &Device,
    c: &mut Checks,
) -> Result<(), CheckError> {
    let file = fx.file_name();
    let fs = fx.config_usize("frame_seqlen")?;
    let cache_config = CacheConfig {
        capacity_tokens: fx.config_usize("cache_capacity_tokens")?,
        sink_tokens: fx.config_usize("sink_tokens")?,
        rolling: configs::rollout(fx)?.local_attn_size.is_some(),
        ..CacheConfig::global(0, fs)
    };
    let context = fx.tensor::<3>("context", device)?;
    let mut caches = model.new_cache(cache_config);
    // Mirrors the cache with one channel holding 1 + the frame of each token (0 = empty).
    let mut frames_cache = SelfAttnCache::new(cache_config);
    let meta = fx.i64s("calls.meta")?;
    let attended = fx.i64s("calls.attended_frames")?;
    let held = fx.i64s("calls.cache_frames_after")?;
    let names = call_names(fx)?;
    let calls = names.len();
    if calls == 0 || attended.len() % calls != 0 || held.len() % calls != 0 {
        return Err(CheckError::Other(format!(
            "{calls} calls against {} attended and {} held entries",
            attended.len(),
            held.len()
        )));
    }
    let total_frames = attended.len() / calls;
    let slots = held.len() / calls;
    let mut flows = Aggregate::new(&file, "teacher-forced: every call's flow");
    let (mut plan_ours, mut plan_stored) = (Vec::new(), Vec::new());
    let (mut held_ours, mut attended_ours) = (Vec::new(), Vec::new());
    for (row, name) in meta.chunks_exact(META_COLUMNS).zip(&names) {
        let start = usize::try_from(row[3]).map_err(|_| CheckError::Other("start".into()))?;
        let x = fx.tensor::<5>(&crate::replay::input_name(name), device)?;
        let frames = x.dims()[2];
        let (g, l) = caches.counters();
        let t = fx.f32s(&format!("{name}.t"))?;
        let flow = model.forward(x, &t, context.clone(), Some(&mut caches), start)?;
        let flow_name = format!("{name}.flow");
        flows.add(compare_tensor(
            fx,
            &flow_name,
            flow,
            &flow_name,
            Tolerance::F32,
        )?);
        let plan = caches
            .last_plan()
            .ok_or_else(|| CheckError::Other(format!("{name}: no cache write plan")))?;
        plan_ours.extend(
            [
                start * fs,
                frames,
                g,
                l,
                plan.evicted,
                plan.local_end_after,
                plan.attn_start,
                plan.attn_end,
            ]
            .map(|v| v as i64),
        );
        plan_stored.extend([row[5], row[4]]);
        plan_stored.extend_from_slice(&row[6..]);

        // Which frame each cache slot holds, through the same tensor path.
        let n = frames * fs;
        let ids: Vec<f32> = (0..n).map(|k| (start + k / fs + 1) as f32).collect();
        let ids = Tensor::<4>::from_data(TensorData::new(ids, [1, 1, n, 1]), device);
        frames_cache.update(ids.clone(), ids, start * fs)?;
        let rows = to_f32s(
            frames_cache
                .buffers()
                .ok_or_else(|| CheckError::Other("the mirror cache is empty".into()))?
                .0
                .clone(),
        );
        let slot_frames: Vec<i64> = (0..slots)
            .map(|s| match rows.get(s * fs..(s + 1) * fs) {
                // A slot mixing frames is reported as -2 (never stored).
                Some(slot) if slot.iter().all(|v| *v == slot[0]) => slot[0] as i64 - 1,
                _ => -2,
            })
            .collect();
        let mut seen = vec![0i64; total_frames];
        for s in plan.attn_start / fs..plan.attn_end / fs {
            if let Some(frame) = slot_frames.get(s).and_then(|f| usize::try_from(*f).ok())
                && frame < total_frames
            {
                seen[frame] = 1;
            }
        }
        held_ours.extend(slot_frames);
        attended_ours.extend(seen);
    }
    c.push(flows.finish(Some(calls)));
    c.push(compare_exact(
        &file,
        "teacher-forced: counters and write plans (calls.meta)",
        &plan_ours,
        &plan_stored,
    ));
    c.push(compare_exact(
        &file,
        "teacher-forced: calls.cache_frames_after",
        &held_ours,
        &held,
    ));
    c.push(compare_exact(
        &file,
        "teacher-forced: calls.attended_frames",
        &attended_ours,
        &attended,
    ));
    Ok(())
}
