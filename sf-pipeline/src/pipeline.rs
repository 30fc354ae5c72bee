//! The pipeline other programs embed: prompt -> umT5 -> Self-Forcing rollout on the causal DiT
//! -> Wan VAE or TAEHV -> 8-bit RGB frames, chunk by chunk.
//!
//! [`Pipeline::builder`] takes a device choice, a precision override, a decoder choice and a
//! model location, checks the memory plan and loads the models. [`Pipeline::stream`] yields
//! decoded [`FrameChunk`]s as the rollout produces them (cancellable through the request's
//! [`CancelToken`](crate::CancelToken)); [`Pipeline::generate`] runs to completion.
//!
//! ```no_run
//! use sf_pipeline::{GenerationRequest, ModelLocation, Pipeline};
//! use sf_vae::DecoderKind;
//!
//! let mut pipeline = Pipeline::builder()
//!     .device("auto".parse()?)
//!     .decoder(DecoderKind::Taehv)
//!     .models(ModelLocation::Local("wan_models_root".into()))
//!     .build()?;
//! let request = GenerationRequest::new("a red fox running through snow").seed(42);
//! for chunk in pipeline.stream(&request)? {
//!     let chunk = chunk?;
//!     println!("chunk {}: {} frames", chunk.index, chunk.frames.len());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod config;
mod family;
mod live;
mod stream;
mod text;

use std::path::Path;

use burn::tensor::Device;
use sf_device::{Capabilities, DisabledFeature, PrecisionPolicy, SelectedDevice};
use sf_models::WanModel;
use sf_vae::wan::DecodeOptions;
use sf_vae::{DecoderConfigs, DecoderKind, VideoDecoder};

pub use builder::{PipelineBuilder, PreparedPipeline};
pub use config::{GenerationRequest, ModelConfigs};
pub use family::{FamilyPreset, LONGLIVE, ModelFamily, SELF_FORCING, UnknownFamily};
pub use live::PromptEncoder;
use live::SharedText;
pub use stream::{FrameChunk, GeneratedVideo, PromptStart, StreamEnd, StreamSummary, VideoStream};
use text::TextConditioner;

use crate::plan::MemoryPlan;
use crate::{ModelLocation, PipelineError};

/// A loaded text-to-video pipeline on one device.
pub struct Pipeline {
    selected: SelectedDevice,
    capabilities: Capabilities,
    policy: PrecisionPolicy,
    plan: MemoryPlan,
    configs: ModelConfigs,
    location: ModelLocation,
    family: ModelFamily,
    height: usize,
    width: usize,
    text: SharedText,
    dit: WanModel,
    decoder: Box<dyn VideoDecoder + Send>,
}

impl Pipeline {
    /// A builder with the defaults: automatic device, the backend's default precision, the Wan
    /// VAE, the Hugging Face hub, 480x832.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// The device the models run on.
    pub fn device(&self) -> &Device {
        &self.selected.device
    }

    /// The device, as selected (name, backend, software or not).
    pub fn selected(&self) -> &SelectedDevice {
        &self.selected
    }

    /// What the device supports.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Features turned off on this device, with the reason.
    pub fn disabled_features(&self) -> Vec<DisabledFeature> {
        self.capabilities.disabled_features()
    }

    /// The dtypes of every component.
    pub fn precision(&self) -> &PrecisionPolicy {
        &self.policy
    }

    /// The memory plan the builder chose.
    pub fn plan(&self) -> &MemoryPlan {
        &self.plan
    }

    /// The models' hyper-parameters.
    pub fn configs(&self) -> &ModelConfigs {
        &self.configs
    }

    /// The DiT checkpoint family.
    pub fn family(&self) -> ModelFamily {
        self.family
    }

    /// Video height and width in pixels.
    pub fn resolution(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The decoder in use.
    pub fn decoder(&self) -> DecoderKind {
        self.decoder.kind()
    }

    /// Switches the decoder: loads `kind`'s weights from the same model location and replaces
    /// the current decoder with it (nothing happens if `kind` is already in use). Only one
    /// decoder is held, so switching back reads the weights again (in f32 TAEHV ~45 MB, the Wan
    /// VAE's decoder half ~0.3 GB); while loading, both are in memory. On an error the current decoder
    /// stays. The next generation uses the new one.
    pub fn set_decoder(&mut self, kind: DecoderKind) -> Result<(), PipelineError> {
        if self.decoder.kind() != kind {
            let files = self.location.resolve_for(self.family, kind)?;
            self.decoder = load_decoder(
                kind,
                files.decoder(kind),
                &self.configs,
                &self.policy,
                self.device(),
            )?;
        }
        Ok(())
    }

    /// The text side (tokenizer, encoder, prompt cache), shared with the
    /// [`PromptEncoder`]s of a running stream (which wait while this is held).
    pub fn text(&self) -> std::sync::MutexGuard<'_, TextConditioner> {
        live::lock(&self.text)
    }
}

/// Loads the decoder `kind` from `path` (the model location's file for it, if any) with the
/// pipeline's configurations and `kind`'s precision.
fn load_decoder(
    kind: DecoderKind,
    path: Option<&Path>,
    configs: &ModelConfigs,
    policy: &PrecisionPolicy,
    device: &Device,
) -> Result<Box<dyn VideoDecoder + Send>, PipelineError> {
    let path = path.ok_or_else(|| {
        PipelineError::Config(format!("the model location has no {kind} weights"))
    })?;
    let decoder_configs = DecoderConfigs {
        wan_vae: configs.wan_vae.clone(),
        wan_vae_options: DecodeOptions::default(),
        taehv: configs.taehv.clone(),
    };
    let dtype = policy.get(kind.component()).compute;
    Ok(sf_vae::load_decoder(
        kind,
        path,
        &decoder_configs,
        device,
        dtype,
    )?)
}
