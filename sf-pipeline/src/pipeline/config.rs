//! The configurations of the four models a pipeline loads, and what one generation asks for.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sf_models::WanConfig;
use sf_text::UmT5Config;
use sf_vae::taehv::TaehvConfig;
use sf_vae::wan::WanVaeConfig;

use crate::plan::ModelSizes;
use crate::rollout::switch::schedule_chunks;
use crate::rollout::{CancelToken, ChunkPlan, RolloutConfig};
use crate::scheduler::FlowMatchScheduler;
use crate::{PipelineError, WeightsError};

/// The largest width, length, vocabulary or head count a configuration may declare (the real
/// models' largest is umT5's 256 384-entry vocabulary).
pub const MAX_WIDTH: usize = 1 << 20;
/// The most layers or blocks a component may declare.
pub const MAX_LAYERS: usize = 1 << 10;
/// The largest Wan VAE base width and width multiplier.
pub const MAX_VAE_WIDTH: usize = 1 << 12;
/// The most Wan VAE stages.
pub const MAX_STAGES: usize = 16;
/// The largest patch size.
pub const MAX_PATCH: usize = 64;

/// Hyper-parameters of the DiT, the text encoder, both decoders and the rollout.
///
/// [`ModelConfigs::default`] is the real model (Wan2.1-T2V-1.3B, umT5-XXL, Wan2.1 VAE,
/// taew2_1, Self-Forcing's 4-step schedule). A JSON file with the same fields describes another
/// model (the tests use one for the tiny fixture models).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfigs {
    /// The causal DiT.
    pub dit: WanConfig,
    /// The umT5 encoder (its output width must equal `dit.text_dim`).
    pub text_encoder: UmT5Config,
    /// The Wan VAE.
    pub wan_vae: WanVaeConfig,
    /// TAEHV.
    pub taehv: TaehvConfig,
    /// Scheduler, chunking and KV-cache settings.
    pub rollout: RolloutConfig,
}

impl Default for ModelConfigs {
    fn default() -> Self {
        ModelConfigs {
            dit: WanConfig::wan2_1_t2v_1_3b(),
            text_encoder: UmT5Config::umt5_xxl(),
            wan_vae: WanVaeConfig::wan2_1(),
            taehv: TaehvConfig::taew2_1(),
            rollout: RolloutConfig::default(),
        }
    }
}

