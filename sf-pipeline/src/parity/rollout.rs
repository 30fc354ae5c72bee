//! Rollout fixtures (`rollout_*.safetensors`) with the model calls replayed from the file: the
//! stored flow of each call is returned in order, so the rollout's own arithmetic (chunking,
//! scheduler, re-noising, refresh passes) is checked free-running against every stored `x_t`,
//! `x0` and the final latents, for whatever configuration the file's metadata holds.

use burn::tensor::{Device, Tensor};
use sf_device::fixture::{CheckResult, Fixture, Tolerance, compare_f32, to_f32s};

use super::ParityReport;
use crate::PipelineError;
use crate::noise::NoiseSource;
use sf_device::fixture::compare_exact;
use sf_models::WanModel;

use crate::denoiser::DitDenoiser;
use crate::rollout::{CallKind, CausalDenoiser, LatentShape, Rollout, RolloutConfig};
use crate::scheduler::SchedulerConfig;

/// The noise stored in a rollout fixture: `noise`, then `c{j}.s{i}.eps`.
pub struct FixtureNoise<'a> {
    fx: &'a Fixture,
}

impl<'a> FixtureNoise<'a> {
    /// Noise of `fx`.
    pub fn new(fx: &'a Fixture) -> Self {
        FixtureNoise { fx }
    }
}

impl NoiseSource for FixtureNoise<'_> {
    fn initial(&mut self, shape: [usize; 5], device: &Device) -> Result<Tensor<5>, PipelineError> {
        let t = self.fx.tensor::<5>("noise", device)?;
        if t.dims() != shape {
            return Err(PipelineError::Shape(format!(
                "stored noise {:?} against requested {shape:?}",
                t.dims()
            )));
        }
        Ok(t)
    }

    fn renoise(
        &mut self,
        chunk: usize,
        step: usize,
        _shape: [usize; 5],
        device: &Device,
    ) -> Result<Tensor<5>, PipelineError> {
        Ok(self
            .fx
            .tensor::<5>(&format!("c{chunk}.s{step}.eps"), device)?)
    }
}

/// Returns each stored call's flow in order and records how far the rollout's inputs drifted
/// from the stored ones.
pub struct ReplayDenoiser<'a> {
    fx: &'a Fixture,
    device: Device,
    names: Vec<String>,
    next: usize,
    /// `(call, max|x - stored x|, max|stored x|)` per call.
    pub input_diffs: Vec<(String, f64, f64)>,
    /// Calls whose timesteps or start frame differed from the stored ones.
    pub mismatches: Vec<String>,
}

impl<'a> ReplayDenoiser<'a> {
    /// A replay of `fx`'s calls, in `calls.meta` order.
    pub fn new(fx: &'a Fixture, device: &Device) -> Result<Self, PipelineError> {
        let meta = fx.i64s("calls.meta")?;
        let names = meta
            .chunks_exact(12)
            .map(|row| match row[0] {
                0 => format!("init{}", row[1]),
                1 => format!("c{}.s{}", row[1], row[2]),
                _ => format!("c{}.refresh", row[1]),
            })
            .collect();
        Ok(ReplayDenoiser {
            fx,
            device: device.clone(),
            names,
            next: 0,
            input_diffs: Vec::new(),
            mismatches: Vec::new(),
        })
    }

    fn stored_input(&self, name: &str) -> String {
        if name.contains(".s") {
            format!("{name}.x_t")
        } else {
            format!("{name}.x")
        }
    }
}

impl CausalDenoiser for ReplayDenoiser<'_> {
    fn reset(&mut self) -> Result<(), PipelineError> {
        self.next = 0;
        Ok(())
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        let name = self.names.get(self.next).cloned().ok_or_else(|| {
            PipelineError::Config(format!(
                "the rollout made more than {} calls",
                self.names.len()
            ))
        })?;
        let meta = self.fx.i64s("calls.meta")?;
        let row = &meta[self.next * 12..self.next * 12 + 12];
        self.next += 1;
        let stored_x = self.fx.f32s(&self.stored_input(&name))?;
        let ours = to_f32s(x);
        let max_ref = stored_x.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let diff = if ours.len() == stored_x.len() {
            ours.iter()
                .zip(&stored_x)
                .map(|(a, b)| (a - b).abs() as f64)
                .fold(0.0, f64::max)
        } else {
            f64::INFINITY
        };
        self.input_diffs.push((name.clone(), diff, max_ref));
        let stored_t = self.fx.f32s(&format!("{name}.t"))?;
        if stored_t != timesteps || row[3] as usize != start_frame {
            self.mismatches.push(format!(
                "{name}: t {timesteps:?} at frame {start_frame}, stored {stored_t:?} at frame {}",
                row[3]
            ));
        }
        Ok(self.fx.tensor::<5>(&format!("{name}.flow"), &self.device)?)
    }
}

