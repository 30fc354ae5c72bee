//! The TAEHV decoder (`decoder.{idx}` of upstream `taehv.py`, base variant).
//!
//! ```text
//! 0 Clamp | 1 conv(latent, n0) | 2 ReLU
//! stage s = 0, 1, 2 (index 3 + 6s): 3 × MemBlock(n_s) | Upsample | TGrow(n_s) | conv(n_s, n_{s+1}, no bias)
//! 21 ReLU | 22 conv(n3, 3·patch²)
//! ```
//!
//! One code path serves whole-video and streaming decoding: each layer processes all frames of
//! the current input at once, and every MemBlock keeps its last input frame in a
//! [`DecoderMemory`] for the next input. A MemBlock after a TGrow sees that TGrow's output frames,
//! so its memory is the last frame at its own time resolution. Decoding chunk by chunk with one
//! memory therefore gives exactly the frames of decoding everything at once, and each new latent
//! costs the same work whatever came before.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::blocks::{MemBlock, TGrow, apply, clamp, conv3x3, per_frame, upsample, weight_dtype};
use super::config::{BLOCKS_PER_STAGE, STAGES, TaehvConfig};

/// One decoder stage: three MemBlocks, nearest upsampling, TGrow and a bias-free convolution.
#[derive(Module, Debug)]
pub struct DecoderStage {
    /// MemBlocks (checkpoint `decoder.{3+6s+k}`).
    pub blocks: Vec<MemBlock>,
    /// Spatial upsampling factor (`decoder.{6+6s}`, no parameters).
    pub upsample: usize,
    /// Temporal growth (`decoder.{7+6s}`).
    pub tgrow: TGrow,
    /// 3×3 convolution to the next width, no bias (`decoder.{8+6s}`).
    pub conv: Conv2d,
}

/// The TAEHV decoder.
#[derive(Module, Debug)]
pub struct Decoder {
    /// 3×3 convolution from the latent channels (`decoder.1`).
    pub conv_in: Conv2d,
    /// The three stages.
    pub stages: Vec<DecoderStage>,
    /// 3×3 convolution to RGB (`decoder.22`).
    pub conv_out: Conv2d,
}

/// The memories of the decoder's MemBlocks between calls: each block's input frame before the
/// next input. Empty at the start of a video.
#[derive(Clone, Debug, Default)]
pub struct DecoderMemory {
    blocks: Vec<Option<Tensor<4>>>,
}

impl DecoderMemory {
    /// Whether no frame was decoded since the start of the video.
    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(Option::is_none)
    }

    /// Forgets every memory (the next frame starts a new video).
    pub fn clear(&mut self) {
        self.blocks.clear();
    }

    /// Bytes held by the memories.
    pub fn bytes(&self) -> usize {
        self.blocks
            .iter()
            .flatten()
            .map(|t| t.shape().num_elements() * t.dtype().size())
            .sum()
    }
}

impl Decoder {
    /// A decoder for `config` (random weights until a checkpoint is loaded).
    pub fn new(config: &TaehvConfig, device: &Device) -> Self {
        let n = config.n_f;
        let stages = (0..STAGES)
            .map(|s| DecoderStage {
                blocks: (0..BLOCKS_PER_STAGE)
                    .map(|_| MemBlock::new(n[s], n[s], device))
                    .collect(),
                upsample: config.space_scale(s),
                tgrow: TGrow::new(n[s], config.tgrow_stride(s), device),
                conv: conv3x3(n[s], n[s + 1], 1, false, device),
            })
            .collect();
        Decoder {
            conv_in: conv3x3(config.latent_channels, n[0], 1, true, device),
            stages,
            conv_out: conv3x3(n[3], config.pixel_channels(), 1, true, device),
        }
    }

    /// Decodes latents `[B, T, C, h, w]` that follow the frames already decoded with `memory`
    /// into raw frames `[B, T · t_upscale, 3 · patch², H, W]` (no clamp, no trim, no pixel
    /// shuffle), in the weights' dtype.
    pub fn forward(&self, latents: Tensor<5>, memory: &mut DecoderMemory) -> Tensor<5> {
        let blocks = self.stages.len() * BLOCKS_PER_STAGE;
        if memory.blocks.len() != blocks {
            memory.blocks = vec![None; blocks];
        }
        let x = latents.cast(weight_dtype(&self.conv_in));
        let mut x = per_frame(x, |x| relu(apply(&self.conv_in, clamp(x))));
        for (s, stage) in self.stages.iter().enumerate() {
            for (k, block) in stage.blocks.iter().enumerate() {
                x = block.forward_video(x, &mut memory.blocks[s * BLOCKS_PER_STAGE + k]);
            }
            x = per_frame(x, |x| upsample(x, stage.upsample));
            x = stage.tgrow.forward(x);
            x = per_frame(x, |x| apply(&stage.conv, x));
        }
        per_frame(x, |x| apply(&self.conv_out, relu(x)))
    }
}