impl ModelConfigs {
    /// Reads a JSON file with the fields of [`ModelConfigs`].
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, PipelineError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PipelineError::Config(format!("cannot read model config {}: {e}", path.display()))
        })?;
        let configs: ModelConfigs = serde_json::from_str(&text)
            .map_err(|e| PipelineError::Config(format!("model config {}: {e}", path.display())))?;
        configs.validate()?;
        Ok(configs)
    }

    /// Checks every model's configuration, that the models fit together, and that no size
    /// exceeds [`MAX_WIDTH`] / [`MAX_LAYERS`] (so no parameter count or memory figure
    /// overflows and listing the tensors never builds an absurd module).
    pub fn validate(&self) -> Result<(), PipelineError> {
        self.check_limits()?;
        self.dit.validate()?;
        self.text_encoder.validate()?;
        self.wan_vae.validate()?;
        self.taehv.validate()?;
        if self.text_encoder.dim != self.dit.text_dim {
            return Err(PipelineError::Config(format!(
                "the text encoder's width ({}) differs from the DiT's text_dim ({})",
                self.text_encoder.dim, self.dit.text_dim
            )));
        }
        if self.wan_vae.z_dim != self.dit.in_dim || self.taehv.latent_channels != self.dit.in_dim {
            return Err(PipelineError::Config(format!(
                "latent channels differ: DiT {}, Wan VAE {}, TAEHV {}",
                self.dit.in_dim, self.wan_vae.z_dim, self.taehv.latent_channels
            )));
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), PipelineError> {
        let (d, t, v, e) = (&self.dit, &self.text_encoder, &self.wan_vae, &self.taehv);
        let mut sizes = vec![
            ("dit.text_len", d.text_len, MAX_WIDTH),
            ("dit.in_dim", d.in_dim, MAX_WIDTH),
            ("dit.dim", d.dim, MAX_WIDTH),
            ("dit.ffn_dim", d.ffn_dim, MAX_WIDTH),
            ("dit.freq_dim", d.freq_dim, MAX_WIDTH),
            ("dit.text_dim", d.text_dim, MAX_WIDTH),
            ("dit.out_dim", d.out_dim, MAX_WIDTH),
            ("dit.num_heads", d.num_heads, MAX_WIDTH),
            ("dit.num_layers", d.num_layers, MAX_LAYERS),
            ("text_encoder.vocab", t.vocab, MAX_WIDTH),
            ("text_encoder.dim", t.dim, MAX_WIDTH),
            ("text_encoder.dim_attn", t.dim_attn, MAX_WIDTH),
            ("text_encoder.dim_ffn", t.dim_ffn, MAX_WIDTH),
            ("text_encoder.num_heads", t.num_heads, MAX_WIDTH),
            ("text_encoder.num_layers", t.num_layers, MAX_LAYERS),
            ("text_encoder.num_buckets", t.num_buckets, MAX_WIDTH),
            ("text_encoder.max_distance", t.max_distance, MAX_WIDTH),
            ("wan_vae.dim", v.dim, MAX_VAE_WIDTH),
            ("wan_vae.z_dim", v.z_dim, MAX_WIDTH),
            ("wan_vae.num_res_blocks", v.num_res_blocks, MAX_LAYERS),
            ("wan_vae.dim_mult (entries)", v.dim_mult.len(), MAX_STAGES),
            (
                "wan_vae.attn_scales (entries)",
                v.attn_scales.len(),
                MAX_STAGES,
            ),
            ("taehv.latent_channels", e.latent_channels, MAX_WIDTH),
            ("taehv.patch_size", e.patch_size, MAX_PATCH),
            ("taehv.encoder_width", e.encoder_width, MAX_WIDTH),
        ];
        sizes.extend(
            d.patch_size
                .iter()
                .map(|&p| ("dit.patch_size", p, MAX_PATCH)),
        );
        sizes.extend(
            v.dim_mult
                .iter()
                .map(|&m| ("wan_vae.dim_mult", m, MAX_VAE_WIDTH)),
        );
        sizes.extend(e.n_f.iter().map(|&n| ("taehv.n_f", n, MAX_WIDTH)));
        let too_big: Vec<String> = sizes
            .into_iter()
            .filter(|(_, value, max)| value > max)
            .map(|(name, value, max)| format!("{name} = {value} (at most {max})"))
            .collect();
        if too_big.is_empty() {
            Ok(())
        } else {
            Err(PipelineError::Config(format!(
                "sizes beyond any model this crate can run: {}",
                too_big.join(", ")
            )))
        }
    }

    /// Parameter counts for the memory planner, from the configurations (validated first).
    pub fn sizes(&self) -> Result<ModelSizes, PipelineError> {
        self.validate()?;
        let count = |keys: Vec<(String, Vec<usize>)>| {
            keys.iter()
                .try_fold(0u64, |sum, (_, s)| {
                    let n = s.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
                    sum.checked_add(n)
                })
                .ok_or_else(|| PipelineError::Config("a parameter count overflows 64 bits".into()))
        };
        let vae_decoder =
            sf_vae::wan::expected_keys(&self.wan_vae, sf_vae::wan::VaeParts::DecoderOnly)?;
        let taehv_decoder = sf_vae::taehv::expected_keys(&self.taehv, false);
        Ok(ModelSizes {
            dit_params: count(sf_models::expected_keys(&self.dit))?,
            text_encoder_params: self.text_encoder.num_params(),
            text_encoder_layer_params: self.text_encoder.block_params(),
            wan_vae_decoder_params: count(vae_decoder)?,
            taehv_decoder_params: count(taehv_decoder)?,
        })
    }
}

impl From<WeightsError> for PipelineError {
    fn from(e: WeightsError) -> Self {
        PipelineError::Weights(Box::new(e))
    }
}

/// One video to generate.
#[derive(Clone, Debug)]
pub struct GenerationRequest {
    /// The prompt (also the name of the video).
    pub prompt: String,
    /// An LLM-extended version of the prompt; when set, it conditions the video instead.
    pub extended_prompt: Option<String>,
    /// The seed of the initial noise: the same seed gives the same video on every backend.
    pub seed: u64,
    /// Latent frames to generate (21 gives 81 video frames; more needs a rolling KV window).
    pub latent_frames: usize,
    /// Overrides the scheduler's shift.
    pub shift: Option<f32>,
    /// Cancels the run between model calls.
    pub cancel: CancelToken,
    /// Later prompts: `(latent frame, prompt)`, sorted, each starting at the first chunk at or
    /// after its frame (LongLive's switch); empty for one prompt.
    pub prompt_schedule: Vec<(usize, String)>,
    /// Generate until cancelled (or until the RoPE table ends) instead of `latent_frames`;
    /// needs a rolling KV window.
    pub endless: bool,
}

impl GenerationRequest {
    /// A request for `prompt` with seed 0 and 21 latent frames (81 video frames).
    pub fn new(prompt: impl Into<String>) -> Self {
        GenerationRequest {
            prompt: prompt.into(),
            extended_prompt: None,
            seed: 0,
            latent_frames: 21,
            shift: None,
            cancel: CancelToken::new(),
            prompt_schedule: Vec::new(),
            endless: false,
        }
    }

