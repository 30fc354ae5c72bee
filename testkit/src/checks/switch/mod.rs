//! `rollout_switch_*.safetensors` (FORMAT.md §2.13, §2.15): LongLive's prompt switch with the
//! KV re-cache, for whatever configuration the file's metadata holds (window, sink,
//! `global_sink`, relative RoPE, switch indices, segment prompts):
//!
//! - replayed: the stored flows returned in order; every call's input (the re-cache's
//!   `c{j}.recache.x` included), prompt, K/V zeroing and sink flag, every x0, the switches and
//!   the latents;
//! - free-running with the real DiT: every call's input, flow and x0, all 21 `calls.meta`
//!   columns, the switches and the latents;
//! - teacher-forced: every stored call (input, t, start frame, prompt, `kv_reset_before`,
//!   `sink_recache_flag`) reproduces the stored flow, the derived `calls.meta` columns,
//!   `calls.cache_frames_after`, `calls.cache_writer_after` and `calls.attended_frames`.

use burn::tensor::{Device, Tensor};
use sf_models::{WanModel, WritePlan};
use sf_pipeline::{
    CallKind, CausalDenoiser, DitDenoiser, LatentShape, PipelineError, Rollout, RolloutConfig,
    SwitchEvent,
};

use super::rollout::{call_name, load_dit};
use super::{CheckError, Checks};

mod teacher_forced;

use crate::compare::{Aggregate, CheckResult, Tolerance, compare_exact, compare_tensor};
use crate::configs;
use crate::fixture::Fixture;
use crate::replay::{
    FixtureNoise, ReplayDenoiser, call_names, input_name, prompt_index, stored_prompts,
};
use teacher_forced::run_teacher_forced;

/// Whether `fx` is a prompt-switch rollout (name prefix `rollout_switch_`, or
/// `config.rollout.switch_frame_indices`), which a §2.4 runner must not read.
pub fn is_switch_fixture(fx: &Fixture) -> bool {
    fx.file_name().starts_with("rollout_switch_")
        || !fx.config()["rollout"]["switch_frame_indices"].is_null()
}

/// Every check of a switch fixture.
pub fn checks(fx: &Fixture, device: &Device) -> Checks {
    let mut all = replay(fx, device);
    all.extend(Checks::run(&fx.file_name(), |c| {
        let model = load_dit(fx, device)?;
        run_free_running(fx, &model, device, c)?;
        run_teacher_forced(fx, &model, device, c)
    }));
    all
}

/// The rollout replayed from the stored calls.
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

/// What a switch rollout is built from, all from the file.
pub struct SwitchInputs {
    /// The rollout configuration (LongLive's rules when the file says `global_sink`).
    pub config: RolloutConfig,
    /// Latent shape.
    pub shape: LatentShape,
    /// Generated latent frames.
    pub frames: usize,
    /// Each prompt's context `[1, text_len, text_dim]` (`contexts`).
    pub contexts: Vec<Tensor<3>>,
    /// The prompt of the first chunk.
    pub first_prompt: usize,
    /// `(switch frame, prompt)` of every switch that fires after the start.
    pub schedule: Vec<(usize, usize)>,
}

impl SwitchInputs {
    /// The schedule with each prompt's context.
    pub fn schedule_contexts(&self) -> Vec<(usize, Tensor<3>)> {
        self.schedule
            .iter()
            .map(|&(f, p)| (f, self.contexts[p].clone()))
            .collect()
    }
}

fn list(fx: &Fixture, key: &str) -> Result<Vec<i64>, CheckError> {
    fx.config()["rollout"][key]
        .as_array()
        .and_then(|a| a.iter().map(serde_json::Value::as_i64).collect())
        .ok_or_else(|| CheckError::Other(format!("config rollout.{key} is not a list of integers")))
}

