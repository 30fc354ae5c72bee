//! The DiT against `dit_tiny_io.safetensors` and its weights ([`sf_testkit::checks::dit`]: the
//! full-sequence, per-frame and block-causal forwards, the intermediates, the unpadded context,
//! the RoPE table) on Flex (the parity runner's test adds wgpu), and clear errors for bad inputs.

use crate::common::{fixture, load};

use burn::tensor::{Device, Tensor};
use sf_models::CheckpointFormat;
use sf_testkit::checks::dit;

#[test]
fn dit_tiny_io_on_flex() {
    let device = Device::flex();
    dit::io(&fixture("dit_tiny_io.safetensors"), &device).assert_complete();
    dit::weights(&fixture("dit_tiny.safetensors"), &device).assert_complete();
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    use sf_models::{CacheConfig, ModelError};
    let device = Device::flex();
    let fx = fixture("dit_tiny_io.safetensors");
    let model = load("dit_tiny.safetensors", CheckpointFormat::WanSafetensors);
    let x = fx.tensor::<5>("x", &device).unwrap();
    let t = fx.f32s("t_frames").unwrap();
    let context = fx.tensor::<3>("context", &device).unwrap();
    let [_, c, f, h, w] = x.dims();
    let invalid = |r: Result<Tensor<5>, ModelError>| {
        assert!(
            matches!(r, Err(ModelError::InvalidInput(_))),
            "{:?}",
            r.map(|t| t.dims())
        );
    };
    // Wrong channel count, odd height, per-frame t of the wrong length, too much context.
    invalid(model.forward(x.clone().narrow(1, 0, c - 1), &t, context.clone(), None, 0));
    invalid(model.forward(x.clone().narrow(3, 0, h - 1), &t, context.clone(), None, 0));
    invalid(model.forward(x.clone(), &t[..f - 1], context.clone(), None, 0));
    let long = Tensor::cat(vec![context.clone(), context.clone()], 1);
    invalid(model.forward(x.clone(), &t, long, None, 0));
    invalid(model.forward_block_causal(x.clone(), &t, context.clone(), 0));
    // RoPE positions beyond the table.
    invalid(model.forward(x.clone(), &t, context.clone(), None, 1020));
    // A chunk that does not fit the cache; a cache of another depth.
    let fs = model.frame_seqlen(h, w);
    let mut small = model.new_cache(CacheConfig::global(f - 1, fs));
    let r = model.forward(x.clone(), &t, context.clone(), Some(&mut small), 0);
    assert!(matches!(r, Err(ModelError::Cache(_))));
    let mut shallow = sf_models::KvCaches::new(CacheConfig::global(f, fs), 1);
    invalid(model.forward(x, &t, context, Some(&mut shallow), 0));
}