    /// Switches to `prompt` at latent frame `frame` (rounded up to the next chunk start).
    pub fn then_prompt(mut self, frame: usize, prompt: impl Into<String>) -> Self {
        self.prompt_schedule.push((frame, prompt.into()));
        self
    }

    /// Generates until cancelled (the `endless` field).
    pub fn endless(mut self, on: bool) -> Self {
        self.endless = on;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of latent frames.
    pub fn latent_frames(mut self, frames: usize) -> Self {
        self.latent_frames = frames;
        self
    }

    /// Conditions on an extended prompt.
    pub fn extended_prompt(mut self, extended: impl Into<String>) -> Self {
        self.extended_prompt = Some(extended.into());
        self
    }

    /// Overrides the scheduler's shift.
    pub fn shift(mut self, shift: f32) -> Self {
        self.shift = Some(shift);
        self
    }

    /// Uses `token` to cancel.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// The text the encoder sees.
    pub fn conditioning_text(&self) -> &str {
        self.extended_prompt.as_deref().unwrap_or(&self.prompt)
    }

    /// Checks the request against the models' configuration without touching any weights: a
    /// prompt that is not empty, a frame count the chunking and the KV cache allow (the same
    /// check the rollout makes), a valid shift. Programs call it before loading the models;
    /// [`Pipeline::stream`](crate::Pipeline::stream) calls it again.
    pub fn validate(&self, configs: &ModelConfigs) -> Result<(), PipelineError> {
        if self.conditioning_text().trim().is_empty() {
            return Err(PipelineError::Config(
                "the prompt is empty: describe the video to generate".into(),
            ));
        }
        let rollout = self.rollout_config(configs);
        let plan = if self.endless {
            rollout.endless_plan()?
        } else {
            rollout.plan(self.latent_frames, 0)?
        };
        self.check_schedule(&rollout, &plan)?;
        let scheduler = FlowMatchScheduler::from_config(&rollout.scheduler)?;
        scheduler.schedule(&rollout.scheduler)?;
        Ok(())
    }

    /// The prompt schedule: prompts that are not empty, frames after 0, increasing, each
    /// firing at a chunk start inside the video (an endless one: before the RoPE limit).
    fn check_schedule(
        &self,
        rollout: &RolloutConfig,
        plan: &ChunkPlan,
    ) -> Result<(), PipelineError> {
        if let Some((frame, _)) = self
            .prompt_schedule
            .iter()
            .find(|(_, p)| p.trim().is_empty())
        {
            return Err(PipelineError::Config(format!(
                "prompt schedule: the prompt at latent frame {frame} is empty: describe what \
                 the video shows from there"
            )));
        }
        let frames: Vec<usize> = self.prompt_schedule.iter().map(|(f, _)| *f).collect();
        let then = (self.endless && rollout.endless_limit().is_none())
            .then_some(rollout.num_frame_per_block);
        schedule_chunks(plan, then, &frames)
            .map_err(|e| PipelineError::Config(format!("prompt schedule: {}", reason(&e))))?;
        Ok(())
    }

    /// The rollout settings of this request: the models' settings with the request's shift.
    pub fn rollout_config(&self, configs: &ModelConfigs) -> RolloutConfig {
        let mut rollout = configs.rollout.clone();
        if let Some(shift) = self.shift {
            rollout.scheduler.shift = shift;
        }
        rollout
    }

    /// Video frames this request produces: `1 + 4 (latent_frames - 1)` (an endless request:
    /// those of `latent_frames`, a hint only).
    pub fn video_frames(&self) -> usize {
        1 + 4 * self.latent_frames.saturating_sub(1)
    }
}

/// The text of an error without the `invalid configuration:` prefix.
fn reason(e: &PipelineError) -> String {
    match e {
        PipelineError::Config(message) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs_give_the_planner_sizes() {
        let configs = ModelConfigs::default();
        configs.validate().unwrap();
        assert_eq!(configs.sizes().unwrap(), ModelSizes::REAL);
    }

    #[test]
    fn mismatched_models_are_refused() {
        let mut configs = ModelConfigs::default();
        configs.text_encoder.dim = 512;
        let e = configs.validate().unwrap_err().to_string();
        assert!(e.contains("text_dim"), "{e}");
    }

    #[test]
    fn configs_round_trip_through_json() {
        let configs = ModelConfigs::default();
        let json = serde_json::to_string(&configs).unwrap();
        let back: ModelConfigs = serde_json::from_str(&json).unwrap();
        assert_eq!(back, configs);
        assert_eq!(GenerationRequest::new("x").video_frames(), 81);
    }
}
