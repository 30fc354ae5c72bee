//! Endless streams and prompt schedules through the pipeline: an endless rollout runs chunk
//! after chunk and ends at the RoPE table (relative RoPE lifts it), draws each chunk's noise
//! when it starts, keeps its KV cache and resident memory flat on the tiny model, and a
//! request's prompt schedule switches the prompt where the summary says.

use crate::tiny_models;

use std::path::Path;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use sf_pipeline::sf_device::current_rss_bytes;
use sf_pipeline::{
    CancelToken, CausalDenoiser, DecoderKind, GenerationRequest, LatentShape, LongLiveConfig,
    MAX_ROPE_FRAMES, ModelConfigs, ModelLocation, Pipeline, PipelineError, PromptStart, Rollout,
    RolloutConfig, SeededNoise, StreamEnd,
};
use sf_testkit::to_f32s;
use tiny_models::{HEIGHT, WIDTH, tiny_model_dir};

/// A denoiser that predicts zero flow and counts its calls.
#[derive(Default)]
struct Zero {
    calls: usize,
}

impl CausalDenoiser for Zero {
    fn reset(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }

    fn predict_flow(
        &mut self,
        x: Tensor<5>,
        _t: &[f32],
        _start: usize,
    ) -> Result<Tensor<5>, PipelineError> {
        self.calls += 1;
        Ok(x.zeros_like())
    }
}

fn window(relative_rope: bool) -> RolloutConfig {
    RolloutConfig {
        local_attn_size: Some(9),
        sink_size: 3,
        longlive: relative_rope.then_some(LongLiveConfig {
            global_sink: true,
            relative_rope: true,
        }),
        ..RolloutConfig::default()
    }
}

const SHAPE: LatentShape = LatentShape {
    batch: 1,
    channels: 1,
    height: 1,
    width: 1,
};

#[test]
fn an_endless_rollout_ends_at_the_rope_table_unless_relative_rope_lifts_it() {
    let device = Device::flex();
    let mut zero = Zero::default();
    let rollout = Rollout::endless(
        &mut zero,
        SeededNoise::new(1),
        window(false),
        SHAPE,
        &device,
    )
    .unwrap();
    assert!(rollout.is_endless());
    let mut rollout = rollout;
    let mut frames = 0;
    for chunk in rollout.by_ref() {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.start_frame, frames);
        frames += chunk.latents.dims()[2];
    }
    // 341 chunks of 3: the most that fit the 1024 positions.
    assert_eq!(frames, MAX_ROPE_FRAMES / 3 * 3);
    assert!(rollout.reached_rope_limit());
    assert_eq!(rollout.plan().total_frames(), frames);

    // A finite rollout that ends is not a RoPE end.
    let mut finite = Rollout::new(
        Zero::default(),
        SeededNoise::new(1),
        window(false),
        SHAPE,
        6,
        None,
        &device,
    )
    .unwrap();
    assert_eq!(finite.by_ref().count(), 2);
    assert!(!finite.reached_rope_limit());

    // Relative RoPE: past the table, until the caller stops.
    let rollout = Rollout::endless(
        Zero::default(),
        SeededNoise::new(1),
        window(true),
        SHAPE,
        &device,
    )
    .unwrap();
    let past = rollout
        .map(Result::unwrap)
        .take_while(|c| c.start_frame < MAX_ROPE_FRAMES + 60)
        .last()
        .unwrap();
    assert_eq!(past.start_frame, MAX_ROPE_FRAMES + 59);
}

