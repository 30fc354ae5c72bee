//! A rollout fixture's stored randomness and model calls, as the rollout's [`NoiseSource`] and
//! [`CausalDenoiser`], and the real DiT with its cache bookkeeping recorded.

use burn::tensor::{Device, Tensor};
use sf_pipeline::{CausalDenoiser, DitDenoiser, NoiseSource, PipelineError};

use crate::compare::{CheckResult, Tolerance, compare_f32};
use crate::fixture::{Fixture, FixtureError, to_f32s};

/// Columns of one `calls.meta` row (FORMAT.md §2.4).
pub const META_COLUMNS: usize = 12;

/// Columns of one `calls.meta` row of a `rollout_switch_*` file (FORMAT.md §2.13).
pub const SWITCH_META_COLUMNS: usize = 21;

/// The width of `calls.meta` (12, or 21 for a switch fixture).
pub fn meta_columns(fx: &Fixture) -> Result<usize, FixtureError> {
    fx.shape("calls.meta")?
        .get(1)
        .copied()
        .filter(|w| *w >= META_COLUMNS)
        .ok_or_else(|| FixtureError::Config {
            origin: fx.file_name(),
            reason: format!("calls.meta must be [calls, ≥ {META_COLUMNS}]"),
        })
}

fn pipeline(e: FixtureError) -> PipelineError {
    PipelineError::Config(format!("fixture: {e}"))
}

/// The stored name prefix of each call, in `calls.meta` order: `init{m}`, `c{j}.s{i}`,
/// `c{j}.refresh`, `c{j}.recache`.
pub fn call_names(fx: &Fixture) -> Result<Vec<String>, FixtureError> {
    Ok(fx
        .i64s("calls.meta")?
        .chunks_exact(meta_columns(fx)?)
        .map(|row| match row[0] {
            0 => format!("init{}", row[1]),
            1 => format!("c{}.s{}", row[1], row[2]),
            3 => format!("c{}.recache", row[1]),
            _ => format!("c{}.refresh", row[1]),
        })
        .collect())
}

/// The stored input of a call: `x_t` for denoising steps, `x` otherwise.
pub fn input_name(call: &str) -> String {
    if call.contains(".s") {
        format!("{call}.x_t")
    } else {
        format!("{call}.x")
    }
}

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
        let t = self.fx.tensor::<5>("noise", device).map_err(pipeline)?;
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
        self.fx
            .tensor::<5>(&format!("c{chunk}.s{step}.eps"), device)
            .map_err(pipeline)
    }
}

/// Returns each stored call's flow in order and compares the rollout's inputs with the stored
/// ones, each call under its own bound.
pub struct ReplayDenoiser<'a> {
    fx: &'a Fixture,
    device: Device,
    names: Vec<String>,
    meta: Vec<i64>,
    width: usize,
    next: usize,
    /// Switch fixtures: each prompt's context, the current prompt and a pending K/V zeroing.
    prompts: Vec<Vec<f32>>,
    prompt: i64,
    zeroed: bool,
    /// One comparison per call made: the rollout's input against the stored one.
    pub inputs: Vec<CheckResult>,
    /// Calls whose timesteps or start frame differed from the stored ones.
    pub mismatches: Vec<String>,
}

impl<'a> ReplayDenoiser<'a> {
    /// A replay of `fx`'s calls, in `calls.meta` order.
    pub fn new(fx: &'a Fixture, device: &Device) -> Result<Self, FixtureError> {
        Ok(ReplayDenoiser {
            fx,
            device: device.clone(),
            names: call_names(fx)?,
            meta: fx.i64s("calls.meta")?,
            width: meta_columns(fx)?,
            next: 0,
            prompts: stored_prompts(fx)?,
            prompt: first_prompt(fx),
            zeroed: false,
            inputs: Vec::new(),
            mismatches: Vec::new(),
        })
    }

    /// How many calls the fixture stores.
    pub fn stored_calls(&self) -> usize {
        self.names.len()
    }
}

