//! [`ModelConfigs`] with random but structurally valid fields (widths divisible by heads,
//! matching text widths and latent channels, small sizes), so `validate`, `sizes` and the memory
//! planner really run; and single-field corruptions of such a config (zero heads, a width the
//! heads do not divide, mismatched widths, absurd sizes that would overflow the parameter counts
//! or the planner's arithmetic), which must be errors, never panics, overflows or huge
//! allocations. The serde parser still gets random JSON.

use proptest::prelude::*;
use sf_device::{BackendKind, Capabilities, PrecisionPolicy};
use sf_pipeline::sf_models::WanConfig;
use sf_pipeline::sf_text::UmT5Config;
use sf_pipeline::sf_vae::taehv::TaehvConfig;
use sf_pipeline::sf_vae::wan::WanVaeConfig;
use sf_pipeline::{DecoderKind, GenerationShape, ModelConfigs, estimate_memory, plan_memory};

use super::alloc::bounded;
use super::{scratch_path, sf_device, sf_text};

/// A small, structurally valid configuration.
fn valid_configs() -> impl Strategy<Value = ModelConfigs> {
    let dit = (
        (1usize..4, 1usize..9, 1usize..65, 1usize..33),
        (1usize..17, 1usize..9, 1usize..9, 1usize..4),
        (1usize..4, 1usize..4, any::<bool>(), any::<bool>()),
    );
    let text = (
        1usize..5,
        1usize..9,
        1usize..33,
        1usize..100,
        0usize..3,
        4usize..33,
        any::<bool>(),
    );
    let vae = (
        1usize..9,
        proptest::collection::vec(1usize..4, 2..5),
        1usize..3,
    );
    let taehv = (
        [1usize..17, 1usize..17, 1usize..17, 1usize..17],
        1usize..3,
        1usize..17,
    );
    (dit, text, vae, taehv, any::<[bool; 6]>()).prop_map(|(d, t, v, tae, flags)| {
        let (
            (heads, half_head, ffn, text_dim),
            (text_len, in_dim, out_dim, layers),
            (p1, p2, qk, ca),
        ) = d;
        let dit = WanConfig {
            patch_size: [1, p1, p2],
            text_len,
            in_dim,
            dim: heads * 2 * half_head,
            ffn_dim: ffn,
            freq_dim: 2 * half_head * 4,
            text_dim,
            out_dim,
            num_heads: heads,
            num_layers: layers,
            eps: 1e-6,
            qk_norm: qk,
            cross_attn_norm: ca,
        };
        let (t_heads, t_head, t_ffn, vocab, t_layers, buckets, shared) = t;
        let text_encoder = UmT5Config {
            vocab,
            dim: text_dim,
            dim_attn: t_heads * t_head,
            dim_ffn: t_ffn,
            num_heads: t_heads,
            num_layers: t_layers,
            num_buckets: buckets,
            max_distance: buckets,
            shared_pos: shared,
            eps: 1e-6,
        };
        let (half_dim, dim_mult, res) = v;
        let stages = dim_mult.len();
        let wan_vae = WanVaeConfig {
            dim: 2 * half_dim,
            z_dim: in_dim,
            dim_mult,
            num_res_blocks: res,
            attn_scales: Vec::new(),
            temperal_downsample: flags[..stages - 1].to_vec(),
            dropout: 0.0,
            latents_mean: vec![0.0; in_dim],
            latents_std: vec![1.0; in_dim],
        };
        let (n_f, patch, width) = tae;
        let taehv = TaehvConfig {
            n_f,
            latent_channels: in_dim,
            patch_size: patch,
            encoder_width: width,
            ..TaehvConfig::taew2_1()
        };
        ModelConfigs {
            dit,
            text_encoder,
            wan_vae,
            taehv,
            rollout: Default::default(),
        }
    })
}

/// One field made wrong; each must be refused by `validate` and `sizes`.
fn corrupt(c: &mut ModelConfigs, which: usize, big: usize) {
    match which {
        0 => c.dit.num_heads = 0,
        1 => c.dit.dim = c.dit.num_heads * c.dit.head_dim() + 1,
        2 => c.text_encoder.dim = c.dit.text_dim + 1,
        3 => c.wan_vae.z_dim = c.dit.in_dim + 1,
        4 => c.taehv.latent_channels = c.dit.in_dim + 1,
        5 => c.text_encoder.num_heads = 0,
        6 => {
            c.text_encoder.num_heads = 2;
            c.text_encoder.dim_attn = 2 * c.text_encoder.dim_attn + 1;
        }
        7 => c.wan_vae.dim_mult = vec![1],
        8 => c.taehv.n_f[2] = 0,
        9 => c.dit.patch_size = [1, 0, 2],
        // Absurd sizes: products that overflow 64 bits, counts no machine could hold.
        10 => c.dit.num_layers = big,
        11 => {
            c.dit.num_heads = 2;
            c.dit.dim = big & !3;
        }
        12 => c.dit.ffn_dim = big,
        13 => c.text_encoder.vocab = big,
        14 => c.text_encoder.num_layers = big,
        15 => c.text_encoder.dim_ffn = big,
        16 => c.wan_vae.num_res_blocks = big,
        17 => c.wan_vae.dim_mult[1] = big & !1,
        18 => c.taehv.n_f = [big; 4],
        19 => c.dit.text_len = big,
        20 => c.wan_vae.dim = big & !1,
        21 => c.dit.text_dim = big,
        _ => c.text_encoder.num_buckets = big,
    }
}

