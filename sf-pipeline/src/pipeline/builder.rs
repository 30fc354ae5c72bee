//! [`PipelineBuilder`]: device, precision, memory plan, model files, loading.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use sf_device::{
    Capabilities, DeviceRequest, DisabledFeature, PrecisionPolicy, SelectedDevice, device_memory,
    select, system_memory,
};
use sf_models::{DitLora, WanModel, check_checkpoint_with_lora, load_wan_model_with_lora};
use sf_vae::DecoderKind;

use super::text::{TextConditioner, TextSettings};
use super::{ModelConfigs, ModelFamily, Pipeline, load_decoder};
use crate::plan::{GenerationShape, MemoryPlan, PlanMode, plan_memory};
use crate::{ModelLocation, PipelineError};

/// Builds a [`Pipeline`]; see [`Pipeline::builder`].
#[derive(Clone, Debug)]
pub struct PipelineBuilder {
    device: Option<DeviceRequest>,
    precision: Option<String>,
    decoder: DecoderKind,
    location: ModelLocation,
    family: ModelFamily,
    lora_alpha: Option<f64>,
    configs: ModelConfigs,
    height: usize,
    width: usize,
    max_latent_frames: Option<usize>,
    memory_budget: Option<u64>,
    low_memory: Option<bool>,
    prompt_cache: Option<PathBuf>,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        PipelineBuilder {
            device: None,
            precision: None,
            decoder: DecoderKind::WanVae,
            location: ModelLocation::hub(),
            family: ModelFamily::SelfForcing,
            lora_alpha: None,
            configs: ModelConfigs::default(),
            height: 480,
            width: 832,
            max_latent_frames: None,
            memory_budget: None,
            low_memory: None,
            prompt_cache: None,
        }
    }
}

impl PipelineBuilder {
    /// The device (`auto` by default, which also honours `SF_DEVICE`).
    pub fn device(mut self, request: DeviceRequest) -> Self {
        self.device = Some(request);
        self
    }

    /// Precision overrides on top of the backend's defaults, e.g. `"f16"` or
    /// `"dit=bf16,text_encoder=bf16/f32"`.
    pub fn precision(mut self, overrides: impl Into<String>) -> Self {
        self.precision = Some(overrides.into());
        self
    }

    /// The decoder to load ([`Pipeline::set_decoder`] replaces it later).
    pub fn decoder(mut self, decoder: DecoderKind) -> Self {
        self.decoder = decoder;
        self
    }

    /// Where the weights are (the hub by default).
    pub fn models(mut self, location: ModelLocation) -> Self {
        self.location = location;
        self
    }

    /// The DiT checkpoint family (Self-Forcing by default): which files are resolved and how
    /// they load, and the family's rollout defaults (LongLive: a 12-frame KV window with a
    /// 3-frame sink), set on the current configurations now; [`configs`](Self::configs) and
    /// [`kv_window`](Self::kv_window) called afterwards override them.
    pub fn family(mut self, family: ModelFamily) -> Self {
        self.family = family;
        family.apply_rollout_defaults(&mut self.configs.rollout);
        self
    }

    /// PEFT's `lora_alpha` of the family's LoRA (the file does not store it): the merge scale is
    /// `alpha / rank`. Default: the rank (scale 1, LongLive's alpha 256 at rank 256).
    pub fn lora_alpha(mut self, alpha: f64) -> Self {
        self.lora_alpha = Some(alpha);
        self
    }

    /// Model hyper-parameters (the real model by default).
    pub fn configs(mut self, configs: ModelConfigs) -> Self {
        self.configs = configs;
        self
    }

    /// Video size in pixels (multiples of 16; 480x832 by default).
    pub fn resolution(mut self, height: usize, width: usize) -> Self {
        self.height = height;
        self.width = width;
        self
    }

    /// A rolling KV cache of `window` latent frames with a `sink` of first frames kept, for
    /// videos longer than 21 latent frames or to save memory.
    pub fn kv_window(mut self, window: usize, sink: usize) -> Self {
        self.configs.rollout.local_attn_size = Some(window);
        self.configs.rollout.sink_size = sink;
        self
    }

