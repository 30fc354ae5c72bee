//! Prompt -> text embedding: tokenizer, the umT5 encoder (resident or streamed block by block,
//! as the memory plan says) and the on-disk prompt cache.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use sf_device::Precision;
use sf_text::{
    EncoderIdentity, LayerStreamingEncoder, PromptCache, Tokenized, UmT5Config, UmT5Encoder,
    UmT5Tokenizer,
};

use crate::PipelineError;

/// How the encoder's weights are held.
enum Weights {
    /// Not loaded yet (loaded at the first prompt that misses the cache).
    NotLoaded,
    /// All blocks in memory.
    Resident(UmT5Encoder),
    /// Blocks read from the checkpoint during each encode (low-memory plan).
    Streaming(LayerStreamingEncoder),
}

/// One encoded prompt.
#[derive(Clone, Debug)]
pub struct Conditioning {
    /// `[1, text_len, dim]`, rows past the prompt zero.
    pub context: Tensor<3>,
    /// The tokens.
    pub tokens: Tokenized,
    /// Whether the prompt cache had it.
    pub cache_hit: bool,
}

/// What a [`TextConditioner`] is built from.
#[derive(Clone, Debug)]
pub struct TextSettings {
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The encoder checkpoint.
    pub encoder: PathBuf,
    /// The encoder's hyper-parameters.
    pub config: UmT5Config,
    /// Tokens per prompt (the DiT's `text_len`).
    pub text_len: usize,
    /// Storage and compute dtypes.
    pub precision: Precision,
    /// Stream the encoder's blocks from the file instead of holding them.
    pub low_memory: bool,
    /// Where prompt embeddings are cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
}

/// The text side of a pipeline.
pub struct TextConditioner {
    tokenizer: UmT5Tokenizer,
    encoder_path: PathBuf,
    config: UmT5Config,
    precision: Precision,
    device: Device,
    low_memory: bool,
    weights: Weights,
    cache: Option<(PromptCache, EncoderIdentity)>,
}

impl TextConditioner {
    /// Loads the tokenizer; the encoder is loaded at the first prompt the cache does not hold
    /// (resident, or streamed block by block when `low_memory`).
    pub fn new(settings: TextSettings, device: &Device) -> Result<Self, PipelineError> {
        let TextSettings {
            tokenizer,
            encoder,
            config,
            text_len,
            precision,
            low_memory,
            cache_dir,
        } = settings;
        let tokenizer = UmT5Tokenizer::from_file(&tokenizer, text_len)?;
        if tokenizer.vocab_size() > config.vocab {
            return Err(PipelineError::Config(format!(
                "the tokenizer has {} tokens but the text encoder only {} embeddings: the \
                 tokenizer and the encoder checkpoint do not belong together",
                tokenizer.vocab_size(),
                config.vocab
            )));
        }
        let cache = match cache_dir {
            Some(dir) => Some((PromptCache::new(dir)?, EncoderIdentity::of_file(&encoder)?)),
            None => None,
        };
        Ok(TextConditioner {
            tokenizer,
            encoder_path: encoder,
            config,
            precision,
            device: device.clone(),
            low_memory,
            weights: Weights::NotLoaded,
            cache,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &UmT5Tokenizer {
        &self.tokenizer
    }

    /// Whether the encoder's weights are in memory now.
    pub fn is_resident(&self) -> bool {
        matches!(self.weights, Weights::Resident(_))
    }

    /// Whether the encoder is loaded now (resident, or open for streaming).
    pub fn is_loaded(&self) -> bool {
        !matches!(self.weights, Weights::NotLoaded)
    }

    /// Frees the encoder's weights (they are loaded again if needed).
    pub fn release(&mut self) {
        self.weights = Weights::NotLoaded;
    }

    /// Tokenizes and encodes `prompt` (cleaned as Wan does), through the prompt cache.
    pub fn encode(&mut self, prompt: &str) -> Result<Conditioning, PipelineError> {
        let tokens = self.tokenizer.encode(prompt)?;
        let key = self.cache.as_ref().map(|(cache, identity)| {
            cache.key(
                &tokens.cleaned,
                self.tokenizer.text_len(),
                identity,
                self.precision.compute,
            )
        });
        if let (Some((cache, _)), Some(key)) = (&self.cache, &key)
            && let Some(hit) = cache.get(key, &self.device)
        {
            return Ok(Conditioning {
                context: hit.unsqueeze_dim::<3>(0),
                tokens,
                cache_hit: true,
            });
        }
        let context = self.run_encoder(&tokens)?;
        if let (Some((cache, _)), Some(key)) = (&self.cache, &key) {
            let [_, l, d] = context.dims();
            cache.put(key, &context.clone().reshape([l, d]))?;
        }
        Ok(Conditioning {
            context,
            tokens,
            cache_hit: false,
        })
    }

    fn run_encoder(&mut self, tokens: &Tokenized) -> Result<Tensor<3>, PipelineError> {
        let weights = match std::mem::replace(&mut self.weights, Weights::NotLoaded) {
            Weights::NotLoaded if self.low_memory => {
                Weights::Streaming(LayerStreamingEncoder::open(
                    &self.encoder_path,
                    &self.config,
                    &self.device,
                    self.precision,
                )?)
            }
            Weights::NotLoaded => Weights::Resident(UmT5Encoder::load(
                &self.encoder_path,
                &self.config,
                &self.device,
                self.precision,
            )?),
            loaded => loaded,
        };
        let batch = std::slice::from_ref(tokens);
        let out = match &weights {
            Weights::Resident(encoder) => encoder.encode(batch),
            Weights::Streaming(encoder) => encoder.encode(batch),
            Weights::NotLoaded => Err(sf_text::TextError::Config(
                "the text encoder is not loaded".into(),
            )),
        };
        self.weights = weights;
        Ok(out?)
    }
}
