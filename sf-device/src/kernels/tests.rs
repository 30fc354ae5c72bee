//! The Flex kernels against burn's compositions ([`super::reference`]) on random inputs: odd
//! sizes, tile edges, strided views, f32, f16 and bf16.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Distribution, FloatDType, Tensor};

use super::{attention, conv2d, conv3d, gelu_tanh, reference, silu};

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
fn attention_of_head_interleaved_views_and_cache_windows_matches() {
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
fn silu_matches_burn_for_odd_sizes_and_dtypes() {
    for (len, dtype, bound) in [
        (1, FloatDType::F32, 1e-6),
        (70_001, FloatDType::F32, 1e-6),
        (33_333, FloatDType::F16, 1e-3),
        (33_333, FloatDType::BF16, 8e-3),
    ] {
        let x = (randn([2, len], len as u64 + 5) * 6.0).cast(dtype);
        let ours = silu(x.clone());
        assert_eq!(ours.dtype(), DType::from(dtype));
        let gap = relative_gap(&values(ours), &values(reference::silu(x)));
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

/// `x` with `before` and `after` zero slices added along `axis`.
fn zero_pad(x: Tensor<5>, axis: usize, before: usize, after: usize) -> Tensor<5> {
    let zeros = |n: usize| {
        let mut shape = x.dims();
        shape[axis] = n;
        Tensor::<5>::zeros(shape, (&x.device(), x.dtype()))
    };
    let mut parts = Vec::new();
    if before > 0 {
        parts.push(zeros(before));
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(zeros(after));
    }
    Tensor::cat(parts, axis)
}

fn check_conv3d(
    [b, c, t, h, w]: [usize; 5],
    [o, kt, kh, kw]: [usize; 4],
    stride_t: usize,
    padding: [(usize, usize); 3],
    with_bias: bool,
    dtype: FloatDType,
    bound: f32,
) {
    let seed = (b + 3 * c + 5 * t + 7 * h + 11 * w + 13 * o + kt + kh + kw) as u64;
    let x = randn([b, c, t, h, w], seed).cast(dtype);
    let weight = (randn([o, c, kt, kh, kw], seed + 1) * 0.3).cast(dtype);
    let bias = with_bias.then(|| randn([o], seed + 2).cast(dtype));
    let options = ConvOptions {
        stride: [stride_t, 1, 1],
        padding,
        dilation: [1, 1, 1],
        groups: 1,
    };
    let ours = conv3d(x.clone(), weight.clone(), bias.clone(), options.clone());
    // burn's conv3d takes symmetric padding only: pad the reference's input explicitly.
    let mut padded = x;
    for (axis, &(before, after)) in padding.iter().enumerate() {
        padded = zero_pad(padded, axis + 2, before, after);
    }
    let unpadded = ConvOptions {
        padding: [(0, 0); 3],
        ..options
    };
    let expect = reference::conv3d(padded, weight, bias, unpadded);
    assert_eq!(ours.dims(), expect.dims());
    assert_eq!(ours.dtype(), DType::from(dtype));
    let gap = relative_gap(&values(ours), &values(expect));
    assert!(
        gap <= bound,
        "{dtype:?} x [{b}, {c}, {t}, {h}, {w}] k [{o}, {kt}, {kh}, {kw}] st {stride_t} pad {padding:?}: gap {gap}"
    );
}

#[test]
fn conv3d_matches_burn_for_causal_strided_and_odd_geometries() {
    let f = FloatDType::F32;
    // The Wan VAE's causal 3x3x3 (front padding only), odd sizes.
    check_conv3d(
        [1, 3, 4, 5, 7],
        [4, 3, 3, 3],
        1,
        [(2, 0), (1, 1), (1, 1)],
        true,
        f,
        2e-6,
    );
    check_conv3d(
        [2, 5, 3, 9, 6],
        [7, 3, 3, 3],
        1,
        [(0, 0), (1, 1), (1, 1)],
        false,
        f,
        2e-6,
    );
    // Temporal downsampling ([3, 1, 1], stride 2) and the time conv ([3, 1, 1], front pad 2).
    check_conv3d(
        [1, 4, 7, 3, 5],
        [8, 3, 1, 1],
        2,
        [(0, 0), (0, 0), (0, 0)],
        true,
        f,
        2e-6,
    );
    check_conv3d(
        [1, 4, 2, 3, 5],
        [8, 3, 1, 1],
        1,
        [(2, 0), (0, 0), (0, 0)],
        true,
        f,
        2e-6,
    );
    // 1x1x1 without padding (no padded copy), single pixels, asymmetric padding, wide rows
    // that span several column blocks.
    check_conv3d(
        [1, 6, 2, 4, 4],
        [5, 1, 1, 1],
        1,
        [(0, 0), (0, 0), (0, 0)],
        true,
        f,
        2e-6,
    );
    check_conv3d(
        [1, 2, 1, 1, 1],
        [3, 1, 3, 3],
        1,
        [(0, 0), (1, 1), (1, 1)],
        true,
        f,
        2e-6,
    );
    check_conv3d(
        [1, 3, 1, 6, 5],
        [2, 1, 3, 2],
        1,
        [(0, 0), (2, 0), (0, 1)],
        true,
        f,
        2e-6,
    );
    check_conv3d(
        [1, 2, 1, 40, 300],
        [3, 1, 3, 3],
        1,
        [(0, 0), (1, 1), (1, 1)],
        true,
        f,
        2e-6,
    );
}

#[test]
fn conv3d_matches_burn_in_f16_and_bf16() {
    let geometry = ([1, 8, 3, 6, 10], [5, 3, 3, 3], [(2, 0), (1, 1), (1, 1)]);
    let (x, k, pad) = geometry;
    check_conv3d(x, k, 1, pad, true, FloatDType::F16, 3e-3);
    check_conv3d(x, k, 1, pad, true, FloatDType::BF16, 2e-2);
}

#[test]
fn conv2d_matches_burn_and_falls_back_where_the_kernel_does_not_apply() {
    for (stride, padding, k) in [
        (1, (1, 1), 3),
        (1, (0, 0), 1),
        (2, (1, 1), 3),
        (1, (2, 1), 3),
    ] {
        let x = randn([2, 5, 11, 13], 40 + k as u64);
        let weight = randn([6, 5, k, k], 41) * 0.3;
        let bias = randn([6], 42);
        let options = ConvOptions {
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
            groups: 1,
        };
        let ours = conv2d(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            options.clone(),
        );
        let expect = reference::conv2d(x, weight, Some(bias), options);
        assert_eq!(ours.dims(), expect.dims());
        let gap = relative_gap(&values(ours), &values(expect));
        assert!(
            gap <= 2e-6,
            "stride {stride} padding {padding:?} k {k}: gap {gap}"
        );
    }
}

#[test]
fn conv3d_reads_a_narrowed_input() {
    // A contiguous view that starts inside its storage, and a strided one.
    let batch = randn([3, 3, 4, 4, 5], 50);
    let x = batch.clone().narrow(0, 1, 2);
    let weight = randn([2, 3, 3, 3, 3], 51);
    let options = ConvOptions::new([1, 1, 1], [0, 1, 1], [1, 1, 1], 1);
    let ours = conv3d(x.clone(), weight.clone(), None, options.clone());
    let expect = reference::conv3d(x, weight, None, options);
    assert!(relative_gap(&values(ours), &values(expect)) <= 2e-6);
    let x = batch.narrow(2, 1, 3);
    let weight = randn([2, 3, 3, 3, 3], 51);
    let options = ConvOptions::new([1, 1, 1], [0, 1, 1], [1, 1, 1], 1);
    let ours = conv3d(x.clone(), weight.clone(), None, options.clone());
    let expect = reference::conv3d(x, weight, None, options);
    assert!(relative_gap(&values(ours), &values(expect)) <= 2e-6);
}
