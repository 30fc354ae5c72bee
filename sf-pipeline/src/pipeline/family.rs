//! [`ModelFamily`]: which distilled DiT the pipeline loads (Self-Forcing, or LongLive's base
//! checkpoint plus its LoRA), and the rollout defaults each was trained for ([`FamilyPreset`],
//! plain data).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sf_device::checkpoint::TensorFile;
use sf_models::CheckpointFormat;

use crate::rollout::{LongLiveConfig, RolloutConfig};

/// A DiT checkpoint family on Wan2.1-T2V-1.3B.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFamily {
    /// Self-Forcing's `self_forcing_dmd.pt` (`generator_ema`), global KV cache.
    #[default]
    SelfForcing,
    /// LongLive 1.0: `longlive_base.pt` (`generator`) with `lora.pt` merged at load, a 12-frame
    /// window with a 3-frame sink.
    #[serde(rename = "longlive")]
    LongLive,
}

/// What a family sets: the checkpoint entry it reads and its rollout defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyPreset {
    /// The name on the command line (`self-forcing`, `longlive`).
    pub name: &'static str,
    /// Human-readable name.
    pub description: &'static str,
    /// The top-level entry of the DiT pickle.
    pub dit_entry: &'static str,
    /// Whether a LoRA file is merged into the DiT.
    pub lora: bool,
    /// Rolling KV window in latent frames (`None`: global cache).
    pub local_attn_size: Option<usize>,
    /// Attention-sink frames.
    pub sink_size: usize,
    /// LongLive's KV-cache rules and prompt switch (`RolloutConfig::longlive`); Self-Forcing's
    /// when false.
    pub longlive_rules: bool,
    /// LongLive's `global_sink`: the sink keeps the first prompt's keys across prompt switches.
    pub global_sink: bool,
}

/// Self-Forcing (`guandeh17/Self-Forcing`, `configs/self_forcing_dmd.yaml`).
pub const SELF_FORCING: FamilyPreset = FamilyPreset {
    name: "self-forcing",
    description: "Self-Forcing",
    dit_entry: "generator_ema",
    lora: false,
    local_attn_size: None,
    sink_size: 0,
    longlive_rules: false,
    global_sink: false,
};

/// LongLive 1.0 (`NVlabs/LongLive` v1.0, `configs/longlive_interactive_inference.yaml`).
pub const LONGLIVE: FamilyPreset = FamilyPreset {
    name: "longlive",
    description: "LongLive",
    dit_entry: "generator",
    lora: true,
    local_attn_size: Some(12),
    sink_size: 3,
    longlive_rules: true,
    global_sink: true,
};

impl ModelFamily {
    /// Every family.
    pub const ALL: [ModelFamily; 2] = [ModelFamily::SelfForcing, ModelFamily::LongLive];

    /// Its preset.
    pub fn preset(self) -> &'static FamilyPreset {
        match self {
            ModelFamily::SelfForcing => &SELF_FORCING,
            ModelFamily::LongLive => &LONGLIVE,
        }
    }

    /// Sets the family's KV window and sink on `rollout` (the caller's own settings go after).
    pub fn apply_rollout_defaults(self, rollout: &mut RolloutConfig) {
        let preset = self.preset();
        rollout.local_attn_size = preset.local_attn_size;
        rollout.sink_size = preset.sink_size;
        // LongLive's cache rules (and its prompt switch) for LongLive; Self-Forcing's otherwise.
        rollout.longlive = preset.longlive_rules.then(|| LongLiveConfig {
            global_sink: preset.global_sink,
            ..rollout.longlive.unwrap_or_default()
        });
    }

    /// The layout of the DiT file at `path`: original Wan names in safetensors, else this
    /// family's pickle entry.
    pub fn dit_format(self, path: &Path) -> CheckpointFormat {
        match TensorFile::from_extension(path) {
            TensorFile::Safetensors => CheckpointFormat::WanSafetensors,
            TensorFile::Pickle { .. } => CheckpointFormat::SelfForcingPt {
                top_level_key: self.preset().dit_entry.into(),
            },
        }
    }
}

impl fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.preset().name)
    }
}

/// A family name that is not one of [`ModelFamily::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown model '{0}': use self-forcing or longlive")]
pub struct UnknownFamily(String);

impl FromStr for ModelFamily {
    type Err = UnknownFamily;

    fn from_str(text: &str) -> Result<Self, UnknownFamily> {
        let name = text.trim().to_ascii_lowercase().replace('_', "-");
        ModelFamily::ALL
            .into_iter()
            .find(|f| f.preset().name == name || (name == "selfforcing" && *f == Self::SelfForcing))
            .ok_or_else(|| UnknownFamily(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_presets_are_upstreams() {
        for family in ModelFamily::ALL {
            assert_eq!(family.to_string().parse::<ModelFamily>().unwrap(), family);
            let json = serde_json::to_string(&family).unwrap();
            assert_eq!(json, format!("\"{family}\""));
        }
        assert!("wan".parse::<ModelFamily>().is_err());
        let mut rollout = RolloutConfig::default();
        ModelFamily::LongLive.apply_rollout_defaults(&mut rollout);
        assert_eq!((rollout.local_attn_size, rollout.sink_size), (Some(12), 3));
        let rules = LongLiveConfig {
            global_sink: true,
            relative_rope: false,
        };
        assert_eq!(rollout.longlive, Some(rules));
        let longlive = ModelFamily::LongLive.preset();
        assert!(longlive.global_sink && longlive.lora && longlive.dit_entry == "generator");
        ModelFamily::SelfForcing.apply_rollout_defaults(&mut rollout);
        assert_eq!(rollout, RolloutConfig::default());
    }
}