/// Each prompt's context of a switch fixture (`contexts`), empty otherwise.
pub fn stored_prompts(fx: &Fixture) -> Result<Vec<Vec<f32>>, FixtureError> {
    if !fx.has("contexts") {
        return Ok(Vec::new());
    }
    let all = fx.f32s("contexts")?;
    let p = fx.shape("contexts")?.first().copied().unwrap_or(1).max(1);
    Ok(all
        .chunks_exact(all.len() / p)
        .map(<[f32]>::to_vec)
        .collect())
}

/// The prompt of the first segment (`segments.prompt[0]`, else 0).
pub fn first_prompt(fx: &Fixture) -> i64 {
    fx.i64s("segments.prompt")
        .ok()
        .and_then(|p| p.first().copied())
        .unwrap_or(0)
}

/// The index of `context` among `prompts` (exact match), or −1.
pub fn prompt_index(prompts: &[Vec<f32>], context: Tensor<3>) -> i64 {
    let ours = to_f32s(context);
    prompts
        .iter()
        .position(|p| *p == ours)
        .map_or(-1, |p| p as i64)
}

impl ReplayDenoiser<'_> {
    /// The next stored call, checked against the switch columns (prompt, K/V zeroing, sink
    /// flag) when the file has them.
    fn next_call(&mut self, sink_recache: bool) -> Option<(String, Vec<i64>)> {
        let name = self.names.get(self.next).cloned()?;
        let row = self.meta[self.next * self.width..(self.next + 1) * self.width].to_vec();
        self.next += 1;
        if self.width >= SWITCH_META_COLUMNS {
            let ours = [self.prompt, i64::from(self.zeroed), i64::from(sink_recache)];
            let stored = [row[12], row[17], row[19]];
            if ours != stored {
                self.mismatches.push(format!(
                    "{name}: (prompt, kv_reset_before, sink_recache_flag) {ours:?}, stored \
                     {stored:?}"
                ));
            }
        }
        self.zeroed = false;
        Some((name, row))
    }

    fn replay(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, Box<PipelineError>> {
        let (name, row) = self.next_call(sink_recache).ok_or_else(|| {
            PipelineError::Config(format!(
                "the rollout made more than the {} stored calls",
                self.names.len()
            ))
        })?;
        let stored = self.fx.f32s(&input_name(&name)).map_err(pipeline)?;
        let file = self.fx.file_name();
        let input = compare_f32(&file, &name, &to_f32s(x), &stored, Tolerance::F32);
        self.inputs.push(input);
        let stored_t = self.fx.f32s(&format!("{name}.t")).map_err(pipeline)?;
        if stored_t != timesteps || usize::try_from(row[3]).ok() != Some(start_frame) {
            self.mismatches.push(format!(
                "{name}: t {timesteps:?} at frame {start_frame}, stored {stored_t:?} at frame {}",
                row[3]
            ));
        }
        Ok(self
            .fx
            .tensor::<5>(&format!("{name}.flow"), &self.device)
            .map_err(pipeline)?)
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
        self.replay(x, timesteps, start_frame, false)
            .map_err(|e| *e)
    }

    fn set_conditioning(&mut self, context: Tensor<3>) -> Result<(), PipelineError> {
        self.prompt = prompt_index(&self.prompts, context);
        Ok(())
    }

    fn zero_kv(&mut self) -> Result<(), PipelineError> {
        self.zeroed = true;
        Ok(())
    }

    fn recache_flow(
        &mut self,
        x: Tensor<5>,
        timesteps: &[f32],
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, PipelineError> {
        self.replay(x, timesteps, start_frame, sink_recache)
            .map_err(|e| *e)
    }
}

/// The DiT with its cache bookkeeping recorded after every call.
pub struct Recording<'m> {
    /// The DiT.
    pub inner: DitDenoiser<'m>,
    /// Per call: `global_end_before`, `local_end_before`, `evicted`, `local_end_after`,
    /// `attn_start`, `attn_end` (the last six `calls.meta` columns).
    pub rows: Vec<[i64; 6]>,
}

impl<'m> Recording<'m> {
    /// Records `inner`'s calls.
    pub fn new(inner: DitDenoiser<'m>) -> Self {
        Recording {
            inner,
            rows: Vec::new(),
        }
    }
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
        let p = self
            .inner
            .last_plan()
            .ok_or_else(|| PipelineError::Config("the DiT call left no cache write plan".into()))?;
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
        Ok(flow)
    }
}
