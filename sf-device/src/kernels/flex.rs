//! The Flex side of [`FlexKernels`]: reads `FlexTensor` storage in place, runs the kernels on
//! `f32` and returns tensors in the input dtype (f16 / bf16 are widened to f32 and narrowed back,
//! as burn-flex's own attention does).

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Bytes, DType, Flex, FloatDType, Shape};
use rayon::prelude::*;

use super::FlexKernels;
use super::conv;
use super::flash::{self, View};
use super::vector::{gelu_tanh_in_place, silu_in_place};

/// Elements per parallel element-wise job.
const CHUNK: usize = 1 << 15;

impl FlexKernels for Flex {
    fn sf_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f32) -> FlexTensor {
        let dtype = q.dtype();
        let (q, k, v) = (f32_view_ready(q), f32_view_ready(k), f32_view_ready(v));
        let (qv, kv, vv) = (view(&q), view(&k), view(&v));
        let [b, h, lq, _] = qv.shape;
        let dv = vv.shape[3];
        let out = flash::attention(qv, kv, vv, scale);
        // Memory [B, Lq, H, Dv], returned as the [B, H, Lq, Dv] view of it.
        let out = FlexTensor::new(
            Bytes::from_elems(out),
            Layout::contiguous(Shape::from(vec![b, lq, h, dv])),
            DType::F32,
        );
        let out = out.transpose(1, 2);
        narrow_to(out, dtype)
    }

    fn sf_conv3d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride_t: usize,
        padding: [(usize, usize); 3],
    ) -> FlexTensor {
        let dtype = x.dtype();
        let contiguous_f32 = |t: FlexTensor| {
            if t.dtype() == DType::F32 {
                t.to_contiguous()
            } else {
                Flex::float_cast(t, FloatDType::F32).to_contiguous()
            }
        };
        let dims5 = |t: &FlexTensor| {
            let s = t.layout().shape();
            [s[0], s[1], s[2], s[3], s[4]]
        };
        let (x, weight) = (contiguous_f32(x), contiguous_f32(weight));
        let bias = contiguous_f32(bias);
        let geometry = conv::Geometry {
            input: dims5(&x),
            kernel: dims5(&weight),
            stride_t,
            padding,
        };
        let shape = geometry.output().expect("checked by kernels::conv3d");
        let (weight, bias) = (dense(&weight), Some(dense(&bias)));
        // The input is dropped as soon as its padded copy exists: a causal convolution's input
        // is the `cat` of its cached frames and the new ones, often owned by this call alone,
        // and at the Wan VAE's full-resolution stages each copy is about 0.9 GB.
        let out = match conv::pad(dense(&x), &geometry) {
            Some(padded) => {
                drop(x);
                conv::conv3d_padded(&padded, weight, bias, &geometry)
            }
            None => conv::conv3d_padded(dense(&x), weight, bias, &geometry),
        };
        let out = FlexTensor::new(
            Bytes::from_elems(out),
            Layout::contiguous(Shape::from(shape.to_vec())),
            DType::F32,
        );
        narrow_to(out, dtype)
    }

    fn sf_gelu_tanh(x: FlexTensor) -> FlexTensor {
        elementwise(x, gelu_tanh_in_place)
    }

    fn sf_silu(x: FlexTensor) -> FlexTensor {
        elementwise(x, silu_in_place)
    }
}

/// `x` with `f` applied to every element (in place when its storage is not shared), in its
/// dtype.
fn elementwise(x: FlexTensor, f: fn(&mut [f32])) -> FlexTensor {
    let dtype = x.dtype();
    let mut x = if dtype == DType::F32 {
        // `to_contiguous` of a contiguous tensor shares its storage: drop `x` before asking for
        // unique access, or the pass always copies.
        let contiguous = x.to_contiguous();
        drop(x);
        contiguous
    } else {
        Flex::float_cast(x, FloatDType::F32)
    };
    let apply = |xs: &mut [f32]| xs.par_chunks_mut(CHUNK).for_each(f);
    match x.try_storage_mut::<f32>() {
        Some(xs) => apply(xs),
        None => {
            // Shared storage: write a copy, never the other owner's data.
            let mut copy = x.storage::<f32>().to_vec();
            apply(&mut copy);
            let layout = x.layout().clone();
            x = FlexTensor::new(Bytes::from_elems(copy), layout, DType::F32);
        }
    }
    narrow_to(x, dtype)
}

/// An f32 `[B, H, L, D]` tensor whose rows of one head are adjacent in memory (f16 / bf16 are
/// cast, which also makes them contiguous). A window of a KV cache (`[B, H, cap, D]` narrowed
/// along `L`) is kept in place; a view with the heads interleaved (`[B, L, H, D]` memory, the
/// projections' layout) is copied once: the kernel reads every key tile once per query tile,
/// and rows 6 KiB apart ran it about 20 % slower (page-table misses) than the copy costs.
fn f32_view_ready(t: FlexTensor) -> FlexTensor {
    if t.dtype() != DType::F32 {
        return Flex::float_cast(t, FloatDType::F32);
    }
    let layout = t.layout();
    let d = layout.shape()[3] as isize;
    let rows_adjacent = layout.strides()[3] == 1 && layout.strides()[2] == d;
    if rows_adjacent && layout.has_positive_strides() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous f32 tensor (its storage may be larger: a narrowed view).
fn dense(t: &FlexTensor) -> &[f32] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("made contiguous by the caller");
    &t.storage::<f32>()[start..end]
}

/// The kernel's view of a 4-D f32 tensor.
fn view(t: &FlexTensor) -> View<'_> {
    let layout = t.layout();
    let shape = layout.shape();
    let mut strides = [0usize; 4];
    for (s, &st) in strides.iter_mut().zip(layout.strides()) {
        *s = st as usize;
    }
    let view = View {
        data: t.storage::<f32>(),
        offset: layout.start_offset(),
        strides,
        shape: [shape[0], shape[1], shape[2], shape[3]],
    };
    assert!(
        view.in_bounds(),
        "attention: a view reaches past its storage"
    );
    view
}

/// Casts an f32 result back to `dtype` (no-op for f32).
fn narrow_to(t: FlexTensor, dtype: DType) -> FlexTensor {
    match dtype {
        DType::F32 => t,
        DType::F16 => Flex::float_cast(t, FloatDType::F16),
        DType::BF16 => Flex::float_cast(t, FloatDType::BF16),
        other => panic!("sf kernels: {other:?} is not a float dtype"),
    }
}
