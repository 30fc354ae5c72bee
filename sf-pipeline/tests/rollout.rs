//! The rollout: replayed fixture parity, chunk planning errors, streaming, cancellation and
//! determinism (with a toy denoiser).

use crate::common;

use burn::tensor::{Device, Tensor};
use sf_pipeline::{
    CancelToken, CausalDenoiser, LatentShape, PipelineError, Rollout, RolloutConfig, SeededNoise,
};
use sf_testkit::checks::rollout;
use sf_testkit::{open_workspace_fixture, to_f32s};

const ROLLOUTS: [&str; 4] = ["global", "rolling", "first_frame", "i2v"];

/// The rollout replayed from the stored calls and free-running with the tiny DiT
/// ([`sf_testkit::checks::rollout`]; the teacher-forced calls are sf-models' test).
fn replay_all(device: &Device) {
    for name in ROLLOUTS {
        let fx = open_workspace_fixture(&format!("rollout_{name}.safetensors"));
        let replayed = rollout::replay(&fx, device);
        replayed.assert_complete();
        // The scheduler table (2), the timesteps, every x0, every input, the latents.
        assert_eq!(replayed.results.len(), 6, "{name}");
        let free = rollout::free_running(&fx, device);
        free.assert_complete();
        // Every call's input and flow, every x0, the latents, the cache bookkeeping.
        assert_eq!(free.results.len(), 5, "{name}");
    }
}

#[test]
fn rollout_fixtures_match_on_flex() {
    replay_all(&Device::flex());
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn rollout_fixtures_match_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        replay_all(&device);
    }
}

#[test]
fn fixture_metadata_gives_the_documented_plans() {
    for (name, init, gen_) in [
        ("global", vec![], vec![3, 3]),
        ("rolling", vec![], vec![3, 3, 3, 3]),
        ("first_frame", vec![], vec![1, 3, 3]),
        ("i2v", vec![3], vec![3, 3]),
    ] {
        let fx = open_workspace_fixture(&format!("rollout_{name}.safetensors"));
        let cfg = sf_testkit::configs::rollout(&fx).unwrap();
        let g: usize = gen_.iter().sum();
        let i: usize = init.iter().sum();
        let plan = cfg.plan(g, i).unwrap();
        assert_eq!((plan.initial, plan.generated), (init, gen_), "{name}");
    }
}

#[test]
fn impossible_configurations_are_clear_errors() {
    let cfg = RolloutConfig::default();
    let msg = |r: Result<_, PipelineError>| r.unwrap_err().to_string();
    assert!(msg(cfg.plan(20, 0)).contains("multiple of 3"));
    assert!(msg(cfg.plan(0, 0)).contains("at least 1"));
    assert!(msg(cfg.plan(24, 0)).contains("--kv-window"));
    let first = RolloutConfig {
        independent_first_frame: true,
        ..RolloutConfig::default()
    };
    assert!(msg(first.plan(21, 0)).contains("1 + a multiple of 3"));
    assert_eq!(first.plan(22, 0).map(|p| p.generated.len()).ok(), None);
    assert_eq!(first.plan(19, 0).unwrap().generated[..2], [1, 3]);
    let rolling = RolloutConfig {
        local_attn_size: Some(6),
        sink_size: 4,
        ..RolloutConfig::default()
    };
    assert!(msg(rolling.plan(30, 0)).contains("at least 7"));
    let sink_too_big = RolloutConfig {
        local_attn_size: Some(6),
        sink_size: 6,
        ..RolloutConfig::default()
    };
    assert!(msg(sink_too_big.plan(30, 0)).contains("smaller than the window"));
    let long = RolloutConfig {
        local_attn_size: Some(12),
        sink_size: 3,
        ..RolloutConfig::default()
    };
    assert!(long.plan(1023, 0).is_ok());
    assert!(msg(long.plan(1026, 0)).contains("RoPE"));
}

/// A toy denoiser: flow = 0.5 x + 0.1 t/1000, recording each call.
#[derive(Default)]
struct Toy {
    calls: Vec<(usize, Vec<f32>)>,
    resets: usize,
    poison_at: Option<usize>,
}

impl CausalDenoiser for Toy {
    fn reset(&mut self) -> Result<(), PipelineError> {
        self.resets += 1;
        self.calls.clear();
        Ok(())
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        t: &[f32],
        start: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        self.calls.push((start, t.to_vec()));
        let flow = x.mul_scalar(0.5).add_scalar(0.1 * t[0] / 1000.0);
        if self.poison_at == Some(self.calls.len()) {
            return Ok(flow.div_scalar(0.0));
        }
        Ok(flow)
    }
}

