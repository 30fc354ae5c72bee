//! The rollout with the tiny DiT: a video longer than the global cache holds runs through a
//! rolling window with an attention sink, with the cache memory bounded by the window.

use burn::tensor::Device;
use sf_device::Dtype;
use sf_models::{CheckpointFormat, load_wan_model};
use sf_pipeline::{DitDenoiser, LatentShape, Rollout, RolloutConfig, SeededNoise};
use sf_testkit::{Fixture, to_f32s, workspace_fixtures};

#[test]
fn long_rolling_rollout_keeps_the_cache_bounded() {
    let device = Device::flex();
    let weights = workspace_fixtures().join("dit_tiny.safetensors");
    let config = sf_testkit::configs::dit(&weights).unwrap();
    let model = load_wan_model(
        &weights,
        &CheckpointFormat::WanSafetensors,
        &config,
        &device,
        Dtype::F32,
    )
    .unwrap();
    let io = Fixture::open(workspace_fixtures().join("dit_tiny_io.safetensors")).unwrap();
    let context = io.tensor::<3>("context", &device).unwrap();
    let rollout = RolloutConfig {
        local_attn_size: Some(7),
        sink_size: 1,
        skip_last_refresh: true,
        ..RolloutConfig::default()
    };
    // Latent 4 x 6 (6 tokens per frame); 36 frames, far beyond a 21-frame global cache.
    let (h, w, frames) = (4, 6, 36);
    assert!(rollout.plan(frames, 0).is_ok());
    let global = RolloutConfig::default();
    assert!(
        global.plan(frames, 0).is_err(),
        "the global cache must refuse 36 frames"
    );

    let mut dit = DitDenoiser::new(&model, context, &rollout, h, w, None).unwrap();
    let shape = LatentShape {
        batch: 1,
        channels: 16,
        height: h,
        width: w,
    };
    let mut chunks = 0;
    let mut total = 0;
    for chunk in Rollout::new(
        &mut dit,
        SeededNoise::new(9),
        rollout,
        shape,
        frames,
        None,
        &device,
    )
    .unwrap()
    {
        let chunk = chunk.unwrap();
        let values = to_f32s(chunk.latents.clone());
        assert!(values.iter().all(|v| v.is_finite()));
        total += chunk.latents.dims()[2];
        chunks += 1;
    }
    assert_eq!((chunks, total), (12, 36));
    // Every layer's buffers hold exactly the window: 7 frames x 6 tokens.
    let rows = 7 * 6;
    for layer in &dit.cache().layers {
        let (k, v) = layer.self_attn.buffers().expect("written");
        assert_eq!(k.dims()[2], rows, "{:?}", k.dims());
        assert_eq!(v.dims()[2], rows);
    }
    let (global_end, local_end) = dit.counters();
    assert_eq!(global_end, 36 * 6);
    assert!(local_end <= rows);
}