/// Reads a switch fixture's inputs. A switch index ≤ 0 switches before the first chunk
/// (LongLive: no re-cache), i.e. that segment's prompt starts the video.
pub fn inputs(fx: &Fixture, device: &Device) -> Result<SwitchInputs, CheckError> {
    let [batch, channels, frames, height, width]: [usize; 5] = fx
        .shape("noise")?
        .try_into()
        .map_err(|_| CheckError::Other("noise must be 5-D".into()))?;
    let all = fx.tensor::<3>("contexts", device)?;
    let p = all.dims()[0];
    let contexts: Vec<Tensor<3>> = (0..p).map(|i| all.clone().narrow(0, i, 1)).collect();
    let prompts = list(fx, "segment_prompts")?;
    let indices = list(fx, "switch_frame_indices")?;
    let prompt = |k: usize| {
        prompts
            .get(k)
            .and_then(|&p| usize::try_from(p).ok())
            .filter(|&p| p < contexts.len())
            .ok_or_else(|| CheckError::Other(format!("segment {k} has no stored prompt")))
    };
    let mut first_prompt = prompt(0)?;
    let mut schedule = Vec::new();
    for (k, &index) in indices.iter().enumerate() {
        match usize::try_from(index) {
            Ok(f) if f > 0 => schedule.push((f, prompt(k + 1)?)),
            _ if schedule.is_empty() => first_prompt = prompt(k + 1)?,
            _ => {
                return Err(CheckError::Other(format!(
                    "switch index {index} after a positive one: the indices must increase"
                )));
            }
        }
    }
    Ok(SwitchInputs {
        config: configs::rollout(fx)?,
        shape: LatentShape {
            batch,
            channels,
            height,
            width,
        },
        frames,
        contexts,
        first_prompt,
        schedule,
    })
}

/// The stored switches (`config.switches`) as rows `[switch_frame_index, applied_at_frame,
/// chunk, new_prompt, recache_calls]`, and ours.
fn switch_rows(
    fx: &Fixture,
    ours: &[SwitchEvent],
    input: &SwitchInputs,
) -> Result<(Vec<i64>, Vec<i64>), CheckError> {
    let keys = [
        "switch_frame_index",
        "applied_at_frame",
        "chunk",
        "new_prompt",
        "recache_calls",
    ];
    let stored = fx.config()["switches"]
        .as_array()
        .ok_or_else(|| CheckError::Other("config switches is not a list".into()))?
        .iter()
        .flat_map(|s| keys.map(|k| s[k].as_i64().unwrap_or(i64::MIN)))
        .collect();
    let ours = ours
        .iter()
        .zip(&input.schedule)
        .flat_map(|(e, &(_, prompt))| {
            [
                e.requested_frame.map_or(-1, |f| f as i64),
                e.applied_at_frame as i64,
                e.chunk as i64,
                prompt as i64,
                i64::from(e.recached.is_some()),
            ]
        })
        .collect();
    Ok((ours, stored))
}

fn push_switches(
    c: &mut Checks,
    fx: &Fixture,
    what: &str,
    events: &[SwitchEvent],
    input: &SwitchInputs,
) -> Result<(), CheckError> {
    let file = fx.file_name();
    let (ours, stored) = switch_rows(fx, events, input)?;
    c.push(compare_exact(
        &file,
        &format!("{what}: switches"),
        &ours,
        &stored,
    ));
    let mut starts = vec![0i64];
    starts.extend(events.iter().map(|e| e.applied_at_frame as i64));
    let check = format!("{what}: segments.start_frame");
    c.push(compare_exact(
        &file,
        &check,
        &starts,
        &fx.i64s("segments.start_frame")?,
    ));
    Ok(())
}

