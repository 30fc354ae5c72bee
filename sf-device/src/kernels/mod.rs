//! Fused operations with kernels of our own on the CPU.
//!
//! Each public function takes and returns plain tensors. On the Flex device it runs this crate's
//! kernel through burn's backend extension (`#[backend_extension(Flex)]`); on every other device
//! it runs [`reference`]'s burn composition, which is also what the kernels are tested against.
//!
//! - [`attention`]: `softmax(q·kᵀ/√d)·v` without a score matrix (query × key tiles, online
//!   softmax with vectorised `2^x`, gemm micro-kernels, parallel over heads × query tiles);
//!   reads KV-cache windows in place and returns `[B, H, Lq, Dv]` whose memory is
//!   `[B, Lq, H, Dv]` (heads merged for the output projection without a copy).
//! - [`gelu_tanh`], [`silu`]: the activations in one vectorised pass (in place when the tensor
//!   is not shared).
//! - [`conv3d`], [`conv2d`]: convolutions with spatial stride 1 as one gemm per kernel tap over
//!   the zero-padded input (no im2col column matrix), any temporal stride; other options fall
//!   back to burn's.

mod conv;
mod flash;
mod flex;
#[cfg(test)]
mod tests;
mod vector;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// The operations with their own Flex implementation (see `flex.rs`).
#[backend_extension(Flex)]
pub(crate) trait FlexKernels: Backend {
    /// Unmasked attention over `[B, H, L, D]` tensors of one float dtype.
    fn sf_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
    /// GELU (tanh approximation).
    fn sf_gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// SiLU.
    fn sf_silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// 3-D convolution, spatial stride and every dilation 1, one group (the generated
    /// dispatch does not unwrap an `Option` of tensors: a missing bias is passed as zeros).
    fn sf_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride_t: usize,
        padding: [(usize, usize); 3],
    ) -> FloatTensor<Self>;
}

/// An output buffer's pointer shared by parallel tasks that each write their own disjoint
/// ranges of it (the attention's query rows, the convolution's column blocks).
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the kernels' tasks write disjoint ranges of one buffer that outlives them.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer `offset` elements in (a method, so closures capture the `Sync` wrapper, not
    /// the raw field).
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers stay inside the output buffer.
        unsafe { self.0.add(offset) }
    }
}

