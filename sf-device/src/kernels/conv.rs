//! Convolution on the CPU without im2col: the "shifted GEMM".
//!
//! The input is zero-padded once (`[B, C, Tp, Hp, Wp]`). Over the padded width, output position
//! `n = y·Wp + x` of a frame reads input `n + ky·Wp + kx` of the frames `t·st + kt`, so each
//! kernel tap `(kt, ky, kx)` is one gemm of the tap's weights `[O, C]` (a strided view of the
//! weight tensor) with a contiguous run of the padded frame `[C, n0 .. n0 + nb]`, accumulated
//! into a `[O, nb]` block that stays in cache. The `Wp − Wo` columns past each row's end are
//! computed and dropped. Work is split over batch × output frames × column blocks (rayon); no
//! `C·K × H·W` column matrix is ever built.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{Mat, OutPtr, gemm_serial};

/// Accumulator elements per task (`O × nb`): 1 MiB of f32.
const ACC_ELEMS: usize = 1 << 18;

/// Shape and options of one 3-D convolution (2-D ones have `t = kt = 1`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// `[B, C, T, H, W]` of the input.
    pub input: [usize; 5],
    /// `[O, C, KT, KH, KW]` of the weight.
    pub kernel: [usize; 5],
    /// Temporal stride (spatial strides are 1).
    pub stride_t: usize,
    /// `(begin, end)` zero padding of T, H and W.
    pub padding: [(usize, usize); 3],
}

impl Geometry {
    /// Padded input sizes `[Tp, Hp, Wp]`.
    fn padded(&self) -> [usize; 3] {
        let [_, _, t, h, w] = self.input;
        let [(t0, t1), (h0, h1), (w0, w1)] = self.padding;
        [t + t0 + t1, h + h0 + h1, w + w0 + w1]
    }

    /// `[B, O, To, Ho, Wo]` of the output, `None` when the kernel is larger than the padded
    /// input.
    pub(crate) fn output(&self) -> Option<[usize; 5]> {
        let [b, _, _, _, _] = self.input;
        let [o, _, kt, kh, kw] = self.kernel;
        let [tp, hp, wp] = self.padded();
        if tp < kt || hp < kh || wp < kw || self.stride_t == 0 {
            return None;
        }
        Some([
            b,
            o,
            (tp - kt) / self.stride_t + 1,
            hp - kh + 1,
            wp - kw + 1,
        ])
    }
}

