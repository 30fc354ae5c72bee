//! Model configurations as the fixtures store them: the `config` object of a file's
//! `__metadata__.fixture` JSON holds the reference constructor's arguments (`WanModel`,
//! `T5Encoder`, `WanVAE_`, `TAEHV`), and a rollout file's holds its rollout and scheduler.
//!
//! Each function takes a [`ConfigSource`]: an open [`Fixture`], the path of a fixture file (only
//! its header is read) or the JSON object itself (e.g. a manifest's `config`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use sf_models::WanConfig;
use sf_pipeline::{LongLiveConfig, RolloutConfig, SchedulerConfig};
use sf_text::UmT5Config;
use sf_vae::taehv::TaehvConfig;
use sf_vae::wan::WanVaeConfig;

use crate::fixture::{Fixture, FixtureError, file_name};

/// Where a configuration JSON object comes from.
pub trait ConfigSource {
    /// The `config` object and a name for errors.
    fn config_json(&self) -> Result<(String, serde_json::Value), FixtureError>;
}

impl ConfigSource for Fixture {
    fn config_json(&self) -> Result<(String, serde_json::Value), FixtureError> {
        Ok((self.file_name(), self.config().clone()))
    }
}

impl ConfigSource for Path {
    fn config_json(&self) -> Result<(String, serde_json::Value), FixtureError> {
        let origin = file_name(self);
        let header =
            sf_device::safetensors::read_header(self).map_err(|e| FixtureError::Format {
                path: self.to_path_buf(),
                reason: e.to_string(),
            })?;
        let json = header
            .metadata
            .get("fixture")
            .ok_or_else(|| FixtureError::Config {
                origin: origin.clone(),
                reason: "no __metadata__.fixture entry".into(),
            })?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| FixtureError::Config {
                origin: origin.clone(),
                reason: format!("__metadata__.fixture is not JSON: {e}"),
            })?;
        Ok((origin, value["config"].clone()))
    }
}

impl ConfigSource for PathBuf {
    fn config_json(&self) -> Result<(String, serde_json::Value), FixtureError> {
        self.as_path().config_json()
    }
}

impl ConfigSource for serde_json::Value {
    fn config_json(&self) -> Result<(String, serde_json::Value), FixtureError> {
        Ok(("configuration JSON".into(), self.clone()))
    }
}

fn read<T: DeserializeOwned>(
    source: &(impl ConfigSource + ?Sized),
    what: &str,
) -> Result<(String, serde_json::Value, T), FixtureError> {
    let (origin, value) = source.config_json()?;
    if !value.is_object() {
        return Err(FixtureError::Config {
            origin,
            reason: format!("expected a {what} configuration object, found {value}"),
        });
    }
    let config = serde_json::from_value(value.clone()).map_err(|e| FixtureError::Config {
        origin: origin.clone(),
        reason: format!("cannot read the {what} configuration: {e}"),
    })?;
    Ok((origin, value, config))
}

fn invalid(origin: String, e: impl std::fmt::Display) -> FixtureError {
    FixtureError::Config {
        origin,
        reason: e.to_string(),
    }
}

/// The `WanModel` constructor arguments (`model_type`, `patch_size`, …, `window_size`,
/// `qk_norm`, `cross_attn_norm`, `eps`), validated. `model_type` must be `t2v` if present and
/// `window_size` `[-1, -1]` (the causal model has no bidirectional local window).
pub fn dit(source: &(impl ConfigSource + ?Sized)) -> Result<WanConfig, FixtureError> {
    let (origin, value, config) = read::<WanConfig>(source, "WanModel")?;
    if let Some(kind) = value.get("model_type")
        && kind.as_str() != Some("t2v")
    {
        let reason = format!("model_type {kind} is not supported (only \"t2v\")");
        return Err(invalid(origin, reason));
    }
    if let Some(window) = value.get("window_size")
        && !window
            .as_array()
            .is_some_and(|w| w.iter().all(|v| v.as_i64() == Some(-1)))
    {
        let reason = format!("window_size {window} is not supported (only [-1, -1])");
        return Err(invalid(origin, reason));
    }
    config.validate().map_err(|e| invalid(origin, e))?;
    Ok(config)
}

/// The `T5Encoder` arguments (`vocab`, `dim`, `dim_attn`, `dim_ffn`, `num_heads`,
/// `num_layers`, `num_buckets`, `max_distance`, `shared_pos`, optional `eps`), validated.
pub fn umt5(source: &(impl ConfigSource + ?Sized)) -> Result<UmT5Config, FixtureError> {
    let (origin, _, config) = read::<UmT5Config>(source, "T5Encoder")?;
    config.validate().map_err(|e| invalid(origin, e))?;
    Ok(config)
}

