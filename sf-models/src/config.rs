//! Hyper-parameters of the Wan2.1 DiT (`WanModel` constructor arguments).

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Hyper-parameters of the (causal) Wan2.1 text-to-video DiT.
///
/// Field names follow the `WanModel` constructor of `wan/modules/model.py`, so the JSON stored in
/// the fixtures' metadata (and HF `config.json`-style dictionaries) deserialises directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WanConfig {
    /// Patch size (t, h, w). Only a temporal patch of 1 is supported (per-frame modulation).
    pub patch_size: [usize; 3],
    /// Number of text-context rows the DiT attends to (shorter contexts are zero-padded).
    pub text_len: usize,
    /// Latent channels in.
    pub in_dim: usize,
    /// Hidden width.
    pub dim: usize,
    /// Width of the feed-forward hidden layer.
    pub ffn_dim: usize,
    /// Width of the sinusoidal time embedding.
    pub freq_dim: usize,
    /// Width of the text-encoder output.
    pub text_dim: usize,
    /// Latent channels out.
    pub out_dim: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Epsilon of every norm.
    pub eps: f64,
    /// RMSNorm on q and k (over the full width).
    pub qk_norm: bool,
    /// Affine LayerNorm (`norm3`) before cross-attention.
    pub cross_attn_norm: bool,
}

impl WanConfig {
    /// The Wan2.1-T2V-1.3B configuration (also the Self-Forcing generator).
    pub fn wan2_1_t2v_1_3b() -> Self {
        WanConfig {
            patch_size: [1, 2, 2],
            text_len: 512,
            in_dim: 16,
            dim: 1536,
            ffn_dim: 8960,
            freq_dim: 256,
            text_dim: 4096,
            out_dim: 16,
            num_heads: 12,
            num_layers: 30,
            eps: 1e-6,
            qk_norm: true,
            cross_attn_norm: true,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim / self.num_heads.max(1)
    }

    /// Values per token produced by the head: `out_dim · prod(patch_size)`.
    pub fn head_out_dim(&self) -> usize {
        self.out_dim * self.patch_size.iter().product::<usize>()
    }

    /// Checks the configuration is one this implementation can run.
    pub fn validate(&self) -> Result<(), ModelError> {
        let mut problems = Vec::new();
        let positive = [
            ("text_len", self.text_len),
            ("in_dim", self.in_dim),
            ("dim", self.dim),
            ("ffn_dim", self.ffn_dim),
            ("freq_dim", self.freq_dim),
            ("text_dim", self.text_dim),
            ("out_dim", self.out_dim),
            ("num_heads", self.num_heads),
            ("num_layers", self.num_layers),
        ];
        for (name, value) in positive {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if self.patch_size[0] != 1 {
            problems.push(format!(
                "patch_size {:?}: only a temporal patch of 1 is supported",
                self.patch_size
            ));
        }
        if self.patch_size[1] == 0 || self.patch_size[2] == 0 {
            problems.push(format!("patch_size {:?} has a zero entry", self.patch_size));
        }
        if self.num_heads > 0 && !self.dim.is_multiple_of(self.num_heads) {
            problems.push(format!(
                "dim {} is not divisible by num_heads {}",
                self.dim, self.num_heads
            ));
        } else if self.num_heads > 0 && !self.head_dim().is_multiple_of(2) {
            problems.push(format!(
                "head_dim {} must be even (RoPE rotates channel pairs)",
                self.head_dim()
            ));
        }
        if !self.freq_dim.is_multiple_of(2) {
            problems.push(format!("freq_dim {} must be even", self.freq_dim));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            problems.push(format!("eps {} must be a positive number", self.eps));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Config(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_is_valid() {
        let c = WanConfig::wan2_1_t2v_1_3b();
        c.validate().unwrap();
        assert_eq!(c.head_dim(), 128);
        assert_eq!(c.head_out_dim(), 64);
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let tiny = WanConfig {
            dim: 32,
            ffn_dim: 64,
            text_dim: 24,
            text_len: 16,
            num_heads: 2,
            num_layers: 2,
            ..WanConfig::wan2_1_t2v_1_3b()
        };
        tiny.validate().unwrap();
        assert_eq!(tiny.head_dim(), 16);
        let odd_heads = WanConfig {
            num_heads: 3,
            ..tiny.clone()
        };
        assert!(matches!(odd_heads.validate(), Err(ModelError::Config(_))));
        // head_dim 15 is odd.
        let c = WanConfig {
            dim: 30,
            num_heads: 2,
            ..WanConfig::wan2_1_t2v_1_3b()
        };
        assert!(c.validate().is_err());
        let temporal_patch = WanConfig {
            patch_size: [2, 2, 2],
            ..tiny
        };
        assert!(temporal_patch.validate().is_err());
    }
}
