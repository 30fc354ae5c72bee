//! Parity of the DiT with `dit_tiny_io.safetensors` (full-sequence, per-frame and block-causal
//! forwards, and the intermediates of the uniform-t forward), on Flex in f32.

use crate::common;

use burn::tensor::{Device, Tensor};
use common::{check, check_tensor, fixture, load, uniform_t};
use sf_models::{CheckpointFormat, Rope};

#[test]
fn uniform_timestep_and_intermediates() {
    let device = Device::flex();
    let fx = fixture("dit_tiny_io.safetensors");
    let model = load("dit_tiny.safetensors", CheckpointFormat::WanSafetensors);
    let x = fx.tensor::<5>("x", &device).unwrap();
    let frames = x.dims()[2];
    let context = fx.tensor::<3>("context", &device).unwrap();
    let t = uniform_t(&fx, frames);
    let (out, inter) = model
        .forward_with_intermediates(x, &t, context, None, 0)
        .unwrap();
    check_tensor(&fx, "out_uniform", out);

    check_tensor(&fx, "inter.uniform.patch_embedding", inter.patch_embedding);
    check_tensor(
        &fx,
        "inter.uniform.text_embedding",
        inter.text_embedding.expect("computed without a cache"),
    );
    // The fixture stores e / e0 per token; ours are per frame.
    let tokens = fx.shape("inter.uniform.time_embedding").unwrap()[1];
    let per_token = |t: Tensor<3>| {
        let [b, f, w] = t.dims();
        t.reshape([b, f, 1, w])
            .expand([b, f, tokens / f, w])
            .reshape([b, tokens, w])
    };
    check_tensor(
        &fx,
        "inter.uniform.time_embedding",
        per_token(inter.time_embedding),
    );
    check_tensor(
        &fx,
        "inter.uniform.time_projection",
        per_token(inter.time_projection),
    );
    for (i, block) in inter.blocks.into_iter().enumerate() {
        check_tensor(&fx, &format!("inter.uniform.blocks.{i}"), block);
    }
    check_tensor(&fx, "inter.uniform.head", inter.head);
}

#[test]
fn per_frame_timesteps_bidirectional() {
    let device = Device::flex();
    let fx = fixture("dit_tiny_io.safetensors");
    let model = load("dit_tiny.safetensors", CheckpointFormat::WanSafetensors);
    let out = model
        .forward(
            fx.tensor::<5>("x", &device).unwrap(),
            &fx.f32s("t_frames").unwrap(),
            fx.tensor::<3>("context", &device).unwrap(),
            None,
            0,
        )
        .unwrap();
    check_tensor(&fx, "out_per_frame_bidirectional", out);
}

#[test]
fn block_causal_through_the_kv_cache() {
    let device = Device::flex();
    let fx = fixture("dit_tiny_io.safetensors");
    let model = load("dit_tiny.safetensors", CheckpointFormat::WanSafetensors);
    let per_block = fx.config()["num_frame_per_block"].as_u64().unwrap() as usize;
    let out = model
        .forward_block_causal(
            fx.tensor::<5>("x", &device).unwrap(),
            &fx.f32s("t_frames").unwrap(),
            fx.tensor::<3>("context", &device).unwrap(),
            per_block,
        )
        .unwrap();
    check_tensor(&fx, "out_block_causal", out);
}

#[test]
fn block_causal_with_unpadded_context_rows() {
    // Wan zero-pads a shorter context to text_len: passing only the real rows gives the same.
    let device = Device::flex();
    let fx = fixture("dit_tiny_io.safetensors");
    let model = load("dit_tiny.safetensors", CheckpointFormat::WanSafetensors);
    let real = fx.i64s("context_len").unwrap()[0] as usize;
    let context = fx
        .tensor::<3>("context", &device)
        .unwrap()
        .narrow(1, 0, real);
    let per_block = fx.config()["num_frame_per_block"].as_u64().unwrap() as usize;
    let out = model
        .forward_block_causal(
            fx.tensor::<5>("x", &device).unwrap(),
            &fx.f32s("t_frames").unwrap(),
            context,
            per_block,
        )
        .unwrap();
    check_tensor(&fx, "out_block_causal", out);
}

#[test]
fn rope_table_matches_the_fixture() {
    let fx = fixture("dit_tiny_io.safetensors");
    let head_dim = fx.config()["head_dim"].as_u64().unwrap() as usize;
    let split: Vec<usize> = fx.config()["rope_split_real"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(Rope::split(head_dim).to_vec(), split);
    let rope = Rope::new(head_dim).unwrap();
    // rope_freqs_real[pos, j] = (cos, sin) of pair j at position pos on its own axis.
    let [positions, pairs, _] =
        <[usize; 3]>::try_from(fx.shape("rope_freqs_real").unwrap()).unwrap();
    let (p0, p1) = (split[0] / 2, split[1] / 2);
    let mut ours = Vec::new();
    for pos in 0..positions {
        for j in 0..pairs {
            let a = if j < p0 {
                rope.angle(pos, 0, 0, j)
            } else if j < p0 + p1 {
                rope.angle(0, pos, 0, j)
            } else {
                rope.angle(0, 0, pos, j)
            };
            ours.push(a.cos() as f32);
            ours.push(a.sin() as f32);
        }
    }
    let device = Device::flex();
    let t = Tensor::<1>::from_floats(ours.as_slice(), &device);
    check(
        "dit_tiny_io.safetensors",
        "rope_freqs_real",
        t,
        &fx.f32s("rope_freqs_real").unwrap(),
    );
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