fn cpu() -> (PrecisionPolicy, Capabilities) {
    let caps = Capabilities::assumed(BackendKind::Cpu, "cpu", true, true);
    (PrecisionPolicy::f32(), caps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn valid_configs_validate_size_and_plan(c in valid_configs(), h in 1usize..8, w in 1usize..8, frames in 1usize..30) {
        c.validate().unwrap_or_else(|e| panic!("{e}: {c:?}"));
        let sizes = c.sizes().unwrap();
        // Two independent counts of the text encoder: the closed form and its key list.
        let listed: u64 = sf_text::expected_keys(&c.text_encoder)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum();
        prop_assert_eq!(sizes.text_encoder_params, listed);
        prop_assert!(sizes.dit_params > 0 && sizes.wan_vae_decoder_params > 0 && sizes.taehv_decoder_params > 0);
        let (policy, caps) = cpu();
        for decoder in [DecoderKind::WanVae, DecoderKind::Taehv] {
            let shape = GenerationShape::new(16 * h, 16 * w, frames, decoder);
            let plan = plan_memory(&c, &shape, &policy, &caps, u64::MAX).unwrap();
            // f32 weights at rest: 4 bytes per parameter of each resident component.
            prop_assert!(plan.estimate.dit_weights == 4 * sizes.dit_params);
            prop_assert!(plan.estimate.all_resident_peak >= 4 * (sizes.dit_params + sizes.text_encoder_params));
        }
        // The same configuration through the JSON file reader.
        let path = scratch_path("config.json");
        std::fs::write(&path, serde_json::to_string(&c).unwrap()).unwrap();
        prop_assert_eq!(ModelConfigs::from_json_file(&path).unwrap(), c);
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_corrupted_field_is_an_error(
        c in valid_configs(),
        which in 0usize..23,
        big in prop_oneof![Just(usize::MAX), Just(1usize << 40), Just(usize::MAX / 3), (1usize << 33)..(1usize << 62)],
    ) {
        let mut c = c;
        corrupt(&mut c, which, big);
        let (validated, sized) = bounded("validate + sizes", 4 << 20, move || {
            (c.validate().map_err(|e| e.to_string()), c.sizes().map_err(|e| e.to_string()))
        });
        prop_assert!(validated.is_err(), "corruption {which} passed validate");
        prop_assert!(sized.is_err(), "corruption {which} passed sizes");
    }

    #[test]
    fn absurd_shapes_are_refused_by_the_planner(
        c in valid_configs(),
        h in prop_oneof![Just(usize::MAX), 1usize..1 << 40],
        w in prop_oneof![Just(usize::MAX), 1usize..1 << 40],
        frames in prop_oneof![Just(usize::MAX), 1usize..1 << 40],
        chunk in prop_oneof![Just(3usize), Just(usize::MAX), 1usize..1 << 40],
        window in prop_oneof![Just(None), Just(Some(usize::MAX)), (1usize..1 << 40).prop_map(Some)],
    ) {
        let (policy, caps) = cpu();
        let mut c = c;
        c.rollout.num_frame_per_block = chunk;
        c.rollout.local_attn_size = window;
        let shape = GenerationShape::new(h, w, frames, DecoderKind::WanVae);
        let e = estimate_memory(&c, &shape, &policy, caps.fused_attention).unwrap();
        prop_assert!(e.low_memory_peak >= e.dit_weights);
        // Fits in nothing smaller than everything, or is refused: never a wrapped figure.
        match plan_memory(&c, &shape, &policy, &caps, 64 << 30) {
            Ok(plan) => prop_assert!(plan.estimate.low_memory_peak <= 64 << 30),
            Err(e) => prop_assert!(e.to_string().contains("needs"), "{e}"),
        }
        // Without a budget, only a figure past 64 bits is refused.
        match plan_memory(&c, &shape, &policy, &caps, u64::MAX) {
            Ok(plan) => prop_assert!(plan.estimate.low_memory_peak < u64::MAX),
            Err(err) => prop_assert!(e.low_memory_peak == u64::MAX, "{err}"),
        }
    }

    #[test]
    fn any_json_config_parses_or_fails_cleanly(
        json in "\\{(\"[a-z_]{1,12}\":(-?[0-9]{1,12}|null|true|\"[a-z]{0,5}\"|\\{\\}),?){0,8}\\}",
    ) {
        if let Ok(c) = serde_json::from_str::<ModelConfigs>(&json) {
            let _ = c.validate();
            let _ = c.sizes();
        }
    }
}