#[test]
fn an_endless_rollout_draws_each_chunks_noise_and_needs_a_window() {
    let device = Device::flex();
    // Each chunk starts from its own noise: the chunks differ.
    let chunks: Vec<Vec<f32>> = Rollout::endless(
        Zero::default(),
        SeededNoise::new(3),
        window(false),
        SHAPE,
        &device,
    )
    .unwrap()
    .take(3)
    .map(|c| to_f32s(c.unwrap().latents))
    .collect();
    assert_ne!(chunks[0], chunks[1]);
    assert_ne!(chunks[1], chunks[2]);

    let e = Rollout::endless(
        Zero::default(),
        SeededNoise::new(3),
        RolloutConfig::default(),
        SHAPE,
        &device,
    )
    .err()
    .unwrap()
    .to_string();
    for said in ["rolling KV window", "--kv-window", "--model longlive"] {
        assert!(e.contains(said), "{said}: {e}");
    }

    // A schedule inside the RoPE limit fires; one past it never does.
    let rollout = Rollout::endless(
        Zero::default(),
        SeededNoise::new(3),
        window(false),
        SHAPE,
        &device,
    )
    .unwrap();
    let ctx = || Tensor::<3>::zeros([1, 1, 1], &device);
    assert!(rollout.with_prompt_schedule(vec![(1000, ctx())]).is_ok());
    let rollout = Rollout::endless(
        Zero::default(),
        SeededNoise::new(3),
        window(false),
        SHAPE,
        &device,
    )
    .unwrap();
    let e = rollout
        .with_prompt_schedule(vec![(1030, ctx())])
        .err()
        .unwrap();
    assert!(e.to_string().contains("never fires"), "{e}");
}