fn shape() -> LatentShape {
    LatentShape {
        batch: 1,
        channels: 2,
        height: 2,
        width: 3,
    }
}

#[test]
fn streams_chunks_in_order_with_refresh_and_timings() {
    let device = Device::flex();
    let mut toy = Toy::default();
    let rollout = Rollout::new(
        &mut toy,
        SeededNoise::new(7),
        RolloutConfig::default(),
        shape(),
        9,
        None,
        &device,
    )
    .unwrap();
    let chunks: Vec<_> = rollout.map(Result::unwrap).collect();
    assert_eq!(chunks.len(), 3);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!((c.index, c.start_frame, c.generated), (i, 3 * i, true));
        assert_eq!(c.latents.dims(), [1, 2, 3, 2, 3]);
        assert!(c.timings.get("denoise") > std::time::Duration::ZERO);
    }
    // 4 denoising calls and a refresh per chunk, at the warped timesteps then t = 0.
    assert_eq!(toy.calls.len(), 15);
    assert_eq!(toy.resets, 1);
    let ts: Vec<f32> = toy.calls[..5].iter().map(|(_, t)| t[0]).collect();
    assert_eq!(ts[0], 1000.0);
    assert_eq!(ts[4], 0.0);
    assert!(
        toy.calls[5..10]
            .iter()
            .all(|(s, t)| *s == 3 && t.len() == 3)
    );
}

#[test]
fn skip_last_refresh_and_cancellation() {
    let device = Device::flex();
    let mut toy = Toy::default();
    let cfg = RolloutConfig {
        skip_last_refresh: true,
        ..RolloutConfig::default()
    };
    let out = Rollout::new(
        &mut toy,
        SeededNoise::new(1),
        cfg,
        shape(),
        6,
        None,
        &device,
    )
    .unwrap()
    .run_to_end()
    .unwrap();
    assert_eq!(out.dims()[2], 6);
    assert_eq!(toy.calls.len(), 9);

    let token = CancelToken::new();
    let mut toy = Toy::default();
    let mut rollout = Rollout::new(
        &mut toy,
        SeededNoise::new(1),
        RolloutConfig::default(),
        shape(),
        9,
        None,
        &device,
    )
    .unwrap()
    .with_cancel(token.clone());
    assert!(rollout.next().unwrap().is_ok());
    token.cancel();
    assert!(matches!(
        rollout.next(),
        Some(Err(PipelineError::Cancelled))
    ));
    assert!(rollout.next().is_none());
    drop(rollout);
    assert_eq!(toy.calls.len(), 5, "no model call after cancellation");
}

#[test]
fn nan_stops_the_run_and_keeps_earlier_chunks() {
    let device = Device::flex();
    let mut toy = Toy {
        poison_at: Some(7),
        ..Toy::default()
    };
    let results: Vec<_> = Rollout::new(
        &mut toy,
        SeededNoise::new(3),
        RolloutConfig::default(),
        shape(),
        9,
        None,
        &device,
    )
    .unwrap()
    .collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            PipelineError::NonFinite {
                chunk: 1,
                start_frame: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn same_seed_same_video_and_initial_latent_goes_first() {
    let device = Device::flex();
    let run = |seed: u64| {
        to_f32s(
            Rollout::new(
                Toy::default(),
                SeededNoise::new(seed),
                RolloutConfig::default(),
                shape(),
                6,
                None,
                &device,
            )
            .unwrap()
            .run_to_end()
            .unwrap(),
        )
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));

    let initial = Tensor::<5>::ones([1, 2, 3, 2, 3], &device);
    let mut toy = Toy::default();
    let chunks: Vec<_> = Rollout::new(
        &mut toy,
        SeededNoise::new(5),
        RolloutConfig::default(),
        shape(),
        3,
        Some(initial),
        &device,
    )
    .unwrap()
    .map(Result::unwrap)
    .collect();
    assert!(!chunks[0].generated && chunks[1].generated);
    assert_eq!(to_f32s(chunks[0].latents.clone()), vec![1.0; 36]);
    assert_eq!(toy.calls[0], (0, vec![0.0; 3]));
    assert_eq!(toy.calls[1].0, 3);

    let wrong = Tensor::<5>::ones([1, 4, 3, 2, 3], &device);
    let err = Rollout::new(
        Toy::default(),
        SeededNoise::new(5),
        RolloutConfig::default(),
        shape(),
        3,
        Some(wrong),
        &device,
    )
    .err()
    .unwrap();
    assert!(matches!(err, PipelineError::Shape(_)), "{err}");
}
