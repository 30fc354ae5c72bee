//! Hyper-parameters of the umT5 encoder (`T5Encoder` in Wan's `wan/modules/t5.py`).

use serde::{Deserialize, Serialize};

use crate::TextError;

fn default_eps() -> f64 {
    1e-6
}

/// Hyper-parameters of the umT5 encoder.
///
/// Field names follow the `T5Encoder` constructor of Wan's `t5.py`, so the JSON stored in the
/// fixtures' metadata deserialises directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UmT5Config {
    /// Rows of the token embedding (256384 for umT5-XXL; the tokenizer uses the first 256300).
    pub vocab: usize,
    /// Hidden width.
    pub dim: usize,
    /// Width of q, k, v (heads × head width).
    pub dim_attn: usize,
    /// Width of the gated feed-forward layer.
    pub dim_ffn: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Encoder blocks.
    pub num_layers: usize,
    /// Relative-position buckets (half per direction).
    pub num_buckets: usize,
    /// Distance from which every relative position falls in the last bucket.
    pub max_distance: usize,
    /// One relative-position embedding for all blocks (`pos_embedding`) instead of one per block.
    pub shared_pos: bool,
    /// Epsilon of every RMS norm.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

/// The configuration type the text pipeline uses.
pub type TextConfig = UmT5Config;

impl UmT5Config {
    /// umT5-XXL, encoder only (`models_t5_umt5-xxl-enc-bf16.pth`, 5.68 B parameters).
    pub fn umt5_xxl() -> Self {
        UmT5Config {
            vocab: 256384,
            dim: 4096,
            dim_attn: 4096,
            dim_ffn: 10240,
            num_heads: 64,
            num_layers: 24,
            num_buckets: 32,
            max_distance: 128,
            shared_pos: false,
            eps: 1e-6,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.dim_attn / self.num_heads.max(1)
    }

    /// Parameters of one block (with its relative-position table unless `shared_pos`).
    pub fn block_params(&self) -> u64 {
        let (d, a, f) = (self.dim as u64, self.dim_attn as u64, self.dim_ffn as u64);
        let pos = if self.shared_pos {
            0
        } else {
            (self.num_buckets * self.num_heads) as u64
        };
        2 * d + 4 * d * a + 3 * d * f + pos
    }

    /// Parameters of the whole encoder.
    pub fn num_params(&self) -> u64 {
        let shared = if self.shared_pos {
            (self.num_buckets * self.num_heads) as u64
        } else {
            0
        };
        (self.vocab * self.dim + self.dim) as u64
            + shared
            + self.num_layers as u64 * self.block_params()
    }

    /// Checks the configuration is one this implementation can run.
    pub fn validate(&self) -> Result<(), TextError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("vocab", self.vocab),
            ("dim", self.dim),
            ("dim_attn", self.dim_attn),
            ("dim_ffn", self.dim_ffn),
            ("num_heads", self.num_heads),
            ("num_buckets", self.num_buckets),
        ] {
            if value == 0 {
                problems.push(format!("{name} must be positive"));
            }
        }
        if self.num_heads > 0 && !self.dim_attn.is_multiple_of(self.num_heads) {
            problems.push(format!(
                "dim_attn {} is not divisible by num_heads {}",
                self.dim_attn, self.num_heads
            ));
        }
        // Bidirectional buckets: half per direction, half of those exact.
        if self.num_buckets < 4 {
            problems.push(format!(
                "num_buckets {} must be at least 4",
                self.num_buckets
            ));
        } else if self.max_distance <= self.num_buckets / 4 {
            problems.push(format!(
                "max_distance {} must exceed num_buckets / 4 = {}",
                self.max_distance,
                self.num_buckets / 4
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            problems.push(format!("eps {} must be a positive number", self.eps));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TextError::Config(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_matches_the_manifest_totals() {
        let c = UmT5Config::umt5_xxl();
        c.validate().unwrap();
        assert_eq!(c.head_dim(), 64);
        // manifests/umt5_xxl_enc_bf16_pth.json: total_params.
        assert_eq!(c.num_params(), 5_680_910_336);
    }

    #[test]
    fn reads_constructor_arguments_and_validates() {
        let json = serde_json::json!({
            "dim": 32, "dim_attn": 32, "dim_ffn": 64, "max_distance": 128, "num_buckets": 32,
            "num_heads": 4, "num_layers": 2, "shared_pos": false, "vocab": 1024
        });
        let c: UmT5Config = serde_json::from_value(json.clone()).unwrap();
        c.validate().unwrap();
        assert_eq!((c.dim, c.head_dim(), c.eps), (32, 8, 1e-6));
        let bad = UmT5Config { num_heads: 5, ..c };
        assert!(matches!(bad.validate(), Err(TextError::Config(_))));
        let mut missing = json;
        missing.as_object_mut().unwrap().remove("vocab");
        assert!(serde_json::from_value::<UmT5Config>(missing).is_err());
    }
}