/// The rollout configuration stored in a fixture's metadata.
pub fn rollout_config_from_fixture(fx: &Fixture) -> Result<RolloutConfig, PipelineError> {
    let cfg = fx.config();
    let missing = |k: &str| PipelineError::Config(format!("fixture config lacks {k}"));
    let r = &cfg["rollout"];
    let s = &cfg["scheduler"];
    let window = r["local_attn_size"]
        .as_i64()
        .ok_or_else(|| missing("rollout.local_attn_size"))?;
    Ok(RolloutConfig {
        scheduler: SchedulerConfig {
            shift: s["shift"]
                .as_f64()
                .ok_or_else(|| missing("scheduler.shift"))? as f32,
            num_train_timesteps: 1000,
            denoising_step_list: s["denoising_step_list"]
                .as_array()
                .ok_or_else(|| missing("scheduler.denoising_step_list"))?
                .iter()
                .filter_map(|v| v.as_u64().map(|v| v as u32))
                .collect(),
            warp_denoising_step: s["warp_denoising_step"].as_bool().unwrap_or(true),
        },
        num_frame_per_block: cfg["num_frame_per_block"]
            .as_u64()
            .ok_or_else(|| missing("num_frame_per_block"))? as usize,
        independent_first_frame: r["independent_first_frame"].as_bool().unwrap_or(false),
        context_noise: r["context_noise"].as_f64().unwrap_or(0.0) as f32,
        local_attn_size: (window >= 0).then_some(window as usize),
        sink_size: r["sink_size"].as_u64().unwrap_or(0) as usize,
        global_cache_frames: cfg["cache_capacity_frames"]
            .as_u64()
            .ok_or_else(|| missing("cache_capacity_frames"))? as usize,
        skip_last_refresh: false,
    })
}

/// Replayed and real-DiT checks of a rollout fixture.
pub(super) fn checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    replay_checks(fx, device, report)?;
    dit_checks(fx, device, report)
}

fn replay_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let (config, shape, f, initial) = rollout_inputs(fx, device)?;
    let mut replay = ReplayDenoiser::new(fx, device)?;
    let rollout = Rollout::new(
        &mut replay,
        FixtureNoise::new(fx),
        config,
        shape,
        f,
        initial,
        device,
    )?
    .with_recording(true);
    let tol = Tolerance::F32;
    let r = &mut report.results;
    r.push(compare_f32(
        &file,
        "replay: denoising_timesteps",
        rollout.timesteps(),
        &fx.f32s("denoising_timesteps")?,
        tol,
    ));
    let mut latents = Vec::new();
    let mut x0_diff = (0.0f64, 0.0f64, true);
    for chunk in rollout {
        let chunk = chunk?;
        let n_init = fx.config()["init_plan"].as_array().map_or(0, Vec::len);
        let j = chunk.index.saturating_sub(n_init);
        for call in chunk.calls.iter().filter(|_| chunk.generated) {
            if let (CallKind::Denoise(i), Some(x0)) = (call.kind, &call.x0) {
                let stored = fx.f32s(&format!("c{j}.s{i}.x0"))?;
                let cmp = compare_f32(&file, "x0", &to_f32s(x0.clone()), &stored, tol);
                x0_diff.0 = x0_diff.0.max(cmp.max_abs_diff);
                x0_diff.1 = x0_diff.1.max(cmp.bound);
                x0_diff.2 &= cmp.passed;
            }
        }
        latents.push(chunk.latents);
    }
    r.push(CheckResult {
        file: file.clone(),
        check: "replay: every step's x0 (free-running)".into(),
        max_abs_diff: x0_diff.0,
        bound: x0_diff.1,
        passed: x0_diff.2,
        note: None,
    });
    let (worst, max_ref) = replay
        .input_diffs
        .iter()
        .fold((0.0f64, 0.0f64), |(d, m), (_, di, mi)| {
            (d.max(*di), m.max(*mi))
        });
    let bound = tol.rel * max_ref + tol.abs;
    r.push(CheckResult {
        file: file.clone(),
        check: format!(
            "replay: inputs of all {} model calls",
            replay.input_diffs.len()
        ),
        max_abs_diff: worst,
        bound,
        passed: worst <= bound
            && replay.mismatches.is_empty()
            && replay.input_diffs.len() == replay.names.len(),
        note: replay.mismatches.first().cloned(),
    });
    let out = Tensor::cat(latents, 2);
    r.push(compare_f32(
        &file,
        "replay: latents",
        &to_f32s(out),
        &fx.f32s("latents")?,
        tol,
    ));
    Ok(())
}

fn rollout_inputs(
    fx: &Fixture,
    device: &Device,
) -> Result<(RolloutConfig, LatentShape, usize, Option<Tensor<5>>), PipelineError> {
    let config = rollout_config_from_fixture(fx)?;
    let [b, c, f, h, w]: [usize; 5] = fx
        .shape("noise")?
        .try_into()
        .map_err(|_| PipelineError::Shape("noise must be 5-D".into()))?;
    let initial = if fx.has("initial_latent") {
        Some(fx.tensor::<5>("initial_latent", device)?)
    } else {
        None
    };
    let shape = LatentShape {
        batch: b,
        channels: c,
        height: h,
        width: w,
    };
    Ok((config, shape, f, initial))
}

