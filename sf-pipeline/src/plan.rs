//! Memory planner: estimates the bytes a generation needs and decides whether it runs with
//! everything resident, in low-memory mode, or not at all (naming what would make it fit).
//!
//! Every figure is a closed-form estimate from the models' configurations ([`ModelConfigs`]);
//! `docs/memory.md` lists the formulas. The unit tests check them against hand-computed values
//! for the real Wan2.1-T2V-1.3B configuration.

use serde::{Deserialize, Serialize};
use sf_device::{
    BackendKind, Capabilities, Component, Dtype, Precision, PrecisionPolicy, human_bytes,
};
use sf_vae::DecoderKind;

use crate::{ModelConfigs, PipelineError};

/// Parameter counts of the components. [`ModelSizes::REAL`] holds the real checkpoints' counts
/// (from the key manifests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSizes {
    /// The DiT.
    pub dit_params: u64,
    /// The whole text encoder.
    pub text_encoder_params: u64,
    /// One text encoder layer (what a layer-by-layer cast or stream holds at a time).
    pub text_encoder_layer_params: u64,
    /// Wan VAE decoder plus `conv2`.
    pub wan_vae_decoder_params: u64,
    /// TAEHV decoder.
    pub taehv_decoder_params: u64,
}

impl ModelSizes {
    /// Wan2.1-T2V-1.3B DiT, umT5-XXL encoder, Wan2.1 VAE, taew2_1.
    pub const REAL: ModelSizes = ModelSizes {
        dit_params: 1_418_996_800,
        text_encoder_params: 5_680_910_336,
        // q, k, v, o (4 x 4096^2), gate + fc1 (2 x 4096 x 10240), fc2, two norms, 32 x 64 bias.
        text_encoder_layer_params: 192_948_224,
        wan_vae_decoder_params: 73_295_603,
        taehv_decoder_params: 9_844_611,
    };
}

/// One generation as the planner sees it; the models' sizes come from [`ModelConfigs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationShape {
    /// Video height in pixels.
    pub height: usize,
    /// Video width in pixels.
    pub width: usize,
    /// Latent frames to generate (21 = 81 video frames).
    pub latent_frames: usize,
    /// Videos generated at once.
    pub batch: usize,
    /// The decoder.
    pub decoder: DecoderKind,
}

impl GenerationShape {
    /// One video of `latent_frames` at `height` x `width` through `decoder`.
    pub fn new(height: usize, width: usize, latent_frames: usize, decoder: DecoderKind) -> Self {
        GenerationShape {
            height,
            width,
            latent_frames,
            batch: 1,
            decoder,
        }
    }

    /// DiT tokens per latent frame (VAE stride 8, patch 2x2); saturates at `u64::MAX`.
    pub fn frame_tokens(&self) -> u64 {
        ((self.height / 16) as u64).saturating_mul((self.width / 16) as u64)
    }

    /// Video frames produced: 1 for the first latent frame, 4 for each later one; saturates.
    pub fn video_frames(&self) -> u64 {
        (self.latent_frames.max(1) as u64 - 1)
            .saturating_mul(4)
            .saturating_add(1)
    }
}

/// Estimated bytes of each part of a generation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// DiT weights.
    pub dit_weights: u64,
    /// Text encoder weights.
    pub text_encoder_weights: u64,
    /// Decoder weights.
    pub decoder_weights: u64,
    /// Self-attention KV cache, all layers.
    pub kv_cache: u64,
    /// Cross-attention K/V of the prompt, all layers.
    pub cross_attn_cache: u64,
    /// Peak activations of one DiT chunk forward.
    pub dit_activations: u64,
    /// Peak activations of the text encoder.
    pub text_encoder_activations: u64,
    /// Peak activations of decoding one latent frame.
    pub decoder_activations: u64,
    /// State the streaming decoder keeps between chunks (causal conv caches, MemBlock memory).
    pub decoder_state: u64,
    /// Peak with every component resident for the whole run (a live prompt switch encodes
    /// while the DiT runs).
    pub all_resident_peak: u64,
    /// Peak with the text encoder freed after encoding.
    pub low_memory_peak: u64,
}

/// How the pipeline should run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanMode {
    /// Every component stays loaded.
    AllResident,
    /// The text encoder is freed after encoding; the decoder streams chunk by chunk.
    LowMemory,
}