/// The `WanVAE_` arguments (`dim`, `z_dim`, `dim_mult`, `num_res_blocks`, `attn_scales`,
/// `temperal_downsample`, optional `latents_mean` / `latents_std`), validated.
pub fn wan_vae(source: &(impl ConfigSource + ?Sized)) -> Result<WanVaeConfig, FixtureError> {
    let (origin, _, config) = read::<WanVaeConfig>(source, "Wan VAE")?;
    config.validate().map_err(|e| invalid(origin, e))?;
    Ok(config)
}

/// The TAEHV arguments (`n_f`, `latent_channels`, `patch_size`, `decoder_time_upscale`,
/// `decoder_space_upscale`; the encoder fields default to upstream's), validated.
pub fn taehv(source: &(impl ConfigSource + ?Sized)) -> Result<TaehvConfig, FixtureError> {
    let (origin, _, config) = read::<TaehvConfig>(source, "TAEHV")?;
    config.validate().map_err(|e| invalid(origin, e))?;
    Ok(config)
}

/// The rollout a `rollout_*.safetensors` file stores (`rollout`, `scheduler`,
/// `num_frame_per_block`, `cache_capacity_frames`, the table `sched_timesteps`); every field is
/// required. A LongLive file (`rollout.global_sink` present, FORMAT.md §2.13) selects
/// LongLive's cache rules with its `global_sink` and `use_infinite_attention`.
pub fn rollout(fx: &Fixture) -> Result<RolloutConfig, FixtureError> {
    let origin = fx.file_name();
    let cfg = fx.config();
    let field = |section: &str, key: &str| {
        let value = if section.is_empty() {
            &cfg[key]
        } else {
            &cfg[section][key]
        };
        if value.is_null() {
            let dotted = [section, key].join(".");
            let reason = format!("its metadata config has no '{}'", dotted.trim_matches('.'));
            Err(invalid(origin.clone(), reason))
        } else {
            Ok(value)
        }
    };
    let bad =
        |key: &str, what: &str| invalid(origin.clone(), format!("config {key} is not {what}"));
    let uint = |section: &str, key: &str| {
        field(section, key)?
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| bad(key, "an unsigned integer"))
    };
    let float = |section: &str, key: &str| {
        field(section, key)?
            .as_f64()
            .ok_or_else(|| bad(key, "a number"))
    };
    let boolean = |section: &str, key: &str| {
        field(section, key)?
            .as_bool()
            .ok_or_else(|| bad(key, "a boolean"))
    };
    let longlive = cfg["rollout"].get("global_sink").is_some();
    let window = field("rollout", "local_attn_size")?
        .as_i64()
        .ok_or_else(|| bad("rollout.local_attn_size", "an integer"))?;
    let steps = field("scheduler", "denoising_step_list")?
        .as_array()
        .ok_or_else(|| bad("scheduler.denoising_step_list", "a list"))?
        .iter()
        .map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| bad("scheduler.denoising_step_list", "a list of timesteps"))?;
    Ok(RolloutConfig {
        scheduler: SchedulerConfig {
            shift: float("scheduler", "shift")? as f32,
            // The length of the stored table, `sched_timesteps` (1000 upstream).
            num_train_timesteps: fx.shape("sched_timesteps")?.iter().product(),
            denoising_step_list: steps,
            warp_denoising_step: boolean("scheduler", "warp_denoising_step")?,
        },
        num_frame_per_block: uint("", "num_frame_per_block")?,
        // LongLive has no image-to-video path and its files no such key.
        independent_first_frame: match longlive {
            true if cfg["rollout"].get("independent_first_frame").is_none() => false,
            _ => boolean("rollout", "independent_first_frame")?,
        },
        context_noise: float("rollout", "context_noise")? as f32,
        local_attn_size: (window >= 0).then_some(window as usize),
        sink_size: uint("rollout", "sink_size")?,
        global_cache_frames: uint("", "cache_capacity_frames")?,
        skip_last_refresh: false,
        // LongLive's files (FORMAT.md §2.13) say `global_sink`; Self-Forcing's do not.
        longlive: match longlive {
            false => None,
            true => Some(LongLiveConfig {
                global_sink: boolean("rollout", "global_sink")?,
                relative_rope: boolean("rollout", "use_infinite_attention")?,
            }),
        },
    })
}