/// The DiT with its cache bookkeeping recorded after every call.
struct Recording<'m> {
    inner: DitDenoiser<'m>,
    /// Per call: global_end_before, local_end_before, evicted, local_end_after, attn rows.
    rows: Vec<[i64; 6]>,
}

impl CausalDenoiser for Recording<'_> {
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
        let flow = self.inner.predict_flow(x, timesteps, start_frame)?;
        if let Some(p) = self.inner.last_plan() {
            self.rows.push(
                [
                    p.global_end_before,
                    p.local_end_before,
                    p.evicted,
                    p.local_end_after,
                    p.attn_start,
                    p.attn_end,
                ]
                .map(|v| v as i64),
            );
        }
        Ok(flow)
    }
}

/// Free-running rollout of `fx` with `model`, from the stored noise and context.
pub(super) fn free_running_latents(
    model: &WanModel,
    fx: &Fixture,
    device: &Device,
) -> Result<Tensor<5>, PipelineError> {
    let (config, shape, frames, initial) = rollout_inputs(fx, device)?;
    let context = fx.tensor::<3>("context", device)?;
    let dit = DitDenoiser::new(model, context, &config, shape.height, shape.width, None)?;
    Rollout::new(
        dit,
        FixtureNoise::new(fx),
        config,
        shape,
        frames,
        initial,
        device,
    )?
    .run_to_end()
}

/// The rollout free-running with the real DiT (`config.dit` in the same folder): every call's
/// input, flow and x0, the final latents, and the cache bookkeeping of every call (exact).
fn dit_checks(
    fx: &Fixture,
    device: &Device,
    report: &mut ParityReport,
) -> Result<(), PipelineError> {
    let file = fx.file_name();
    let weights = fx.config()["dit"]
        .as_str()
        .ok_or_else(|| PipelineError::Config("rollout fixture config lacks dit".into()))?;
    let weights = fx
        .path()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(weights);
    let dit_config = sf_models::loader::config_from_safetensors_metadata(&weights)?;
    let model = sf_models::load_wan_model(
        &weights,
        &sf_models::CheckpointFormat::WanSafetensors,
        &dit_config,
        device,
        sf_device::Dtype::F32,
    )?;
    let (config, shape, frames, initial) = rollout_inputs(fx, device)?;
    let context = fx.tensor::<3>("context", device)?;
    let mut dit = Recording {
        inner: DitDenoiser::new(&model, context, &config, shape.height, shape.width, None)?,
        rows: Vec::new(),
    };
    let rollout = Rollout::new(
        &mut dit,
        FixtureNoise::new(fx),
        config,
        shape,
        frames,
        initial,
        device,
    )?
    .with_recording(true);
    let n_init = fx.config()["init_plan"].as_array().map_or(0, Vec::len);
    let tol = Tolerance::F32;
    // (max diff, max bound, all passed) per compared quantity.
    let mut acc = [(0.0f64, 0.0f64, true); 3];
    let mut latents = Vec::new();
    for chunk in rollout {
        let chunk = chunk?;
        let j = chunk.index.saturating_sub(n_init);
        for call in &chunk.calls {
            let prefix = match call.kind {
                CallKind::Initial => format!("init{}", chunk.index),
                CallKind::Denoise(i) => format!("c{j}.s{i}"),
                CallKind::Refresh => format!("c{j}.refresh"),
            };
            let input = if matches!(call.kind, CallKind::Denoise(_)) {
                "x_t"
            } else {
                "x"
            };
            let mut fold =
                |slot: usize, ours: &Tensor<5>, name: String| -> Result<(), PipelineError> {
                    let c = compare_f32(&file, "", &to_f32s(ours.clone()), &fx.f32s(&name)?, tol);
                    acc[slot] = (
                        acc[slot].0.max(c.max_abs_diff),
                        acc[slot].1.max(c.bound),
                        acc[slot].2 && c.passed,
                    );
                    Ok(())
                };
            fold(0, &call.x, format!("{prefix}.{input}"))?;
            fold(1, &call.flow, format!("{prefix}.flow"))?;
            if let Some(x0) = &call.x0 {
                fold(2, x0, format!("{prefix}.x0"))?;
            }
        }
        latents.push(chunk.latents);
    }
    for (slot, what) in ["every call's input", "every call's flow", "every step's x0"]
        .iter()
        .enumerate()
    {
        report.results.push(CheckResult {
            file: file.clone(),
            check: format!("DiT free-running: {what}"),
            max_abs_diff: acc[slot].0,
            bound: acc[slot].1,
            passed: acc[slot].2,
            note: None,
        });
    }
    report.results.push(compare_f32(
        &file,
        "DiT free-running: latents",
        &to_f32s(Tensor::cat(latents, 2)),
        &fx.f32s("latents")?,
        tol,
    ));
    let ours: Vec<i64> = dit.rows.iter().flatten().copied().collect();
    let stored: Vec<i64> = fx
        .i64s("calls.meta")?
        .chunks_exact(12)
        .flat_map(|r| r[6..12].to_vec())
        .collect();
    report.results.push(compare_exact(
        &file,
        "DiT free-running: cache bookkeeping (calls.meta)",
        &ours,
        &stored,
    ));
    Ok(())
}
