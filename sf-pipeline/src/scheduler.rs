//! The flow-matching scheduler of Self-Forcing (`utils/scheduler.py`): the shifted sigma
//! table, step warping, nearest-entry sigma lookup, `add_noise` and flow-to-x0.
//!
//! The table is built in f32 exactly as PyTorch builds it; sigma lookups compare in f64; the
//! tensor arithmetic always runs in f32, whatever the DiT's compute dtype.

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Scheduler settings of a generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Timestep shift (5.0 for the released checkpoint; upstream's demo used 8.0).
    pub shift: f32,
    /// Training timesteps (table length).
    pub num_train_timesteps: usize,
    /// The few-step schedule before warping.
    pub denoising_step_list: Vec<u32>,
    /// Map the step list through the shifted table (upstream `warp_denoising_step`).
    pub warp_denoising_step: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            shift: 5.0,
            num_train_timesteps: 1000,
            denoising_step_list: vec![1000, 750, 500, 250],
            warp_denoising_step: true,
        }
    }
}

/// `FlowMatchScheduler(shift, sigma_min = 0, extra_one_step = true)` with 1000 training steps.
#[derive(Clone, Debug)]
pub struct FlowMatchScheduler {
    shift: f32,
    sigmas: Vec<f32>,
    timesteps: Vec<f32>,
}

impl FlowMatchScheduler {
    /// Builds the table: `s_k = linspace(1, 0, n + 1)[k]` (f32, PyTorch's two-sided linspace),
    /// `sigma_k = shift s_k / (1 + (shift - 1) s_k)`, `T_k = n sigma_k`, for k < n.
    pub fn new(shift: f32, num_train_timesteps: usize) -> Result<Self, PipelineError> {
        if !(shift.is_finite() && shift > 0.0) {
            return Err(PipelineError::Config(format!(
                "scheduler shift must be a positive number, got {shift}"
            )));
        }
        if num_train_timesteps < 2 {
            return Err(PipelineError::Config(format!(
                "num_train_timesteps must be at least 2, got {num_train_timesteps}"
            )));
        }
        let n = num_train_timesteps;
        let base = torch_linspace(1.0, 0.0, n + 1);
        let sigmas: Vec<f32> = base[..n]
            .iter()
            .map(|&s| (shift * s) / (1.0 + (shift - 1.0) * s))
            .collect();
        let scale = n as f32;
        let timesteps = sigmas.iter().map(|&s| s * scale).collect();
        Ok(FlowMatchScheduler {
            shift,
            sigmas,
            timesteps,
        })
    }

    /// The scheduler of a configuration.
    pub fn from_config(config: &SchedulerConfig) -> Result<Self, PipelineError> {
        Self::new(config.shift, config.num_train_timesteps)
    }

    /// The shift.
    pub fn shift(&self) -> f32 {
        self.shift
    }

    /// The sigma table.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The timestep table (`1000 sigma`).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// The timesteps a chunk is denoised at: the step list itself, or warped through the
    /// table (`[T_0, ..., T_{n-1}, 0][n - k]`).
    pub fn denoising_timesteps(
        &self,
        steps: &[u32],
        warp: bool,
    ) -> Result<Vec<f32>, PipelineError> {
        let n = self.timesteps.len();
        if steps.is_empty() {
            return Err(PipelineError::Config(
                "the denoising step list is empty".into(),
            ));
        }
        steps
            .iter()
            .map(|&k| {
                let k = k as usize;
                if k > n {
                    return Err(PipelineError::Config(format!(
                        "denoising step {k} exceeds the {n} training timesteps"
                    )));
                }
                if !warp {
                    return Ok(k as f32);
                }
                if k == 0 {
                    return Err(PipelineError::Config(
                        "a warped step list must not contain 0".into(),
                    ));
                }
                Ok(self.timesteps.get(n - k).copied().unwrap_or(0.0))
            })
            .collect()
    }

    /// The warped (or plain) timesteps of a configuration.
    pub fn schedule(&self, config: &SchedulerConfig) -> Result<Vec<f32>, PipelineError> {
        self.denoising_timesteps(&config.denoising_step_list, config.warp_denoising_step)
    }

    /// Index of the table entry nearest to `t` (`argmin_k |T_k - t|`, first on ties, in f64).
    pub fn index_of(&self, t: f64) -> usize {
        let mut best = 0;
        let mut best_dist = f64::INFINITY;
        for (k, &tk) in self.timesteps.iter().enumerate() {
            let d = (tk as f64 - t).abs();
            if d < best_dist {
                best = k;
                best_dist = d;
            }
        }
        best
    }

    /// `sigma(t)` by nearest-entry lookup.
    pub fn sigma(&self, t: f32) -> f32 {
        self.sigmas[self.index_of(t as f64)]
    }