fn run_replay(fx: &Fixture, device: &Device, c: &mut Checks) -> Result<(), CheckError> {
    let file = fx.file_name();
    let tol = Tolerance::F32;
    let input = inputs(fx, device)?;
    let mut replay = ReplayDenoiser::new(fx, device)?;
    let rollout = Rollout::new(
        &mut replay,
        FixtureNoise::new(fx),
        input.config.clone(),
        input.shape,
        input.frames,
        None,
        device,
    )?
    .with_prompt_schedule(input.schedule_contexts())?
    .with_recording(true);
    let mut x0 = Aggregate::new(&file, "replay: every step's x0 (free-running)");
    let (mut latents, mut events) = (Vec::new(), Vec::new());
    let mut steps = 0;
    for chunk in rollout {
        let chunk = chunk?;
        for call in &chunk.calls {
            if let Some(ours) = &call.x0 {
                let name = format!("{}.x0", call_name(call.kind, chunk.index, 0));
                x0.add(compare_tensor(fx, &name, ours.clone(), &name, tol)?);
                steps += 1;
            }
        }
        events.extend(chunk.switch);
        latents.push(chunk.latents);
    }
    c.push(x0.finish(Some(steps.max(1))));
    let mut calls = Aggregate::new(&file, "replay: every call's input, prompt and switch flags");
    for r in replay.inputs.drain(..) {
        calls.add(r);
    }
    for mismatch in &replay.mismatches {
        calls.add(CheckResult::error(&file, "call", mismatch));
    }
    let expected = replay.stored_calls() + replay.mismatches.len();
    c.push(calls.finish(Some(expected)));
    push_switches(c, fx, "replay", &events, &input)?;
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

/// The DiT with every call's `calls.meta` columns 6.. recorded.
struct Recorder<'m> {
    inner: DitDenoiser<'m>,
    prompts: Vec<Vec<f32>>,
    prompt: i64,
    zeroed: bool,
    rows: Vec<Vec<i64>>,
}

impl Recorder<'_> {
    /// Records the last call's plan with the flags it ran under; `None` if it left no plan.
    fn record(&mut self, fresh: bool, sink_recache: bool) -> Option<()> {
        let plan = self.inner.last_plan()?;
        let flags = [self.prompt, i64::from(self.zeroed), i64::from(fresh)];
        self.rows.push(plan_columns(&plan, flags, sink_recache));
        self.zeroed = false;
        Some(())
    }

    fn no_plan() -> PipelineError {
        PipelineError::Config("the DiT call left no cache write plan".into())
    }
}

/// Columns 6..21 of `calls.meta` from a write plan and the call's `[prompt, kv_reset_before,
/// crossattn_fresh]`.
pub(super) fn plan_columns(p: &WritePlan, flags: [i64; 3], sink_recache: bool) -> Vec<i64> {
    let attn_start = if p.sink_attended > 0 { 0 } else { p.attn_start };
    let mut row: Vec<i64> = [
        p.global_end_before,
        p.local_end_before,
        p.evicted,
        p.local_end_after,
        attn_start,
        p.attn_end,
    ]
    .map(|v| v as i64)
    .to_vec();
    row.push(flags[0]);
    row.extend([p.write_start, p.local_end_after].map(|v| v as i64));
    row.push(i64::from(p.is_recompute));
    row.push(p.global_end_after as i64);
    row.extend([flags[1], flags[2], i64::from(sink_recache)]);
    row.push(p.empty_attended as i64);
    row
}

impl CausalDenoiser for Recorder<'_> {
    fn reset(&mut self) -> Result<(), PipelineError> {
        self.rows.clear();
        self.inner.reset()
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        let fresh = !self.inner.cache().cross_attn_ready();
        let flow = self.inner.predict_flow(x, timesteps, start_frame)?;
        self.record(fresh, false).ok_or_else(Self::no_plan)?;
        Ok(flow)
    }

    fn set_conditioning(&mut self, context: Tensor<3>) -> Result<(), PipelineError> {
        self.prompt = prompt_index(&self.prompts, context.clone());
        self.inner.set_conditioning(context)
    }

    fn reset_cross_attn(&mut self) -> Result<(), PipelineError> {
        self.inner.reset_cross_attn()
    }

    fn zero_kv(&mut self) -> Result<(), PipelineError> {
        self.zeroed = true;
        self.inner.zero_kv()
    }

    fn recache_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, PipelineError> {
        let fresh = !self.inner.cache().cross_attn_ready();
        let flow = self
            .inner
            .recache_flow(x, timesteps, start_frame, sink_recache)?;
        self.record(fresh, sink_recache).ok_or_else(Self::no_plan)?;
        Ok(flow)
    }
}

