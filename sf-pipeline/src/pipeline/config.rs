//! The configurations of the four models a pipeline loads, and what one generation asks for.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sf_models::WanConfig;
use sf_text::UmT5Config;
use sf_vae::taehv::TaehvConfig;
use sf_vae::wan::WanVaeConfig;

use crate::plan::ModelSizes;
use crate::rollout::{CancelToken, RolloutConfig};
use crate::scheduler::FlowMatchScheduler;
use crate::{PipelineError, WeightsError};

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

    /// Checks that the models fit together.
    pub fn validate(&self) -> Result<(), PipelineError> {
        self.dit.validate()?;
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

    /// Parameter counts for the memory planner, from the configurations.
    pub fn sizes(&self) -> Result<ModelSizes, PipelineError> {
        let count = |keys: Vec<(String, Vec<usize>)>| {
            keys.iter()
                .map(|(_, s)| s.iter().product::<usize>() as u64)
                .sum::<u64>()
        };
        let vae_decoder =
            sf_vae::wan::expected_keys(&self.wan_vae, sf_vae::wan::VaeParts::DecoderOnly)?;
        let taehv_decoder = sf_vae::taehv::expected_keys(&self.taehv, false);
        Ok(ModelSizes {
            dit_params: count(sf_models::expected_keys(&self.dit)),
            text_encoder_params: self.text_encoder.num_params(),
            text_encoder_layer_params: self.text_encoder.block_params(),
            wan_vae_decoder_params: count(vae_decoder),
            taehv_decoder_params: count(taehv_decoder),
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
        }
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
        rollout.plan(self.latent_frames, 0)?;
        let scheduler = FlowMatchScheduler::from_config(&rollout.scheduler)?;
        scheduler.schedule(&rollout.scheduler)?;
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

    /// Video frames this request produces: `1 + 4 (latent_frames - 1)`.
    pub fn video_frames(&self) -> usize {
        1 + 4 * self.latent_frames.saturating_sub(1)
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
