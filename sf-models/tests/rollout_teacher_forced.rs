//! Teacher-forced replay of the `rollout_*` fixtures: every DiT call of the Self-Forcing KV-cache
//! inference, fed its stored input, must reproduce the stored flow and the cache bookkeeping
//! (`calls.meta`, `calls.attended_frames`, `calls.cache_frames_after`) exactly.

use crate::common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{fixture, load};
use sf_device::fixture::{Tolerance, compare_f32, to_f32s};
use sf_models::{CacheConfig, CheckpointFormat, SelfAttnCache};

fn replay(name: &str) {
    let device = Device::flex();
    let fx = fixture(&format!("rollout_{name}.safetensors"));
    let file = fx.file_name();
    let cfg = fx.config();
    let int = |v: &serde_json::Value| v.as_i64().unwrap();
    let fs = int(&cfg["frame_seqlen"]) as usize;
    let cache_config = CacheConfig {
        capacity_tokens: int(&cfg["cache_capacity_tokens"]) as usize,
        sink_tokens: int(&cfg["sink_tokens"]) as usize,
        rolling: int(&cfg["rollout"]["local_attn_size"]) != -1,
        dtype: None,
    };
    let model = load(
        cfg["dit"].as_str().unwrap(),
        CheckpointFormat::WanSafetensors,
    );
    let context = fx.tensor::<3>("context", &device).unwrap();
    let mut caches = model.new_cache(cache_config);
    // Mirrors the cache with one channel holding 1 + the frame of each token (0 = empty).
    let mut frames_cache = SelfAttnCache::new(cache_config);

    let meta = fx.i64s("calls.meta").unwrap();
    let attended = fx.i64s("calls.attended_frames").unwrap();
    let held = fx.i64s("calls.cache_frames_after").unwrap();
    let calls = meta.len() / 12;
    let total_frames = attended.len() / calls;
    let slots = held.len() / calls;
    let mut worst = 0.0f64;
    for (i, row) in meta.chunks(12).enumerate() {
        let [
            kind,
            chunk,
            step,
            start,
            frames,
            current_start,
            g,
            l,
            evicted,
            l_after,
            a0,
            a1,
        ] = <[i64; 12]>::try_from(row).unwrap();
        let (prefix, input) = match kind {
            0 => (format!("init{chunk}"), "x"),
            1 => (format!("c{chunk}.s{step}"), "x_t"),
            _ => (format!("c{chunk}.refresh"), "x"),
        };
        assert_eq!(current_start as usize, start as usize * fs);
        assert_eq!(
            caches.counters(),
            (g as usize, l as usize),
            "call {i}: counters before"
        );
        let x = fx
            .tensor::<5>(&format!("{prefix}.{input}"), &device)
            .unwrap();
        assert_eq!(x.dims()[2], frames as usize);
        let t = fx.f32s(&format!("{prefix}.t")).unwrap();
        let flow = model
            .forward(x, &t, context.clone(), Some(&mut caches), start as usize)
            .unwrap();
        let plan = caches.last_plan().unwrap();
        assert_eq!(
            [
                plan.evicted,
                plan.local_end_after,
                plan.attn_start,
                plan.attn_end
            ],
            [evicted, l_after, a0, a1].map(|v| v as usize),
            "call {i} ({prefix}): plan"
        );
        let reference = fx.f32s(&format!("{prefix}.flow")).unwrap();
        let result = compare_f32(
            &file,
            &format!("{prefix}.flow"),
            &to_f32s(flow),
            &reference,
            Tolerance::F32,
        );
        println!("{result}");
        assert!(result.passed, "{result}");
        worst = worst.max(result.max_abs_diff / result.bound.max(1e-30));

        // Which frame each cache slot holds, through the same tensor path.
        let n = frames as usize * fs;
        let ids: Vec<f32> = (0..n)
            .map(|k| (start as usize + k / fs + 1) as f32)
            .collect();
        let ids = Tensor::<4>::from_data(TensorData::new(ids, [1, 1, n, 1]), &device);
        frames_cache
            .update(ids.clone(), ids, current_start as usize)
            .unwrap();
        let rows = to_f32s(frames_cache.buffers().unwrap().0.clone());
        let slot_frames: Vec<i64> = (0..slots).map(|s| rows[s * fs] as i64 - 1).collect();
        for s in 0..slots {
            assert!(
                rows[s * fs..(s + 1) * fs]
                    .iter()
                    .all(|v| *v == rows[s * fs]),
                "slot {s} mixes frames"
            );
        }
        assert_eq!(
            slot_frames,
            held[i * slots..(i + 1) * slots],
            "call {i}: cache_frames_after"
        );
        let mut seen = vec![0i64; total_frames];
        for s in a0 as usize / fs..a1 as usize / fs {
            seen[slot_frames[s] as usize] = 1;
        }
        assert_eq!(
            seen,
            attended[i * total_frames..(i + 1) * total_frames],
            "call {i}: attended_frames"
        );
    }
    println!("{file}: {calls} calls, worst diff / bound = {worst:.3}");
}

#[test]
fn rollout_global() {
    replay("global");
}

#[test]
fn rollout_rolling() {
    replay("rolling");
}

#[test]
fn rollout_first_frame() {
    replay("first_frame");
}

#[test]
fn rollout_i2v() {
    replay("i2v");
}