fn kind_code(kind: CallKind) -> (i64, i64) {
    match kind {
        CallKind::Initial => (0, -1),
        CallKind::Denoise(i) => (1, i as i64),
        CallKind::Refresh => (2, -1),
        CallKind::Recache => (3, -1),
    }
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
    let fs = fx.config_usize("frame_seqlen")?;
    let (h, w) = (input.shape.height, input.shape.width);
    let context = input.contexts[input.first_prompt].clone();
    let mut dit = Recorder {
        inner: DitDenoiser::new(model, context, &input.config, h, w, None)?,
        prompts: stored_prompts(fx)?,
        prompt: input.first_prompt as i64,
        zeroed: false,
        rows: Vec::new(),
    };
    let rollout = Rollout::new(
        &mut dit,
        FixtureNoise::new(fx),
        input.config.clone(),
        input.shape,
        input.frames,
        None,
        device,
    )?
    .with_prompt_schedule(input.schedule_contexts())?
    .with_recording(true);
    let mut calls = [
        Aggregate::new(&file, "DiT free-running: every call's input"),
        Aggregate::new(&file, "DiT free-running: every call's flow"),
        Aggregate::new(&file, "DiT free-running: every step's x0"),
    ];
    let (mut latents, mut events, mut heads) = (Vec::new(), Vec::new(), Vec::new());
    let mut steps = 0;
    for chunk in rollout {
        let chunk = chunk?;
        for call in &chunk.calls {
            let prefix = call_name(call.kind, chunk.index, 0);
            let input_name = input_name(&prefix);
            let flow_name = format!("{prefix}.flow");
            let x = call.x.clone();
            calls[0].add(compare_tensor(fx, &input_name, x, &input_name, tol)?);
            let flow = call.flow.clone();
            calls[1].add(compare_tensor(fx, &flow_name, flow, &flow_name, tol)?);
            if let Some(x0) = &call.x0 {
                let name = format!("{prefix}.x0");
                calls[2].add(compare_tensor(fx, &name, x0.clone(), &name, tol)?);
                steps += 1;
            }
            let (kind, step) = kind_code(call.kind);
            let frames = call.x.dims()[2];
            let start = call.start_frame;
            heads.push([kind, chunk.index as i64, step, start as i64, frames as i64]);
        }
        events.extend(chunk.switch);
        latents.push(chunk.latents);
    }
    let stored = call_names(fx)?.len();
    let [inputs, flows, x0s] = calls;
    c.push(inputs.finish(Some(stored)));
    c.push(flows.finish(Some(stored)));
    c.push(x0s.finish(Some(steps.max(1))));
    let ours: Vec<i64> = heads
        .iter()
        .zip(&dit.rows)
        .flat_map(|(head, rest)| {
            let mut row = head.to_vec();
            row.push(head[3] * fs as i64);
            row.extend_from_slice(rest);
            row
        })
        .collect();
    c.push(compare_exact(
        &file,
        "DiT free-running: every calls.meta column",
        &ours,
        &fx.i64s("calls.meta")?,
    ));
    push_switches(c, fx, "DiT free-running", &events, &input)?;
    let latents = Tensor::cat(latents, 2);
    let check = "DiT free-running: latents";
    c.push(compare_tensor(fx, check, latents, "latents", tol)?);
    Ok(())
}