/// A plan that fits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// How to run.
    pub mode: PlanMode,
    /// The estimate behind it.
    pub estimate: MemoryEstimate,
    /// Bytes available.
    pub budget: u64,
}

/// Estimates the memory of `shape` with the models of `configs` under `policy`. Figures
/// saturate at `u64::MAX` (absurd sizes), which [`plan_memory`] refuses.
pub fn estimate_memory(
    configs: &ModelConfigs,
    shape: &GenerationShape,
    policy: &PrecisionPolicy,
    fused_attention: bool,
) -> Result<MemoryEstimate, PipelineError> {
    let sizes = configs.sizes()?;
    let (d, t, r) = (&configs.dit, &configs.text_encoder, &configs.rollout);
    let n = |v: usize| Sat(v as u64);
    let b = n(shape.batch);
    let dit = policy.dit;
    let kv = Sat(policy.kv_cache.storage.size());
    let te = policy.text_encoder;
    let dec = policy.get(shape.decoder.component());
    let dim = n(d.dim);
    let layers = n(d.num_layers);
    let weights =
        |params: u64, p: Precision| Sat(params) * Sat(p.storage.size()) + Sat(cast_copy(params, p));

    let dit_weights = weights(sizes.dit_params, dit);
    let text_encoder_weights = Sat(sizes.text_encoder_params) * Sat(te.storage.size())
        + Sat(cast_copy(sizes.text_encoder_layer_params, te));
    let decoder_params = match shape.decoder {
        DecoderKind::WanVae => sizes.wan_vae_decoder_params,
        DecoderKind::Taehv => sizes.taehv_decoder_params,
    };
    let decoder_weights = weights(decoder_params, dec);

    // The self-attention cache holds the window, or every frame of the video (at least what
    // the global cache is sized for).
    let cache_frames = r
        .local_attn_size
        .unwrap_or(shape.latent_frames.max(r.global_cache_frames));
    let cache_tokens = n(cache_frames) * Sat(shape.frame_tokens());
    let kv_cache = b * layers * Sat(2) * cache_tokens * dim * kv;
    let cross_attn_cache = b * layers * Sat(2) * n(d.text_len) * dim * kv;

    // One chunk forward: residual stream, norm/modulated copies, q/k/v/attention output
    // (8 x [L, dim]) and the FFN's two [L, ffn] tensors, plus the attention workspace.
    let queries = n(r.num_frame_per_block) * Sat(shape.frame_tokens());
    let heads = n(d.num_heads);
    let attention_workspace = if fused_attention {
        // Flash-style: f32 accumulators and statistics per query, one key block at a time.
        heads * queries * (dim / heads + Sat(2 + ATTENTION_KEY_BLOCK)) * Sat(4)
    } else {
        // Query tiles against every key: scores and probabilities in f32.
        heads * queries.min(Sat(ATTENTION_QUERY_TILE)) * cache_tokens * Sat(4 * 2)
    };
    let dit_activations = b
        * (queries * (Sat(8) * dim + Sat(2) * n(d.ffn_dim)) * Sat(dit.compute.size())
            + attention_workspace);

    // Text encoder: hidden states and q/k/v/o (5 x [L, d]), the gated FFN (3 x [L, ffn]) and the
    // unscaled f32 score matrix with its position bias (2 x [heads, L, L]).
    let tl = n(d.text_len);
    let text_encoder_activations = b
        * (tl * (Sat(5) * n(t.dim) + Sat(3) * n(t.dim_ffn)) * Sat(te.compute.size())
            + Sat(2) * n(t.num_heads) * tl * tl * Sat(4));

    let pixels = n(shape.height) * n(shape.width);
    let c = Sat(dec.compute.size());
    let (decoder_activations, decoder_state) = match shape.decoder {
        // Four live [96, 4 frames, H, W] tensors at full resolution; the causal-conv cache keeps
        // two frames per conv: upstream measured 1.76 GiB in fp16 at 480x832.
        DecoderKind::WanVae => (
            b * Sat(4 * 96 * 4) * pixels * c,
            b * Sat(WAN_VAE_CACHE_F16_480P) * pixels / Sat(480 * 832) * c / Sat(2),
        ),
        // Three live [64, 4 frames, H, W] tensors; MemBlocks keep the previous frame of each
        // of nine blocks (three at each of 1/8, 1/4, 1/2 resolution with 256/128/64 channels).
        DecoderKind::Taehv => (
            b * Sat(3 * 64 * 4) * pixels * c,
            b * Sat(3)
                * (Sat(256) * pixels / Sat(64)
                    + Sat(128) * pixels / Sat(16)
                    + Sat(64) * pixels / Sat(4))
                * c,
        ),
    };

    let activation_peak = dit_activations.max(decoder_activations);
    let generation_state =
        dit_weights + decoder_weights + kv_cache + cross_attn_cache + decoder_state;
    // A live prompt switch encodes while the DiT computes a chunk: both activations at once.
    let all_resident_peak =
        generation_state + text_encoder_weights + activation_peak + text_encoder_activations;
    let low_memory_peak =
        (generation_state + activation_peak).max(text_encoder_weights + text_encoder_activations);
    Ok(MemoryEstimate {
        dit_weights: dit_weights.0,
        text_encoder_weights: text_encoder_weights.0,
        decoder_weights: decoder_weights.0,
        kv_cache: kv_cache.0,
        cross_attn_cache: cross_attn_cache.0,
        dit_activations: dit_activations.0,
        text_encoder_activations: text_encoder_activations.0,
        decoder_activations: decoder_activations.0,
        decoder_state: decoder_state.0,
        all_resident_peak: all_resident_peak.0,
        low_memory_peak: low_memory_peak.0,
    })
}

