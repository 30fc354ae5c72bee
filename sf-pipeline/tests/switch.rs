//! Prompt switching (LongLive's re-cache, `docs/switching.md`): both switch fixtures match on
//! Flex and wgpu; a live [`PromptSwitch`] from another thread equals the same schedule;
//! chunks yielded before a switch are those of a run without it; bad schedules are clear
//! errors; relative RoPE runs past the RoPE table.

use crate::common;

use burn::tensor::{Device, Tensor};
use sf_device::Dtype;
use sf_models::{CheckpointFormat, WanModel, load_wan_model};
use sf_pipeline::{
    DitDenoiser, LatentShape, LongLiveConfig, MAX_ROPE_FRAMES, PromptSwitch, Rollout,
    RolloutConfig, SeededNoise,
};
use sf_testkit::checks::switch;
use sf_testkit::{open_workspace_fixture, to_f32s, workspace_fixtures};

const SWITCH_FIXTURES: [&str; 2] = ["recache", "infinity"];

fn fixtures_match(device: &Device) {
    for name in SWITCH_FIXTURES {
        let fx = open_workspace_fixture(&format!("rollout_switch_{name}.safetensors"));
        let checks = switch::checks(&fx, device);
        checks.assert_complete();
        // Replay: x0s, inputs+flags, switches, segments, latents; free-running: inputs,
        // flows, x0s, calls.meta, switches, segments, latents; teacher-forced: flows and four
        // integer tables.
        assert_eq!(checks.results.len(), 17, "{name}");
    }
}

#[test]
fn switch_fixtures_match_on_flex() {
    fixtures_match(&Device::flex());
}

#[cfg(any(feature = "wgpu", feature = "vulkan", feature = "metal"))]
#[test]
fn switch_fixtures_match_on_wgpu() {
    if let Some(device) = common::wgpu_device() {
        fixtures_match(&device);
    }
}

fn tiny_dit(device: &Device) -> WanModel {
    let weights = workspace_fixtures().join("dit_tiny.safetensors");
    let config = sf_testkit::configs::dit(&weights).unwrap();
    let format = CheckpointFormat::WanSafetensors;
    load_wan_model(&weights, &format, &config, device, Dtype::F32).unwrap()
}

/// The public file's two prompts and a LongLive window of 8 frames with a sink of 3.
fn setup(device: &Device) -> (Vec<Tensor<3>>, RolloutConfig, LatentShape) {
    let fx = open_workspace_fixture("rollout_switch_recache.safetensors");
    let input = switch::inputs(&fx, device).unwrap();
    (input.contexts, input.config, input.shape)
}

/// Called with each yielded chunk's index and the rollout's live switch.
type OnChunk<'a> = &'a dyn Fn(usize, &PromptSwitch);

/// Every chunk's latents of a seeded run, switching by `schedule` and/or `live`.
fn run(
    model: &WanModel,
    device: &Device,
    frames: usize,
    schedule: Vec<(usize, Tensor<3>)>,
    live: Option<OnChunk<'_>>,
) -> Vec<Vec<f32>> {
    let (contexts, config, shape) = setup(device);
    let (h, w) = (shape.height, shape.width);
    let dit = DitDenoiser::new(model, contexts[0].clone(), &config, h, w, None).unwrap();
    let handle = PromptSwitch::new();
    let rollout = Rollout::new(
        dit,
        SeededNoise::new(5),
        config,
        shape,
        frames,
        None,
        device,
    )
    .unwrap()
    .with_prompt_schedule(schedule)
    .unwrap()
    .with_prompt_switch(handle.clone());
    let mut out = Vec::new();
    for (i, chunk) in rollout.enumerate() {
        out.push(to_f32s(chunk.unwrap().latents));
        if let Some(live) = live {
            live(i, &handle);
        }
    }
    out
}

#[test]
fn a_live_switch_from_another_thread_equals_the_schedule() {
    let device = Device::flex();
    let model = tiny_dit(&device);
    let (contexts, ..) = setup(&device);
    let other = contexts[1].clone();
    // After chunk 1 has been yielded, another thread requests prompt 1: it fires at chunk 2
    // (frame 6), exactly like a schedule entry at any frame in 4..=6.
    let live = |i: usize, handle: &PromptSwitch| {
        if i == 1 {
            let (remote, other) = (handle.clone(), other.clone());
            std::thread::spawn(move || remote.request(other))
                .join()
                .unwrap();
            assert!(handle.is_pending());
        }
    };
    let by_handle = run(&model, &device, 15, Vec::new(), Some(&live));
    let by_schedule = run(&model, &device, 15, vec![(5, contexts[1].clone())], None);
    assert_eq!(by_handle, by_schedule);
    // Nothing yielded before the switch changes; the switched chunks do.
    let unswitched = run(&model, &device, 15, Vec::new(), None);
    assert_eq!(by_schedule[..2], unswitched[..2]);
    for (a, b) in by_schedule[2..].iter().zip(&unswitched[2..]) {
        assert_ne!(a, b);
    }
}

