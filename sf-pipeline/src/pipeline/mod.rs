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
mod stream;
mod text;

use burn::tensor::Device;
use sf_device::{Capabilities, DisabledFeature, PrecisionPolicy, SelectedDevice};
use sf_models::WanModel;
use sf_vae::DecoderKind;
use sf_vae::taehv::TaehvDecoder;
use sf_vae::wan::WanVaeDecoder;

pub use builder::{PipelineBuilder, PreparedPipeline};
pub use config::{GenerationRequest, ModelConfigs};
pub use stream::{FrameChunk, GeneratedVideo, StreamSummary, VideoStream};
pub use text::{Conditioning, TextConditioner, TextSettings};

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
    height: usize,
    width: usize,
    text: TextConditioner,
    dit: WanModel,
    decoder: DecoderKind,
    wan_vae: Option<WanVaeDecoder>,
    taehv: Option<TaehvDecoder>,
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

    /// Video height and width in pixels.
    pub fn resolution(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// The decoder in use.
    pub fn decoder(&self) -> DecoderKind {
        self.decoder
    }

    /// Switches the decoder, loading its weights the first time (from the same model
    /// location). The next generation uses it.
    pub fn set_decoder(&mut self, kind: DecoderKind) -> Result<(), PipelineError> {
        let loaded = match kind {
            DecoderKind::WanVae => self.wan_vae.is_some(),
            DecoderKind::Taehv => self.taehv.is_some(),
        };
        if !loaded {
            let files = self.location.resolve(kind)?;
            let path = files.decoder(kind).ok_or_else(|| {
                PipelineError::Config(format!("the model location has no {kind} weights"))
            })?;
            match kind {
                DecoderKind::WanVae => {
                    self.wan_vae = Some(builder::load_wan_vae_decoder(
                        path,
                        &self.configs,
                        &self.policy,
                        self.device(),
                    )?)
                }
                DecoderKind::Taehv => {
                    self.taehv = Some(builder::load_taehv_decoder(
                        path,
                        &self.configs,
                        &self.policy,
                        self.device(),
                    )?)
                }
            }
        }
        self.decoder = kind;
        Ok(())
    }

    /// The text side (tokenizer, encoder, prompt cache).
    pub fn text(&mut self) -> &mut TextConditioner {
        &mut self.text
    }
}