/// A byte count that saturates at `u64::MAX` and stays there (a division does not bring a
/// saturated figure back into range).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Sat(u64);

impl std::ops::Add for Sat {
    type Output = Sat;
    fn add(self, o: Sat) -> Sat {
        Sat(self.0.saturating_add(o.0))
    }
}

impl std::ops::Mul for Sat {
    type Output = Sat;
    fn mul(self, o: Sat) -> Sat {
        Sat(self.0.saturating_mul(o.0))
    }
}

impl std::ops::Div for Sat {
    type Output = Sat;
    fn div(self, o: Sat) -> Sat {
        if self.0 == u64::MAX {
            self
        } else {
            Sat(self.0 / o.0.max(1))
        }
    }
}

/// Query tile of the non-fused attention path.
pub const ATTENTION_QUERY_TILE: u64 = 1024;
/// Key block of fused attention kernels.
pub const ATTENTION_KEY_BLOCK: u64 = 64;
/// Upstream's measured Wan VAE streaming cache at 480x832 in fp16 (32 tensors).
const WAN_VAE_CACHE_F16_480P: u64 = 1_889_785_610; // 1.76 GiB

/// Weights stored in one dtype and computed in another need a cast copy of the part in use.
fn cast_copy(params: u64, p: Precision) -> u64 {
    if p.storage == p.compute {
        0
    } else {
        params.saturating_mul(p.compute.size())
    }
}

/// Decides how `shape` runs with the models of `configs` within `budget` bytes, or refuses with
/// what would make it fit ([`PipelineError::DoesNotFit`]).
pub fn plan_memory(
    configs: &ModelConfigs,
    shape: &GenerationShape,
    policy: &PrecisionPolicy,
    caps: &Capabilities,
    budget: u64,
) -> Result<MemoryPlan, PipelineError> {
    let estimate = estimate_memory(configs, shape, policy, caps.fused_attention)?;
    if estimate.low_memory_peak == u64::MAX {
        return Err(PipelineError::DoesNotFit {
            needed: "more than 16 EiB (the sizes overflow 64-bit arithmetic)".into(),
            budget: human_bytes(budget),
            suggestions: "a smaller resolution, fewer latent frames or a smaller model".into(),
        });
    }
    let mode = if estimate.all_resident_peak < u64::MAX && estimate.all_resident_peak <= budget {
        PlanMode::AllResident
    } else if estimate.low_memory_peak <= budget {
        PlanMode::LowMemory
    } else {
        return Err(PipelineError::DoesNotFit {
            needed: human_bytes(estimate.low_memory_peak),
            budget: human_bytes(budget),
            suggestions: suggestions(configs, shape, policy, caps, budget)?,
        });
    };
    Ok(MemoryPlan {
        mode,
        estimate,
        budget,
    })
}