/// The zero-padded input `p [B, C, Tp, Hp, Wp]` (from [`pad`], or `x` itself when `g` pads
/// nothing) convolved with `weight [O, C, KT, KH, KW]` (contiguous) plus `bias [O]`: the
/// contiguous output `[B, O, To, Ho, Wo]` (see [`Geometry::output`], which must be `Some`).
pub(crate) fn conv3d_padded(
    p: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
) -> Vec<f32> {
    let [batch, c, _, _, _] = g.input;
    let [o, _, kt, kh, kw] = g.kernel;
    let [tp, hp, wp] = g.padded();
    let [_, _, t_out, h_out, w_out] = g.output().expect("the caller checked the geometry");
    let len = batch * o * t_out * h_out * w_out;
    if len == 0 {
        return Vec::new();
    }
    // Every element is written exactly once below (the blocks cover every valid column), so
    // the output is not zeroed first.
    let mut out: Vec<MaybeUninit<f32>> = Vec::with_capacity(len);
    // SAFETY: `MaybeUninit` needs no initialisation.
    unsafe { out.set_len(len) };
    // The weights tap-major, `[KT·KH·KW, O, C]`: each tap's `[O, C]` is contiguous for gemm.
    let taps = kt * kh * kw;
    let mut tap_major = vec![0.0f32; taps * o * c];
    for (i, w) in weight.iter().enumerate() {
        // weight[o', c', tap] at i = (o'·C + c')·taps + tap.
        let (row, tap) = (i / taps, i % taps);
        tap_major[tap * o * c + row] = *w;
    }
    debug_assert_eq!(p.len(), batch * c * tp * hp * wp);
    let frame = hp * wp;
    // Columns of the padded grid that hold outputs: up to the last valid one.
    let n_len = (h_out - 1) * wp + w_out;
    let nb = (ACC_ELEMS / o).clamp(64, 8192).min(n_len);
    let blocks = n_len.div_ceil(nb);
    let out_ptr = OutPtr(out.as_mut_ptr().cast::<f32>());
    let run = |acc: &mut Vec<f32>, task: usize| {
        let (bt, blk) = (task / blocks, task % blocks);
        let (b, to) = (bt / t_out, bt % t_out);
        let n0 = blk * nb;
        let cols = nb.min(n_len - n0);
        for (tap, (dt, dy, dx)) in (0..kt)
            .flat_map(|a| (0..kh).flat_map(move |y| (0..kw).map(move |x| (a, y, x))))
            .enumerate()
        {
            let rhs = (b * c * tp + to * g.stride_t + dt) * frame + dy * wp + dx + n0;
            debug_assert!(rhs + (c - 1) * tp * frame + cols <= p.len());
            let w_tap = Mat {
                ptr: tap_major[tap * o * c..].as_ptr(),
                row_stride: c,
                col_stride: 1,
            };
            let frame_run = Mat {
                // SAFETY: `rhs` is inside `p` (the debug assertion above).
                ptr: unsafe { p.as_ptr().add(rhs) },
                row_stride: tp * frame,
                col_stride: 1,
            };
            // SAFETY: lhs is tap `tap`'s [O, C] block of `tap_major`; rhs addresses
            // padded[b, c', to·st + dt, ...] at columns n0 + dy·Wp + dx .. + cols, which stay
            // inside the frame (n_len is chosen so); acc holds O × cols.
            unsafe {
                gemm_serial(
                    [o, cols, c],
                    acc.as_mut_ptr(),
                    cols,
                    tap > 0,
                    w_tap,
                    frame_run,
                )
            };
        }
        // Keep the valid columns of every row the block touches, plus the bias.
        let (first_row, last_row) = (n0 / wp, (n0 + cols - 1) / wp);
        for oc in 0..o {
            let add = bias.map_or(0.0, |bias| bias[oc]);
            let acc_row = &acc[oc * cols..(oc + 1) * cols];
            let plane = ((b * o + oc) * t_out + to) * h_out * w_out;
            for y in first_row..=last_row {
                let (start, end) = ((y * wp).max(n0), (y * wp + w_out).min(n0 + cols));
                if start >= end {
                    continue;
                }
                let x0 = start - y * wp;
                // SAFETY: (b, oc, to, y, x0..) belongs to this task's block alone.
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.at(plane + y * w_out + x0), end - start)
                };
                for (d, s) in dst.iter_mut().zip(&acc_row[start - n0..end - n0]) {
                    *d = s + add;
                }
            }
        }
    };
    let tasks = batch * t_out * blocks;
    let new_acc = || vec![0.0f32; o * nb];
    if tasks > 1 && o * c * taps * n_len >= 1 << 20 {
        (0..tasks).into_par_iter().for_each_init(new_acc, run);
    } else {
        let mut acc = new_acc();
        (0..tasks).for_each(|task| run(&mut acc, task));
    }
    let mut out = std::mem::ManuallyDrop::new(out);
    let (ptr, len, capacity) = (out.as_mut_ptr().cast::<f32>(), out.len(), out.capacity());
    // SAFETY: every element was written; `MaybeUninit<f32>` has the layout of `f32`.
    unsafe { Vec::from_raw_parts(ptr, len, capacity) }
}

/// The zero-padded copy of `x [B, C, T, H, W]` (contiguous) for `g` (`None` when `g` pads
/// nothing: `x` is used as it is).
pub(crate) fn pad(x: &[f32], g: &Geometry) -> Option<Vec<f32>> {
    let [batch, c, t, h, w] = g.input;
    let [(t0, _), (h0, _), (w0, _)] = g.padding;
    let [tp, hp, wp] = g.padded();
    if [tp, hp, wp] == [t, h, w] {
        return None;
    }
    let mut p = vec![0.0f32; batch * c * tp * hp * wp];
    p.par_chunks_mut(tp * hp * wp)
        .zip(x.par_chunks(t * h * w))
        .for_each(|(dst, src)| {
            for ti in 0..t {
                for y in 0..h {
                    let s = (ti * h + y) * w;
                    let d = ((ti + t0) * hp + y + h0) * wp + w0;
                    dst[d..d + w].copy_from_slice(&src[s..s + w]);
                }
            }
        });
    Some(p)
}