fn tiny_pipeline(root: &Path, mut configs: ModelConfigs, window: Option<usize>) -> Pipeline {
    configs.rollout.local_attn_size = window;
    configs.rollout.sink_size = if window.is_some() { 3 } else { 0 };
    Pipeline::builder()
        .device("cpu".parse().unwrap())
        .models(ModelLocation::Local(root.to_path_buf()))
        .configs(configs)
        .decoder(DecoderKind::Taehv)
        .resolution(HEIGHT, WIDTH)
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_prompt_schedule_switches_where_the_summary_says() {
    let (root, configs) = tiny_model_dir("schedule");
    let mut p = tiny_pipeline(&root, configs, None);
    let request = GenerationRequest::new("a red fox")
        .seed(2)
        .latent_frames(9)
        .then_prompt(4, "waves at night");
    let video = p.generate(&request).unwrap();
    assert_eq!(video.frames.len(), 33);
    let start = |prompt: &str, requested, latent_frame, video_frame| PromptStart {
        prompt: Some(prompt.into()),
        requested_frame: requested,
        latent_frame,
        video_frame,
    };
    assert_eq!(
        video.summary.prompts,
        [
            start("a red fox", None, 0, 0),
            start("waves at night", Some(4), 6, 21)
        ]
    );
    assert_eq!(video.summary.end, Some(StreamEnd::Complete));
    let single = p.generate(&request.clone().latent_frames(9)).unwrap();
    assert_eq!(
        single.frames, video.frames,
        "same seed, same schedule, same video"
    );
    let mut unswitched = request.clone();
    unswitched.prompt_schedule.clear();
    let unswitched = p.generate(&unswitched).unwrap();
    assert_eq!(unswitched.frames[..21], video.frames[..21]);
    assert_ne!(unswitched.frames[21..], video.frames[21..]);

    let mut refused = |r: GenerationRequest| p.stream(&r).err().unwrap().to_string();
    let base = GenerationRequest::new("a red fox").latent_frames(9);
    for (request, said) in [
        (base.clone().then_prompt(0, "x"), "≥ 1"),
        (base.clone().then_prompt(3, "  "), "latent frame 3 is empty"),
        (base.clone().then_prompt(7, "x"), "never fires"),
        (
            base.clone().then_prompt(5, "x").then_prompt(4, "y"),
            "increasing",
        ),
        (base.clone().endless(true), "--kv-window"),
    ] {
        let e = refused(request);
        assert!(e.contains(said), "{said}: {e}");
    }
    std::fs::remove_dir_all(&root).ok();
}

/// Where the memory test cancels its stream (`SF_ENDLESS_FRAMES`); by default it runs to the
/// RoPE table's end.
fn stop_frame() -> Option<usize> {
    std::env::var("SF_ENDLESS_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// Runs this test again in a process of its own (the resident memory of a process running
/// other tests in parallel says nothing about this one) and checks it passed there.
fn in_own_process(name: &str) -> bool {
    if std::env::var_os("SF_ENDLESS_CHILD").is_some() {
        return false;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SF_ENDLESS_CHILD", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    println!("{text}");
    true
}

#[test]
fn an_endless_stream_keeps_its_kv_cache_and_memory_flat_to_the_rope_end() {
    if in_own_process(
        "endless::an_endless_stream_keeps_its_kv_cache_and_memory_flat_to_the_rope_end",
    ) {
        return;
    }
    let (root, configs) = tiny_model_dir("endless-memory");
    let mut p = tiny_pipeline(&root, configs, Some(9));
    let cancel = CancelToken::new();
    let request = GenerationRequest::new("a red fox")
        .seed(5)
        .endless(true)
        .cancel(cancel.clone());
    let stop = stop_frame();
    // Warm-up: the window is full and has rolled a few times.
    let warm = 24;
    let switch_at = 300;
    let mut stream = p.stream(&request).unwrap();
    let (mut kv_warm, mut rss_warm, mut rss_max) = (0, 0, 0);
    let (mut frames, mut last_end) = (0, 0);
    let started = Instant::now();
    while let Some(chunk) = stream.next() {
        let chunk = match chunk {
            Ok(c) => c,
            Err(PipelineError::Cancelled) => break,
            Err(e) => panic!("{e}"),
        };
        frames += chunk.frames.len();
        let end = chunk.latent_start + chunk.latent_frames;
        last_end = end;
        let kv = stream.kv_cache_elements();
        let rss = current_rss_bytes().unwrap_or(0);
        if end == warm {
            (kv_warm, rss_warm) = (kv, rss);
        } else if end > warm {
            assert_eq!(kv, kv_warm, "the KV cache grew at latent frame {end}");
            rss_max = rss_max.max(rss);
        }
        if chunk.switch.is_some() {
            println!(
                "live switch at latent frame {}: re-cache {:.2?}, chunk {:.2?}",
                chunk.latent_start,
                chunk.timings.get("recache"),
                chunk.timings.get("denoise") + chunk.timings.get("refresh")
            );
        }
        if end == switch_at {
            let asked = Instant::now();
            stream.switch_prompt("waves at night").unwrap();
            println!("switch_prompt returned after {:.2?}", asked.elapsed());
        }
        if end % 150 == 0 || Some(end) == stop {
            println!(
                "latent frame {end}: RSS {:.1} MiB, KV {kv} elements, {:.1?}",
                rss as f64 / (1 << 20) as f64,
                started.elapsed()
            );
        }
        if stop.is_some_and(|s| end >= s) {
            cancel.cancel();
        }
    }
    let summary = stream.summary();
    assert_eq!(summary.frames, frames);
    assert_eq!(frames, 1 + 4 * (last_end - 1));
    match stop {
        Some(_) => assert_eq!(summary.end, Some(StreamEnd::Cancelled)),
        None => {
            let limit = MAX_ROPE_FRAMES / 3 * 3;
            assert_eq!(last_end, limit);
            let end = summary.end.clone().unwrap();
            assert_eq!(
                end,
                StreamEnd::RopeLimit {
                    latent_frames: limit
                }
            );
            let said = end.to_string();
            for part in [
                "1023 latent frames",
                "RoPE",
                "relative_rope",
                "rolling window",
            ] {
                assert!(said.contains(part), "{part}: {said}");
            }
        }
    }
    if last_end > switch_at {
        let live = &summary.prompts[1];
        assert_eq!(live.prompt.as_deref(), Some("waves at night"));
        assert_eq!((live.requested_frame, live.latent_frame), (None, switch_at));
        assert_eq!(live.video_frame, 1 + 4 * (switch_at - 1));
    }
    assert!(kv_warm > 0);
    let growth = rss_max.saturating_sub(rss_warm);
    println!(
        "RSS after {warm} latent frames {:.1} MiB, largest after {:.1} MiB (+{:.2} MiB), \
         {last_end} latent frames in {:.1?}",
        rss_warm as f64 / (1 << 20) as f64,
        rss_max as f64 / (1 << 20) as f64,
        growth as f64 / (1 << 20) as f64,
        started.elapsed()
    );
    if rss_warm > 0 {
        assert!(growth < 16 << 20, "resident memory grew by {growth} bytes");
    }
    std::fs::remove_dir_all(&root).ok();
}
