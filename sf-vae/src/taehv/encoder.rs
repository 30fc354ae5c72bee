//! The TAEHV encoder (`encoder.{idx}` of upstream `taehv.py`).
//!
//! ```text
//! 0 conv(3·patch², w) | 1 ReLU
//! stage s = 0, 1, 2 (index 2 + 5s): TPool(w) | conv(w, w, stride 2, no bias) | 3 × MemBlock(w)
//! 17 conv(w, latent)
//! ```
//!
//! Like the decoder, every layer processes all frames of the current input at once; TPools keep
//! an incomplete group of frames and MemBlocks their last input in an [`EncoderMemory`], so the
//! encoder can also consume a video piece by piece.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::blocks::{MemBlock, TPool, apply, conv3x3, per_frame, weight_dtype};
use super::config::{BLOCKS_PER_STAGE, STAGES, TaehvConfig};

/// One encoder stage: TPool, a stride-2 convolution and three MemBlocks.
#[derive(Module, Debug)]
pub struct EncoderStage {
    /// Temporal pooling (checkpoint `encoder.{2+5s}`).
    pub tpool: TPool,
    /// 3×3 stride-2 convolution without bias (`encoder.{3+5s}`).
    pub conv: Conv2d,
    /// MemBlocks (`encoder.{4+5s+k}`).
    pub blocks: Vec<MemBlock>,
}

/// The TAEHV encoder.
#[derive(Module, Debug)]
pub struct Encoder {
    /// 3×3 convolution from the (pixel-unshuffled) RGB channels (`encoder.0`).
    pub conv_in: Conv2d,
    /// The three stages.
    pub stages: Vec<EncoderStage>,
    /// 3×3 convolution to the latent channels (`encoder.17`).
    pub conv_out: Conv2d,
}

/// The encoder's state between calls: incomplete TPool groups and MemBlock memories.
#[derive(Clone, Debug, Default)]
pub struct EncoderMemory {
    pools: Vec<Option<Tensor<5>>>,
    blocks: Vec<Option<Tensor<4>>>,
}

impl EncoderMemory {
    /// Forgets everything (the next frame starts a new video).
    pub fn clear(&mut self) {
        self.pools.clear();
        self.blocks.clear();
    }
}

impl Encoder {
    /// An encoder for `config` (random weights until a checkpoint is loaded).
    pub fn new(config: &TaehvConfig, device: &Device) -> Self {
        let w = config.encoder_width;
        let stages = (0..STAGES)
            .map(|s| EncoderStage {
                tpool: TPool::new(w, config.tpool_stride(s), device),
                conv: conv3x3(w, w, 2, false, device),
                blocks: (0..BLOCKS_PER_STAGE)
                    .map(|_| MemBlock::new(w, w, device))
                    .collect(),
            })
            .collect();
        Encoder {
            conv_in: conv3x3(config.pixel_channels(), w, 1, true, device),
            stages,
            conv_out: conv3x3(w, config.latent_channels, 1, true, device),
        }
    }

    /// Encodes frames `[B, T, 3·patch², H, W]` that follow the frames already encoded with
    /// `memory` into latents `[B, T', C, H/8, W/8]`, in the weights' dtype. `None` when the
    /// frames complete no latent frame yet (they wait in the memory).
    pub fn forward(&self, frames: Tensor<5>, memory: &mut EncoderMemory) -> Option<Tensor<5>> {
        let stages = self.stages.len();
        if memory.pools.len() != stages {
            memory.pools = vec![None; stages];
            memory.blocks = vec![None; stages * BLOCKS_PER_STAGE];
        }
        let x = frames.cast(weight_dtype(&self.conv_in));
        let mut x = per_frame(x, |x| relu(apply(&self.conv_in, x)));
        for (s, stage) in self.stages.iter().enumerate() {
            x = stage.tpool.forward_stream(x, &mut memory.pools[s])?;
            x = per_frame(x, |x| apply(&stage.conv, x));
            for (k, block) in stage.blocks.iter().enumerate() {
                x = block.forward_video(x, &mut memory.blocks[s * BLOCKS_PER_STAGE + k]);
            }
        }
        Some(per_frame(x, |x| apply(&self.conv_out, x)))
    }
}
