//! TAEHV: the tiny decoder (and encoder) for Wan2.1 latents, with per-block memory.
//!
//! [`Taehv`] decodes or encodes a whole video at once; [`TaehvDecoder`] decodes chunk by chunk
//! with persistent memories (the [`VideoDecoder`](crate::VideoDecoder) the pipeline uses) and
//! yields exactly the frames of the whole-video decode. Weights load from upstream
//! `taew2_1.pth` / `taew2_1.safetensors` with [`load_taehv`].

mod blocks;
mod config;
mod decoder;
mod encoder;
mod loader;
mod model;
mod taehv_decoder;

pub use config::TaehvConfig;
pub use decoder::{Decoder, DecoderMemory};
pub use encoder::{Encoder, EncoderMemory};
pub use loader::{CheckpointInfo, check_checkpoint, expected_keys, load_taehv, module_paths};
pub use model::{Taehv, pixel_shuffle, pixel_unshuffle, trim_and_clamp};
pub use taehv_decoder::TaehvDecoder;