/// A strided `f32` matrix operand of [`gemm_serial`]: its first element and the element
/// strides between rows and between columns.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    row_stride: usize,
    col_stride: usize,
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` on the calling thread (the kernels parallelise
/// around it), `dst` row-major with row stride `dst_row_stride`; `accumulate` adds to `dst`
/// instead of overwriting it.
///
/// # Safety
/// Every element the three shapes and strides address must be valid (`dst` for writes).
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_serial(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Mat,
    rhs: Mat,
) {
    // SAFETY: forwarded from the caller; gemm's convention is dst = alpha·dst + beta·lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.ptr,
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether the kernels take this tensor: on the Flex device, in f32, f16 or bf16 (f64 keeps
/// burn's f64 path).
fn kernel_takes<const D: usize>(x: &Tensor<D>) -> bool {
    x.device() == Device::flex() && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
}

/// Scaled dot-product attention, scale `1/√head_dim`, no mask: `q [B, H, Lq, D]`,
/// `k [B, H, Lk, D]`, `v [B, H, Lk, Dv]` of one dtype -> `[B, H, Lq, Dv]`. Flex runs this
/// crate's kernel; other devices burn's attention over query chunks ([`query_rows_per_call`]).
///
/// # Panics
/// When the shapes disagree (as burn's attention does).
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let ([b, h, _, d], [kb, kh, lk, kd], [vb, vh, vl, _]) = (q.dims(), k.dims(), v.dims());
    assert!(
        (kb, kh, kd) == (b, h, d) && (vb, vh, vl) == (b, h, lk),
        "attention: q {:?}, k {:?} and v {:?} disagree",
        q.dims(),
        k.dims(),
        v.dims()
    );
    if !kernel_takes(&q) || d == 0 {
        return attention_in_query_chunks(q, k, v);
    }
    let scale = 1.0 / (d as f32).sqrt();
    Tensor::from_dispatch(<Dispatch as FlexKernels>::sf_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        scale,
    ))
}

/// The most bytes of scores one call of burn's attention may need when it falls back to its
/// materialising kernel: half the device's largest buffer, at most 1 GiB.
fn score_budget(device: &Device) -> u64 {
    crate::max_buffer_bytes(device).map_or(u64::MAX, |limit| (limit / 2).min(1 << 30))
}

/// Query rows per call of burn's attention so that `[B, H, rows, Lk]` f32 scores stay within
/// `budget` bytes (at least one row; all of them when they fit), balanced so every call has the
/// same shape where the rows divide evenly (one autotune key instead of two).
pub fn query_rows_per_call(dims: [usize; 4], seq_kv: usize, budget: u64) -> usize {
    let [b, h, lq, _] = dims;
    let row_bytes = (b * h * seq_kv * 4).max(1) as u64;
    let most = ((budget / row_bytes) as usize).clamp(1, lq.max(1));
    lq.max(1).div_ceil(lq.max(1).div_ceil(most))
}

/// burn's attention ([`reference::attention`]) over blocks of query rows: exact (the softmax is
/// per query row), and bounded in memory where burn picks its materialising fallback instead of
/// a flash kernel (it does on lavapipe at 4680 × 32760: one head's scores are 613 MB, the DiT's
/// twelve 7.4 GB, over every wgpu device's largest buffer).
fn attention_in_query_chunks(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let lq = q.dims()[2];
    let rows = query_rows_per_call(q.dims(), k.dims()[2], score_budget(&q.device()));
    if rows >= lq {
        return reference::attention(q, k, v);
    }
    let parts = (0..lq)
        .step_by(rows)
        .map(|start| {
            let n = rows.min(lq - start);
            reference::attention(q.clone().narrow(2, start, n), k.clone(), v.clone())
        })
        .collect();
    Tensor::cat(parts, 2)
}

/// GELU with the tanh approximation (`0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`), in the input's
/// dtype.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !kernel_takes(&x) {
        return reference::gelu_tanh(x);
    }
    Tensor::from_dispatch(<Dispatch as FlexKernels>::sf_gelu_tanh(x.into_dispatch()))
}

/// SiLU (`x·σ(x)`), in the input's dtype.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !kernel_takes(&x) {
        return reference::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as FlexKernels>::sf_silu(x.into_dispatch()))
}

/// 3-D convolution `x [B, C, T, H, W]` ⋆ `weight [O, C, KT, KH, KW]` (+ `bias [O]`), as burn's
/// `conv3d`. Runs sf-device's kernel on Flex when the spatial strides, every dilation and the
/// groups are 1.
pub fn conv3d(
    x: Tensor<5>,
    weight: Tensor<5>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<3>,
) -> Tensor<5> {
    let geometry = conv::Geometry {
        input: x.dims(),
        kernel: weight.dims(),
        stride_t: options.stride[0],
        padding: options.padding,
    };
    let plain = options.stride[1..] == [1, 1] && options.dilation == [1; 3] && options.groups == 1;
    let agrees = x.dims()[1] == weight.dims()[1]
        && bias
            .as_ref()
            .is_none_or(|b| b.dims()[0] == weight.dims()[0])
        && bias.as_ref().is_none_or(|b| b.dtype() == x.dtype())
        && weight.dtype() == x.dtype();
    if !(kernel_takes(&x) && plain && agrees && geometry.output().is_some()) {
        return reference::conv3d(x, weight, bias, options);
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], (&x.device(), x.dtype())));
    Tensor::from_dispatch(<Dispatch as FlexKernels>::sf_conv3d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options.stride[0],
        options.padding,
    ))
}

/// 2-D convolution `x [B, C, H, W]` ⋆ `weight [O, C, KH, KW]` (+ `bias [O]`), as burn's
/// `conv2d`; sf-device's kernel on Flex for stride 1, dilation 1, one group.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !(kernel_takes(&x) && options.stride == [1, 1]) {
        return reference::conv2d(x, weight, bias, options);
    }
    let options3 = ConvOptions {
        stride: [1, 1, 1],
        padding: [(0, 0), options.padding[0], options.padding[1]],
        dilation: [1, options.dilation[0], options.dilation[1]],
        groups: options.groups,
    };
    let y = conv3d(x.unsqueeze_dim(2), weight.unsqueeze_dim(2), bias, options3);
    let [b, o, _, h, w] = y.dims();
    y.reshape([b, o, h, w])
}

/// burn's compositions of the same operations: what other devices run and what the kernels are
/// tested against.
pub mod reference {
    use burn::tensor::Tensor;
    use burn::tensor::activation::{self, gelu_approximate};
    use burn::tensor::module;
    use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};

    /// burn's fused attention (`burn::tensor::module::attention`) with [`attention_options`]
    /// and neither a mask nor a bias.
    pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
        let options = attention_options(q.dims()[3]);
        module::attention(q, k, v, None, None, options)
    }

    /// The options [`attention`] hands burn: scale `1/√head_dim`, no softcap and **never
    /// `is_causal`** (burn's flash kernel is reported wrong with it on Metal, burn issue 4484;
    /// the DiT's block-causal structure comes from the KV cache's window instead). The
    /// workspace's tests assert these values, so a change to a causal call fails them.
    pub fn attention_options(head_dim: usize) -> AttentionModuleOptions {
        AttentionModuleOptions {
            scale: Some(1.0 / (head_dim as f64).sqrt()),
            softcap: None,
            is_causal: false,
        }
    }

    /// burn's `gelu_approximate`.
    pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        gelu_approximate(x)
    }

    /// burn's `silu`.
    pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        activation::silu(x)
    }

    /// burn's `conv3d`.
    pub fn conv3d(
        x: Tensor<5>,
        weight: Tensor<5>,
        bias: Option<Tensor<1>>,
        options: ConvOptions<3>,
    ) -> Tensor<5> {
        module::conv3d(x, weight, bias, options)
    }

    /// burn's `conv2d`.
    pub fn conv2d(
        x: Tensor<4>,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        options: ConvOptions<2>,
    ) -> Tensor<4> {
        module::conv2d(x, weight, bias, options)
    }
}