#[test]
fn bad_schedules_are_clear_errors() {
    let device = Device::flex();
    let model = tiny_dit(&device);
    let (contexts, config, shape) = setup(&device);
    let (h, w) = (shape.height, shape.width);
    let c = || contexts[1].clone();
    for (schedule, needle) in [
        (vec![(0, c())], "≥ 1"),
        (vec![(10, c())], "never fires"),
        (vec![(3, c()), (3, c())], "appears twice"),
        (vec![(6, c()), (3, c())], "increasing"),
    ] {
        let dit = DitDenoiser::new(&model, contexts[0].clone(), &config, h, w, None).unwrap();
        let rollout = Rollout::new(
            dit,
            SeededNoise::new(1),
            config.clone(),
            shape,
            12,
            None,
            &device,
        );
        let err = match rollout.unwrap().with_prompt_schedule(schedule) {
            Ok(_) => panic!("accepted a bad schedule ({needle})"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "{err}");
    }
    // A live request after the last chunk started never fires and stays pending.
    let handle = PromptSwitch::new();
    let dit = DitDenoiser::new(&model, contexts[0].clone(), &config, h, w, None).unwrap();
    let mut rollout = Rollout::new(dit, SeededNoise::new(1), config, shape, 3, None, &device)
        .unwrap()
        .with_prompt_switch(handle.clone());
    assert!(rollout.next().unwrap().unwrap().switch.is_none());
    handle.request(c());
    assert!(rollout.next().is_none());
    assert!(handle.cancel().is_some());
}

#[test]
fn relative_rope_lifts_the_rope_limit() {
    let absolute = RolloutConfig {
        local_attn_size: Some(12),
        sink_size: 3,
        ..RolloutConfig::default()
    };
    let frames = MAX_ROPE_FRAMES + 2;
    assert!(
        absolute
            .plan(frames, 0)
            .unwrap_err()
            .to_string()
            .contains("relative RoPE")
    );
    let relative = RolloutConfig {
        longlive: Some(LongLiveConfig {
            global_sink: true,
            relative_rope: true,
        }),
        ..absolute
    };
    assert!(relative.plan(frames, 0).is_ok());
    // The sink must fit the first chunk (LongLive cannot attend empty sink rows).
    let big_sink = RolloutConfig {
        sink_size: 4,
        ..relative
    };
    assert!(
        big_sink
            .plan(12, 0)
            .unwrap_err()
            .to_string()
            .contains("sink")
    );
}

#[test]
fn the_infinity_fixture_needs_relative_rope() {
    // The same stored calls through absolute RoPE differ after the first eviction (FORMAT.md
    // §2.15: max|Δflow| 0.18), so the relative-RoPE checks can fail.
    let device = Device::flex();
    let model = tiny_dit(&device);
    let fx = open_workspace_fixture("rollout_switch_infinity.safetensors");
    let input = switch::inputs(&fx, &device).unwrap();
    assert!(input.config.relative_rope());
    let mut absolute = input.config.clone();
    absolute.longlive = absolute.longlive.map(|l| LongLiveConfig {
        relative_rope: false,
        ..l
    });
    let (h, w) = (input.shape.height, input.shape.width);
    let run = |config: RolloutConfig| {
        let first = input.contexts[input.first_prompt].clone();
        let dit = DitDenoiser::new(&model, first, &config, h, w, None).unwrap();
        let rollout = Rollout::new(
            dit,
            SeededNoise::new(2),
            config,
            input.shape,
            12,
            None,
            &device,
        );
        let rollout = rollout.unwrap();
        let rollout = rollout
            .with_prompt_schedule(input.schedule_contexts())
            .unwrap();
        to_f32s(rollout.run_to_end().unwrap())
    };
    let (ours, abs) = (run(input.config.clone()), run(absolute));
    // Latents [1, 16, 12, h, w]: frames 0..6 (before the first eviction, at chunk 2) agree,
    // the rest does not.
    let plane = h * w;
    let frames = |v: &[f32], range: std::ops::Range<usize>| -> Vec<f32> {
        (0..16)
            .flat_map(|c| v[(c * 12 + range.start) * plane..(c * 12 + range.end) * plane].to_vec())
            .collect()
    };
    assert_eq!(frames(&ours, 0..6), frames(&abs, 0..6));
    assert_ne!(frames(&ours, 6..12), frames(&abs, 6..12));
}

#[test]
fn longlive_rules_equal_self_forcing_where_they_agree() {
    // One prompt and a sink no longer than a chunk (FORMAT.md §2.13): LongLive's rules give
    // the Self-Forcing rollout bit for bit, on the rolling fixture's configuration.
    let device = Device::flex();
    let model = tiny_dit(&device);
    let fx = open_workspace_fixture("rollout_rolling.safetensors");
    let config = sf_testkit::configs::rollout(&fx).unwrap();
    assert!(config.longlive.is_none() && config.sink_size <= config.num_frame_per_block);
    let [batch, channels, frames, height, width]: [usize; 5] =
        fx.shape("noise").unwrap().try_into().unwrap();
    let shape = LatentShape {
        batch,
        channels,
        height,
        width,
    };
    let context = fx.tensor::<3>("context", &device).unwrap();
    let run = |config: RolloutConfig| {
        let dit = DitDenoiser::new(&model, context.clone(), &config, height, width, None);
        let noise = sf_testkit::replay::FixtureNoise::new(&fx);
        let rollout = Rollout::new(dit.unwrap(), noise, config, shape, frames, None, &device);
        to_f32s(rollout.unwrap().run_to_end().unwrap())
    };
    let longlive = RolloutConfig {
        longlive: Some(LongLiveConfig::default()),
        ..config.clone()
    };
    assert_eq!(run(config), run(longlive));
}
