//! The teacher-forced half of the switch checks: every stored call through the real DiT.

use burn::tensor::{Device, Tensor, TensorData};
use sf_models::{CacheConfig, CacheRules, SelfAttnCache, WanModel};
use sf_pipeline::RolloutConfig;

use super::{inputs, plan_columns};
use crate::checks::{CheckError, Checks};
use crate::compare::{Aggregate, Tolerance, compare_exact, compare_tensor};
use crate::fixture::{Fixture, to_f32s};
use crate::replay::{call_names, input_name, meta_columns};

/// The cache configuration the file describes (rows, sink, window, rules, attention budget,
/// relative RoPE).
fn cache_config(fx: &Fixture, rollout: &RolloutConfig) -> Result<CacheConfig, CheckError> {
    let fs = fx.config_usize("frame_seqlen")?;
    Ok(CacheConfig {
        capacity_tokens: fx.config_usize("cache_capacity_tokens")?,
        sink_tokens: fx.config_usize("sink_tokens")?,
        rolling: rollout.local_attn_size.is_some(),
        rules: match rollout.longlive {
            Some(_) => CacheRules::LongLive,
            None => CacheRules::SelfForcing,
        },
        max_attention_tokens: Some(fx.config_usize("max_attention_tokens")?),
        relative_rope: rollout.relative_rope(),
        ..CacheConfig::global(0, fs)
    })
}

/// `[1, 1, n, 1]` of `value(k)` for the n tokens of a call.
fn ids(n: usize, value: impl Fn(usize) -> f32, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..n).map(value).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, n, 1]), device)
}

/// What each fs-row slot of the mirror holds (value − 1; −1 empty; −2 mixed).
fn slots(buffer: &Tensor<4>, fs: usize, slots: usize) -> Vec<i64> {
    let rows = to_f32s(buffer.clone());
    (0..slots)
        .map(|s| match rows.get(s * fs..(s + 1) * fs) {
            Some(slot) if slot.iter().all(|v| *v == slot[0]) => slot[0] as i64 - 1,
            _ => -2,
        })
        .collect()
}

pub(super) fn run_teacher_forced(
    fx: &Fixture,
    model: &WanModel,
    device: &Device,
    c: &mut Checks,
) -> Result<(), CheckError> {
    let file = fx.file_name();
    let fs = fx.config_usize("frame_seqlen")?;
    let input = inputs(fx, device)?;
    let config = cache_config(fx, &input.config)?;
    let mut caches = model.new_cache(config);
    // Mirrors the cache: keys hold 1 + the frame, values 1 + the writing call (0 = empty).
    let mut mirror = SelfAttnCache::new(config);
    let width = meta_columns(fx)?;
    let meta = fx.i64s("calls.meta")?;
    let attended = fx.i64s("calls.attended_frames")?;
    let held = fx.i64s("calls.cache_frames_after")?;
    let writers = fx.i64s("calls.cache_writer_after")?;
    let names = call_names(fx)?;
    let calls = names.len();
    if calls == 0 || width < 21 || attended.len() % calls != 0 || held.len() % calls != 0 {
        return Err(CheckError::Other(format!(
            "{calls} calls of {width} columns against {} attended and {} held entries",
            attended.len(),
            held.len()
        )));
    }
    let (total_frames, n_slots) = (attended.len() / calls, held.len() / calls);
    let mut flows = Aggregate::new(&file, "teacher-forced: every call's flow");
    let (mut cols_ours, mut cols_stored) = (Vec::new(), Vec::new());
    let (mut held_ours, mut writers_ours, mut attended_ours) = (Vec::new(), Vec::new(), Vec::new());
    let mut prompt = -1;
    for (call, (row, name)) in meta.chunks_exact(width).zip(&names).enumerate() {
        let index = |col: usize| {
            usize::try_from(row[col])
                .map_err(|_| CheckError::Other(format!("{name}: column {col}")))
        };
        let (start, p) = (index(3)?, index(12)?);
        let context = input
            .contexts
            .get(p)
            .cloned()
            .ok_or_else(|| CheckError::Other(format!("{name}: prompt {p} is not stored")))?;
        if row[17] == 1 {
            caches.zero_kv();
            mirror.zero_kv();
        }
        if row[12] != prompt {
            caches.reset_cross_attn();
            prompt = row[12];
        }
        let sink_recache = row[19] == 1;
        let x = fx.tensor::<5>(&input_name(name), device)?;
        let frames = x.dims()[2];
        let t = fx.f32s(&format!("{name}.t"))?;
        let fresh = !caches.cross_attn_ready();
        let flow = model.forward_cached(x, &t, context, &mut caches, start, sink_recache)?;
        if row[0] == 3 {
            // LongLive recomputes the prompt's cross-attention after the re-cache.
            caches.reset_cross_attn();
        }
        let flow_name = format!("{name}.flow");
        let tol = Tolerance::F32;
        flows.add(compare_tensor(fx, &flow_name, flow, &flow_name, tol)?);
        let plan = caches
            .last_plan()
            .ok_or_else(|| CheckError::Other(format!("{name}: no cache write plan")))?;
        let ours = plan_columns(&plan, [row[12], row[17], i64::from(fresh)], sink_recache);
        cols_ours.extend([frames as i64, (start * fs) as i64]);
        cols_ours.extend(ours);
        cols_stored.extend_from_slice(&row[4..21]);

        let n = frames * fs;
        let keys = ids(n, |k| (start + k / fs + 1) as f32, device);
        let values = ids(n, |_| (call + 1) as f32, device);
        mirror.update_with(keys, values, start * fs, sink_recache)?;
        let (k, v) = mirror
            .buffers()
            .ok_or_else(|| CheckError::Other("the mirror cache is empty".into()))?;
        let slot_frames = slots(k, fs, n_slots);
        writers_ours.extend(slots(v, fs, n_slots));
        let mut seen = vec![0i64; total_frames];
        for s in plan
            .attended_rows()
            .into_iter()
            .flat_map(|r| r.start / fs..r.end / fs)
        {
            if let Some(f) = slot_frames.get(s).and_then(|f| usize::try_from(*f).ok())
                && f < total_frames
            {
                seen[f] = 1;
            }
        }
        held_ours.extend(slot_frames);
        attended_ours.extend(seen);
    }
    c.push(flows.finish(Some(calls)));
    let checks = [
        (
            "teacher-forced: calls.meta columns 4..21",
            cols_ours,
            cols_stored,
        ),
        ("teacher-forced: calls.cache_frames_after", held_ours, held),
        (
            "teacher-forced: calls.cache_writer_after",
            writers_ours,
            writers,
        ),
        (
            "teacher-forced: calls.attended_frames",
            attended_ours,
            attended,
        ),
    ];
    for (name, ours, stored) in checks {
        c.push(compare_exact(&file, name, &ours, &stored));
    }
    Ok(())
}