    /// `(1 - sigma(t_f)) x0 + sigma(t_f) eps` per frame `f` of `[B, C, F, H, W]` latents.
    pub fn add_noise(
        &self,
        x0: Tensor<5>,
        eps: Tensor<5>,
        frame_timesteps: &[f32],
    ) -> Result<Tensor<5>, PipelineError> {
        let device = x0.device();
        let sigma = self.frame_sigmas(frame_timesteps, x0.dims()[2], &device)?;
        let x0 = x0.cast(FloatDType::F32);
        let eps = eps.cast(FloatDType::F32);
        Ok(sigma.clone().neg().add_scalar(1.0).mul(x0) + sigma.mul(eps))
    }

    /// `x_t - sigma(t_f) flow` per frame `f`: the x0 prediction from the DiT's flow output.
    pub fn flow_to_x0(
        &self,
        flow: Tensor<5>,
        xt: Tensor<5>,
        frame_timesteps: &[f32],
    ) -> Result<Tensor<5>, PipelineError> {
        let device = xt.device();
        let sigma = self.frame_sigmas(frame_timesteps, xt.dims()[2], &device)?;
        Ok(xt.cast(FloatDType::F32) - sigma.mul(flow.cast(FloatDType::F32)))
    }

    /// One Euler step of the flow ODE: `x + (sigma_next - sigma) v`.
    pub fn euler_step(
        sample: Tensor<5>,
        flow: Tensor<5>,
        sigma: f32,
        sigma_next: f32,
    ) -> Tensor<5> {
        sample.cast(FloatDType::F32) + flow.cast(FloatDType::F32).mul_scalar(sigma_next - sigma)
    }

    fn frame_sigmas(
        &self,
        frame_timesteps: &[f32],
        frames: usize,
        device: &Device,
    ) -> Result<Tensor<5>, PipelineError> {
        if frame_timesteps.len() != frames {
            return Err(PipelineError::Shape(format!(
                "{} timesteps for {frames} latent frames",
                frame_timesteps.len()
            )));
        }
        let sigmas: Vec<f32> = frame_timesteps.iter().map(|&t| self.sigma(t)).collect();
        Ok(Tensor::from_data(
            TensorData::new(sigmas, [1, 1, frames, 1, 1]),
            device,
        ))
    }
}

/// PyTorch's CPU `linspace` for f32: `start + step i` for the first half of the points and
/// `end - step (steps - 1 - i)` for the second, `step` in f32, each a fused multiply-add as
/// ATen's compiled kernel evaluates it (bit-exact against the fixture's table).
fn torch_linspace(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - 1 - i) as f32, end)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warped_schedules_match_the_spec_tables() {
        let s5 = FlowMatchScheduler::new(5.0, 1000).unwrap();
        let t5 = s5.schedule(&SchedulerConfig::default()).unwrap();
        let expected = [1000.0, 937.5, 833.3333, 625.0];
        for (a, b) in t5.iter().zip(expected) {
            assert!((a - b).abs() < 1e-3, "{t5:?}");
        }
        let s8 = FlowMatchScheduler::new(8.0, 1000).unwrap();
        let t8 = s8
            .denoising_timesteps(&[1000, 750, 500, 250], true)
            .unwrap();
        for (a, b) in t8.iter().zip([1000.0, 960.0, 888.8889, 727.2727]) {
            assert!((a - b).abs() < 1e-3, "{t8:?}");
        }
        assert_eq!(s5.sigma(t5[1]), 0.9375);
        // t = 0 maps to the last entry, sigma ~ 0.005 at shift 5.
        assert_eq!(s5.index_of(0.0), 999);
        assert!((s5.sigma(0.0) - 0.00498).abs() < 1e-4);
        let plain = s5.denoising_timesteps(&[1000, 500], false).unwrap();
        assert_eq!(plain, [1000.0, 500.0]);
    }

    #[test]
    fn bad_configurations_are_errors() {
        assert!(FlowMatchScheduler::new(0.0, 1000).is_err());
        assert!(FlowMatchScheduler::new(f32::NAN, 1000).is_err());
        assert!(FlowMatchScheduler::new(5.0, 1).is_err());
        let s = FlowMatchScheduler::new(5.0, 1000).unwrap();
        assert!(s.denoising_timesteps(&[1000, 0], true).is_err());
        assert!(s.denoising_timesteps(&[1001], true).is_err());
        assert!(s.denoising_timesteps(&[], true).is_err());
        let x = Tensor::<5>::zeros([1, 2, 3, 2, 2], &Device::flex());
        let err = s.add_noise(x.clone(), x, &[1000.0, 500.0]).unwrap_err();
        assert!(err.to_string().contains("3 latent frames"), "{err}");
    }

    #[test]
    fn linspace_is_exact_at_both_ends() {
        let l = torch_linspace(1.0, 0.0, 1001);
        assert_eq!(l[0], 1.0);
        assert_eq!(l[1000], 0.0);
        assert_eq!(l[500], 0.5);
    }
}