    /// The longest generation to plan memory for (default: the KV cache's frames).
    pub fn max_latent_frames(mut self, frames: usize) -> Self {
        self.max_latent_frames = Some(frames);
        self
    }

    /// Bytes the plan may use (default: what the device and the system report).
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = Some(bytes);
        self
    }

    /// Forces the low-memory mode on or off, whatever the memory plan says (the text encoder
    /// streamed block by block and freed after each encode; a live prompt switch encodes only
    /// between chunks).
    pub fn low_memory(mut self, on: bool) -> Self {
        self.low_memory = Some(on);
        self
    }

    /// Caches prompt embeddings in `dir`.
    pub fn prompt_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.prompt_cache = Some(dir.into());
        self
    }

    /// The model hyper-parameters the pipeline will use.
    pub fn model_configs(&self) -> &ModelConfigs {
        &self.configs
    }

    /// Everything that needs no weights, before any file is read or downloaded: the model
    /// configurations, the video size, the device, the precision and the memory plan. The
    /// result shows the choices and [`PreparedPipeline::load`]s the models.
    pub fn prepare(self) -> Result<PreparedPipeline, PipelineError> {
        let configs = &self.configs;
        configs.validate()?;
        self.check_lora_alpha()?;
        if self.height == 0
            || self.width == 0
            || !self.height.is_multiple_of(16)
            || !self.width.is_multiple_of(16)
        {
            return Err(PipelineError::Config(format!(
                "the video size must be positive multiples of 16 pixels (VAE stride 8 x patch \
                 2), got {}x{}",
                self.height, self.width
            )));
        }
        let request = DeviceRequest::resolve(self.device.clone())?;
        let selected = select(&request)?;
        let capabilities = Capabilities::detect(&selected);
        let mut policy = PrecisionPolicy::default_for(selected.info.kind, &capabilities);
        if let Some(spec) = &self.precision {
            policy = policy.with_overrides(spec)?;
        }
        policy.validate(&capabilities)?;

        let frames = self
            .max_latent_frames
            .unwrap_or(match configs.rollout.local_attn_size {
                Some(window) => window,
                None => configs.rollout.global_cache_frames,
            });
        let shape = GenerationShape::new(self.height, self.width, frames, self.decoder);
        let budget = match self.memory_budget {
            Some(b) => b,
            None => system_memory()
                .and_then(|system| device_memory(&selected).budget(&system))
                .unwrap_or(u64::MAX),
        };
        let mut plan = plan_memory(configs, &shape, &policy, &capabilities, budget)?;
        // The caller's choice overrides the plan's (and the plan then says so).
        match self.low_memory {
            Some(true) => plan.mode = PlanMode::LowMemory,
            Some(false) => plan.mode = PlanMode::AllResident,
            None => {}
        }
        let low_memory = plan.mode == PlanMode::LowMemory;
        Ok(PreparedPipeline {
            builder: self,
            selected,
            capabilities,
            policy,
            plan,
            low_memory,
        })
    }

    fn check_lora_alpha(&self) -> Result<(), PipelineError> {
        let Some(alpha) = self.lora_alpha else {
            return Ok(());
        };
        if !self.family.preset().lora {
            return Err(PipelineError::Config(format!(
                "a LoRA alpha was given, but the {} model merges no LoRA (only longlive does)",
                self.family
            )));
        }
        if !alpha.is_finite() || alpha <= 0.0 {
            return Err(PipelineError::Config(format!(
                "the LoRA alpha must be a positive number, got {alpha}"
            )));
        }
        Ok(())
    }

    /// [`prepare`](Self::prepare)s, then finds the files (downloading them if the location
    /// is the hub), checks every file's header against the configurations and loads the models.
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        self.prepare()?.load()
    }
}

/// A pipeline whose device, precision and memory plan are settled and whose weights are not
/// read yet ([`PipelineBuilder::prepare`]).
pub struct PreparedPipeline {
    builder: PipelineBuilder,
    selected: SelectedDevice,
    capabilities: Capabilities,
    policy: PrecisionPolicy,
    plan: MemoryPlan,
    low_memory: bool,
}