fn suggestions(
    configs: &ModelConfigs,
    shape: &GenerationShape,
    policy: &PrecisionPolicy,
    caps: &Capabilities,
    budget: u64,
) -> Result<String, PipelineError> {
    let peak = |c: &ModelConfigs, s: &GenerationShape, p: &PrecisionPolicy| {
        estimate_memory(c, s, p, caps.fused_attention).map(|e| e.low_memory_peak)
    };
    let with_window = |window: usize| {
        let mut c = configs.clone();
        c.rollout.local_attn_size = Some(window);
        c
    };
    let mut out = Vec::new();
    let min_window = configs
        .rollout
        .num_frame_per_block
        .saturating_add(configs.rollout.sink_size)
        .saturating_add(1);
    let current = configs
        .rollout
        .local_attn_size
        .unwrap_or(shape.latent_frames.max(configs.rollout.global_cache_frames));
    // The peak grows with the window: the largest window that fits, by bisection.
    let fits = |w: usize| peak(&with_window(w), shape, policy).map(|p| p <= budget);
    if min_window < current && fits(min_window)? {
        let (mut lo, mut hi) = (min_window, current);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? { lo = mid } else { hi = mid }
        }
        out.push(format!(
            "a rolling KV window of {lo} latent frames (--kv-window {lo}, needs {})",
            human_bytes(peak(&with_window(lo), shape, policy)?)
        ));
    }
    let half = if caps.bf16 && caps.backend != BackendKind::Cpu {
        Dtype::Bf16
    } else {
        Dtype::F16
    };
    if caps.unsupported_reason(half).is_none() {
        let mut p = *policy;
        for c in [Component::Dit, Component::KvCache, Component::TextEncoder] {
            p = p.with(c, Precision::uniform(half));
        }
        if p != *policy {
            out.push(format!(
                "{half} weights and KV cache (--precision {half}, needs {})",
                human_bytes(peak(configs, shape, &p)?)
            ));
        }
    }
    if shape.decoder == DecoderKind::WanVae {
        let s = GenerationShape {
            decoder: DecoderKind::Taehv,
            ..*shape
        };
        out.push(format!(
            "the TAEHV decoder (--decoder taehv, needs {})",
            human_bytes(peak(configs, &s, policy)?)
        ));
    }
    Ok(if out.is_empty() {
        "a smaller resolution or fewer latent frames".into()
    } else {
        out.join("; or ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: GenerationShape = GenerationShape {
        height: 480,
        width: 832,
        latent_frames: 21,
        batch: 1,
        decoder: DecoderKind::WanVae,
    };

    fn real() -> ModelConfigs {
        ModelConfigs::default()
    }

    fn window(frames: usize) -> ModelConfigs {
        let mut c = real();
        c.rollout.local_attn_size = Some(frames);
        c
    }

    fn bf16_policy() -> PrecisionPolicy {
        PrecisionPolicy::f32().with_overrides("bf16").unwrap()
    }

    #[test]
    fn real_shape_token_counts() {
        assert_eq!(REAL.frame_tokens(), 1560);
        assert_eq!(21 * REAL.frame_tokens(), 32_760);
        assert_eq!(REAL.video_frames(), 81);
    }

    #[test]
    fn real_kv_cache_and_weights_match_hand_computed_figures() {
        let e = estimate_memory(&real(), &REAL, &bf16_policy(), true).unwrap();
        // 30 layers x (K and V) x 32760 tokens x 1536 x 2 bytes.
        assert_eq!(e.kv_cache, 30 * 2 * 32_760 * 1536 * 2);
        assert_eq!(e.kv_cache, 6_038_323_200);
        // 30 layers x 2 x 512 text tokens x 1536 x 2 bytes = 90 MiB.
        assert_eq!(e.cross_attn_cache, 94_371_840);
        assert_eq!(e.dit_weights, 2 * 1_418_996_800);
        assert_eq!(e.text_encoder_weights, 2 * 5_680_910_336);
        assert_eq!(e.decoder_weights, 2 * 73_295_603);

        let f32 = estimate_memory(&real(), &REAL, &PrecisionPolicy::f32(), true).unwrap();
        assert_eq!(f32.kv_cache, 2 * e.kv_cache);
        assert_eq!(f32.dit_weights, 4 * 1_418_996_800);

        // A 12-frame rolling window (LongLive) in bf16: 3.45 GB.
        let w = estimate_memory(&window(12), &REAL, &bf16_policy(), true).unwrap();
        assert_eq!(w.kv_cache, 30 * 2 * 12 * 1560 * 1536 * 2);
    }

    #[test]
    fn real_activation_figures() {
        let e = estimate_memory(&real(), &REAL, &PrecisionPolicy::f32(), true).unwrap();
        // 4680 queries x (8 x 1536 + 2 x 8960) x 4 bytes, plus the flash workspace
        // 12 heads x 4680 x (128 + 2 + 64) x 4 bytes.
        let expected = 4680 * (8 * 1536 + 2 * 8960) * 4 + 12 * 4680 * (128 + 2 + 64) * 4;
        assert_eq!(e.dit_activations, expected);
        let tiled = estimate_memory(&real(), &REAL, &PrecisionPolicy::f32(), false).unwrap();
        assert_eq!(
            tiled.dit_activations,
            4680 * (8 * 1536 + 2 * 8960) * 4 + 12 * 1024 * 32_760 * 4 * 2
        );
        // Neither path comes near a materialised score tensor (12 x 4680 x 32760 x 4 = 7.4 GB
        // per layer); the fused one stays under a tenth of it.
        let scores = 12 * 4680 * 32_760 * 4;
        assert!(tiled.dit_activations < scores);
        assert!(e.dit_activations < scores / 10);
        // Text encoder: 512 x (5 x 4096 + 3 x 10240) x 4 + 2 x 64 x 512 x 512 x 4.
        assert_eq!(
            e.text_encoder_activations,
            512 * (5 * 4096 + 3 * 10240) * 4 + 2 * 64 * 512 * 512 * 4
        );
        // Wan VAE streaming cache: the measured 1.76 GiB in fp16 doubles in f32.
        assert_eq!(e.decoder_state, 2 * WAN_VAE_CACHE_F16_480P);
    }

    #[test]
    fn cpu_default_text_encoder_keeps_bf16_weights_and_casts_one_layer() {
        let caps = Capabilities::assumed(BackendKind::Cpu, "cpu", true, true);
        let policy = PrecisionPolicy::default_for(BackendKind::Cpu, &caps);
        let e = estimate_memory(&real(), &REAL, &policy, true).unwrap();
        // 24 such layers, the 256384 x 4096 embedding and the final norm make 5.68 B.
        let layer = 4 * 4096 * 4096 + 3 * 4096 * 10240 + 2 * 4096 + 32 * 64;
        assert_eq!(24 * layer + 256_384 * 4096 + 4096, 5_680_910_336);
        assert_eq!(e.text_encoder_weights, 2 * 5_680_910_336 + 4 * layer);
    }

    #[test]
    fn plans_resident_low_memory_or_refuses_with_fixes() {
        let caps = Capabilities::assumed(BackendKind::Cuda, "gpu", true, true);
        let policy = PrecisionPolicy::default_for(BackendKind::Cuda, &caps);
        let e = estimate_memory(&real(), &REAL, &policy, true).unwrap();
        assert!(e.low_memory_peak < e.all_resident_peak);

        let roomy = plan_memory(&real(), &REAL, &policy, &caps, 80 << 30).unwrap();
        assert_eq!(roomy.mode, PlanMode::AllResident);
        let mid = plan_memory(&real(), &REAL, &policy, &caps, e.low_memory_peak).unwrap();
        assert_eq!(mid.mode, PlanMode::LowMemory);

        // The CPU default (f32 DiT and cache, bf16 text encoder weights) in 16 GiB: the global
        // f32 cache does not fit, a shorter window or half precision would.
        let cpu = Capabilities::assumed(BackendKind::Cpu, "cpu", true, true);
        let cpu_policy = PrecisionPolicy::default_for(BackendKind::Cpu, &cpu);
        let err = plan_memory(&real(), &REAL, &cpu_policy, &cpu, 16 << 30).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PipelineError::DoesNotFit { .. }), "{text}");
        assert!(text.contains("--kv-window"), "{text}");
        assert!(text.contains("--precision f16"), "{text}");
        assert!(text.contains("--decoder taehv"), "{text}");
        // The window it proposes does fit.
        let window: usize = text
            .split("--kv-window ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let fits = |w: usize| plan_memory(&self::window(w), &REAL, &cpu_policy, &cpu, 16 << 30);
        assert!(fits(window).is_ok());
        assert!(fits(window + 1).is_err());
    }
}
