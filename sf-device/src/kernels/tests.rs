//! The Flex kernels against burn's compositions ([`super::reference`]) on random inputs: odd
//! sizes, tile edges, strided views, f32, f16 and bf16.

use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor};

use super::{attention, gelu_tanh, reference};

fn randn<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let device = Device::flex();
    device.seed(seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(FloatDType::F32)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// Largest |a − b| over the largest |b| (at least 1).
fn relative_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let gap = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(gap.is_finite(), "non-finite output");
    gap / scale
}

fn check_attention([b, h, lq, lk, d, dv]: [usize; 6], q_gain: f32, dtype: FloatDType, bound: f32) {
    let seed = (b * 7 + h * 11 + lq * 13 + lk * 17 + d * 19 + dv) as u64;
    let q = (randn([b, h, lq, d], seed) * q_gain).cast(dtype);
    let k = randn([b, h, lk, d], seed + 1).cast(dtype);
    let v = randn([b, h, lk, dv], seed + 2).cast(dtype);
    let ours = attention(q.clone(), k.clone(), v.clone());
    assert_eq!(ours.dims(), [b, h, lq, dv]);
    assert_eq!(ours.dtype(), DType::from(dtype));
    let gap = relative_gap(&values(ours), &values(reference::attention(q, k, v)));
    assert!(
        gap <= bound,
        "{dtype:?} [{b}, {h}, {lq}, {lk}, {d}, {dv}] gain {q_gain}: gap {gap} > {bound}"
    );
}

#[test]
fn attention_matches_burn_for_odd_shapes_and_tile_edges_in_f32() {
    for shape in [
        [1, 1, 1, 1, 1, 1],
        [1, 1, 3, 5, 7, 2],
        [2, 3, 65, 130, 17, 9],
        [1, 2, 63, 255, 32, 32],
        [1, 2, 64, 256, 64, 64],
        [1, 1, 129, 257, 128, 128],
        [1, 3, 200, 700, 24, 40],
    ] {
        check_attention(shape, 1.0, FloatDType::F32, 2e-6);
    }
}

#[test]
fn attention_rescales_rows_whose_maximum_grows_late() {
    // Peaked softmaxes: the maxima move between key tiles, so the accumulators get rescaled.
    check_attention([1, 2, 70, 600, 16, 8], 12.0, FloatDType::F32, 2e-6);
}

#[test]
fn attention_matches_burn_in_f16_and_bf16() {
    for shape in [[1, 2, 65, 300, 33, 16], [2, 1, 7, 9, 8, 8]] {
        check_attention(shape, 1.0, FloatDType::F16, 2e-3);
        check_attention(shape, 1.0, FloatDType::BF16, 1.6e-2);
    }
}

#[test]
fn attention_reads_strided_views_in_place() {
    // The DiT's layout: projections [B, L, H, D] viewed as [B, H, L, D], keys a window of a
    // longer cache.
    let (b, h, lq, lk, d) = (1, 3, 70, 300, 20);
    let q = randn([b, lq, h, d], 5).swap_dims(1, 2);
    let cache = randn([b, h, lk + 40, d], 6);
    let k = cache.clone().narrow(2, 25, lk);
    let v = randn([b, h, lk + 40, d], 7).narrow(2, 25, lk);
    let ours = attention(q.clone(), k.clone(), v.clone());
    let expect = reference::attention(q, k, v);
    assert!(relative_gap(&values(ours.clone()), &values(expect.clone())) <= 2e-6);
    // The result's memory is [B, Lq, H, Dv]: merging heads needs no copy and agrees.
    let merged = ours.swap_dims(1, 2).reshape([b, lq, h * d]);
    let expect = expect.swap_dims(1, 2).reshape([b, lq, h * d]);
    assert!(relative_gap(&values(merged), &values(expect)) <= 2e-6);
}

#[test]
fn attention_leaves_its_inputs_unchanged() {
    let q = randn([1, 2, 9, 8], 1);
    let before = values(q.clone());
    let _ = attention(q.clone(), q.clone(), q.clone());
    assert_eq!(values(q), before);
}

#[test]
fn gelu_matches_burn_for_odd_sizes_and_dtypes() {
    for (len, dtype, bound) in [
        (1, FloatDType::F32, 1e-6),
        (1000, FloatDType::F32, 1e-6),
        (70_001, FloatDType::F32, 1e-6),
        (33_333, FloatDType::F16, 1e-3),
        (33_333, FloatDType::BF16, 8e-3),
    ] {
        let x = (randn([3, len], len as u64) * 4.0).cast(dtype);
        let ours = gelu_tanh(x.clone());
        assert_eq!(ours.dtype(), DType::from(dtype));
        assert_eq!(ours.dims(), [3, len]);
        let gap = relative_gap(&values(ours), &values(reference::gelu_tanh(x)));
        assert!(gap <= bound, "{dtype:?} {len}: gap {gap}");
    }
}

#[test]
fn gelu_never_writes_into_a_shared_tensor() {
    let x = randn([4, 300], 3);
    let before = values(x.clone());
    let y = gelu_tanh(x.clone());
    assert_eq!(values(x), before, "the caller's tensor changed");
    let expect = values(reference::gelu_tanh(Tensor::<2>::from_floats(
        burn::tensor::TensorData::new(before, [4, 300]),
        &Device::flex(),
    )));
    assert!(relative_gap(&values(y), &expect) <= 1e-6);
}

#[test]
fn gelu_of_a_strided_view_matches() {
    let x = randn([30, 50], 9).swap_dims(0, 1);
    let ours = gelu_tanh(x.clone());
    assert_eq!(ours.dims(), [50, 30]);
    assert!(relative_gap(&values(ours), &values(reference::gelu_tanh(x))) <= 1e-6);
}