impl PreparedPipeline {
    /// The device the models will run on.
    pub fn selected(&self) -> &SelectedDevice {
        &self.selected
    }

    /// The dtypes of every component.
    pub fn precision(&self) -> &PrecisionPolicy {
        &self.policy
    }

    /// The memory plan.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// Features turned off on this device, with the reason.
    pub fn disabled_features(&self) -> Vec<DisabledFeature> {
        self.capabilities.disabled_features()
    }

    /// The model hyper-parameters.
    pub fn configs(&self) -> &ModelConfigs {
        &self.builder.configs
    }

    /// The DiT checkpoint family.
    pub fn family(&self) -> ModelFamily {
        self.builder.family
    }

    /// Finds the files (downloading them if the location is the hub), checks the headers of
    /// every weight file against the configurations (so a truncated or foreign file is reported
    /// now, not at the first prompt) and loads the models.
    pub fn load(self) -> Result<Pipeline, PipelineError> {
        let PreparedPipeline {
            builder,
            selected,
            capabilities,
            policy,
            plan,
            low_memory,
        } = self;
        let configs = builder.configs;
        let family = builder.family;
        let files = builder.location.resolve_for(family, builder.decoder)?;
        let device = selected.device.clone();
        let dit = DitWeights::new(&files, family, builder.lora_alpha)?;
        // The DiT and its LoRA first: a wrong LoRA is reported before anything is loaded.
        dit.check(&configs)?;
        sf_text::check_checkpoint(&files.text_encoder, &configs.text_encoder)?;
        let text = TextConditioner::new(
            TextSettings {
                tokenizer: files.tokenizer.clone(),
                encoder: files.text_encoder.clone(),
                config: configs.text_encoder.clone(),
                text_len: configs.dit.text_len,
                precision: policy.text_encoder,
                low_memory,
                cache_dir: builder.prompt_cache,
            },
            &device,
        )?;
        let dit = dit.load(&configs, &policy, &device)?;
        let decoder = load_decoder(
            builder.decoder,
            files.decoder(builder.decoder),
            &configs,
            &policy,
            &device,
        )?;
        Ok(Pipeline {
            selected,
            capabilities,
            policy,
            plan,
            configs,
            location: builder.location,
            family,
            height: builder.height,
            width: builder.width,
            text: std::sync::Arc::new(std::sync::Mutex::new(text)),
            dit,
            decoder,
        })
    }
}

/// The DiT files of a family, with the layout of the checkpoint (from its content, then its
/// name) and the LoRA to merge.
struct DitWeights<'a> {
    path: &'a Path,
    format: sf_models::CheckpointFormat,
    lora: Option<DitLora>,
}

impl<'a> DitWeights<'a> {
    fn new(
        files: &'a crate::ModelFiles,
        family: ModelFamily,
        alpha: Option<f64>,
    ) -> Result<Self, PipelineError> {
        let lora = match (family.preset().lora, &files.lora) {
            (false, _) => None,
            (true, Some(path)) => Some(DitLora {
                path: path.clone(),
                alpha,
            }),
            (true, None) => {
                return Err(PipelineError::Config(format!(
                    "the {family} model needs its LoRA file, which the model location lacks"
                )));
            }
        };
        Ok(DitWeights {
            path: &files.dit,
            format: family.dit_format(&files.dit),
            lora,
        })
    }

    /// Every key and shape of the checkpoint and its LoRA (no tensor data read).
    fn check(&self, configs: &ModelConfigs) -> Result<(), PipelineError> {
        Ok(check_checkpoint_with_lora(
            self.path,
            &self.format,
            self.lora.as_ref(),
            &configs.dit,
        )?)
    }

    fn load(
        &self,
        configs: &ModelConfigs,
        policy: &PrecisionPolicy,
        device: &Device,
    ) -> Result<WanModel, PipelineError> {
        Ok(load_wan_model_with_lora(
            self.path,
            &self.format,
            self.lora.as_ref(),
            &configs.dit,
            device,
            policy.dit.compute,
        )?)
    }
}
