//! Fused attention on the CPU: `softmax(q·kᵀ·scale)·v` tile by tile, never forming the score
//! matrix.
//!
//! Work is split over batch × heads × query tiles of [`BQ`] rows (rayon). Each task walks the
//! keys in tiles of [`BK`]: one gemm micro-kernel call for the scores `Q·Kᵀ` (`BQ × BK`), an
//! online-softmax pass over each row (vectorised `2^x`, the accumulator rescaled only when a
//! row's maximum grows) and one gemm call adding `P·V` into the task's `BQ × val_dim`
//! accumulator. Scores, weights and accumulator stay in the core's cache; the inputs are read
//! through their strides (rows of one head adjacent: the Flex glue copies head-interleaved views
//! first) and the output is written as `[B, Lq, H, val_dim]`, ready for the output projection.

use rayon::prelude::*;

use super::vector::{LOG2_E, exp2, exp2_row, row_max};
use super::{Mat, OutPtr, gemm_serial};

/// Query rows per task.
pub(crate) const BQ: usize = 128;
/// Keys per tile.
pub(crate) const BK: usize = 256;

/// A read-only 4-D `f32` view `[batch, heads, seq, dim]` with element strides (all ≥ 0).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    /// The whole storage the view indexes into.
    pub data: &'a [f32],
    /// Element offset of `[0, 0, 0, 0]`.
    pub offset: usize,
    /// Strides of the four axes, in elements.
    pub strides: [usize; 4],
    /// Sizes of the four axes.
    pub shape: [usize; 4],
}

impl View<'_> {
    /// Pointer to row `row` of head `(b, h)`.
    fn row_ptr(&self, b: usize, h: usize, row: usize) -> *const f32 {
        let [sb, sh, sl, _] = self.strides;
        let at = self.offset + b * sb + h * sh + row * sl;
        debug_assert!(at < self.data.len() || self.shape.contains(&0));
        // SAFETY: `at` is inside `data` for every in-bounds index (checked by `check`).
        unsafe { self.data.as_ptr().add(at) }
    }

    /// Whether every element the view addresses lies inside `data`.
    pub(crate) fn in_bounds(&self) -> bool {
        if self.shape.contains(&0) {
            return true;
        }
        let last: usize = self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(&n, &s)| (n - 1) * s)
            .sum();
        self.offset + last < self.data.len()
    }
}

/// Per-task scratch: scores / weights, accumulator, row maxima (log2 domain) and sums.
struct Scratch {
    scores: Vec<f32>,
    acc: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
}

/// `softmax(q·kᵀ·scale)·v` for `q [B, H, Lq, D]`, `k [B, H, Lk, D]`, `v [B, H, Lk, Dv]`; returns
/// `[B, Lq, H, Dv]` contiguous. Shapes must agree (checked by the caller).
pub(crate) fn attention(q: View<'_>, k: View<'_>, v: View<'_>, scale: f32) -> Vec<f32> {
    let [batch, heads, seq_q, head_dim] = q.shape;
    let seq_kv = k.shape[2];
    let val_dim = v.shape[3];
    let mut out = vec![0.0f32; batch * seq_q * heads * val_dim];
    if out.is_empty() {
        return out;
    }
    if seq_kv == 0 {
        // No keys: PyTorch's SDPA gives NaN rows (softmax over nothing).
        out.fill(f32::NAN);
        return out;
    }
    let q_tiles = seq_q.div_ceil(BQ);
    let tasks = batch * heads * q_tiles;
    let out_ptr = OutPtr(out.as_mut_ptr());
    // Scores are kept as `s·scale·log2(e)` so the weights are `2^(t − max)`.
    let c = scale * LOG2_E;
    let new_scratch = || Scratch {
        scores: vec![0.0; BQ * BK],
        acc: vec![0.0; BQ * val_dim],
        max: vec![0.0; BQ],
        sum: vec![0.0; BQ],
    };
    let run = |scratch: &mut Scratch, task: usize| {
        let (bh, qt) = (task / q_tiles, task % q_tiles);
        let (b, h) = (bh / heads, bh % heads);
        let q0 = qt * BQ;
        let rows = BQ.min(seq_q - q0);
        tile(
            scratch,
            &q,
            &k,
            &v,
            [b, h, q0, rows],
            c,
            head_dim,
            seq_kv,
            val_dim,
        );
        // Normalise and store rows `q0..q0 + rows` of head `h`.
        for r in 0..rows {
            let inv = 1.0 / scratch.sum[r];
            let src = &scratch.acc[r * val_dim..(r + 1) * val_dim];
            let at = ((b * seq_q + q0 + r) * heads + h) * val_dim;
            // SAFETY: row (b, q0 + r, h) belongs to this task alone and lies inside `out`.
            let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(at), val_dim) };
            for (d, s) in dst.iter_mut().zip(src) {
                *d = s * inv;
            }
        }
    };
    let work = batch * heads * seq_q * seq_kv * (head_dim + val_dim);
    if tasks > 1 && work >= 1 << 20 {
        (0..tasks).into_par_iter().for_each_init(new_scratch, run);
    } else {
        let mut scratch = new_scratch();
        (0..tasks).for_each(|t| run(&mut scratch, t));
    }
    out
}

/// One query tile against every key: leaves the unnormalised output in `acc` and the softmax
/// denominators in `sum`.
#[allow(clippy::too_many_arguments)]
fn tile(
    s: &mut Scratch,
    q: &View<'_>,
    k: &View<'_>,
    v: &View<'_>,
    [b, h, q0, rows]: [usize; 4],
    c: f32,
    head_dim: usize,
    seq_kv: usize,
    val_dim: usize,
) {
    s.max[..rows].fill(f32::NEG_INFINITY);
    s.sum[..rows].fill(0.0);
    s.acc[..rows * val_dim].fill(0.0);
    let q_ptr = q.row_ptr(b, h, q0);
    for k0 in (0..seq_kv).step_by(BK) {
        let cols = BK.min(seq_kv - k0);
        // scores[rows, cols] = Q[rows, D] · K[k0.., D]ᵀ
        let q_tile = Mat {
            ptr: q_ptr,
            row_stride: q.strides[2],
            col_stride: q.strides[3],
        };
        // Kᵀ: its rows are K's columns.
        let k_t = Mat {
            ptr: k.row_ptr(b, h, k0),
            row_stride: k.strides[3],
            col_stride: k.strides[2],
        };
        // SAFETY: the views are in bounds (checked by the caller); `scores` holds rows × cols.
        unsafe {
            gemm_serial(
                [rows, cols, head_dim],
                s.scores.as_mut_ptr(),
                cols,
                false,
                q_tile,
                k_t,
            )
        };
        for r in 0..rows {
            let row = &mut s.scores[r * cols..(r + 1) * cols];
            let tile_max = row_max(row) * c;
            let old = s.max[r];
            let new = if tile_max > old { tile_max } else { old };
            if new == f32::NEG_INFINITY {
                // Every score so far is -inf: these keys get no weight.
                row.fill(0.0);
                continue;
            }
            let part = exp2_row(row, c, new);
            if new > old {
                let alpha = exp2(old - new);
                s.sum[r] *= alpha;
                for a in &mut s.acc[r * val_dim..(r + 1) * val_dim] {
                    *a *= alpha;
                }
                s.max[r] = new;
            }
            s.sum[r] += part;
        }
        // acc[rows, Dv] += P[rows, cols] · V[k0.., Dv]
        let p_tile = Mat {
            ptr: s.scores.as_ptr(),
            row_stride: cols,
            col_stride: 1,
        };
        let v_tile = Mat {
            ptr: v.row_ptr(b, h, k0),
            row_stride: v.strides[2],
            col_stride: v.strides[3],
        };
        // SAFETY: as above; `acc` holds rows × val_dim.
        unsafe {
            gemm_serial(
                [rows, val_dim, cols],
                s.acc.as_mut_ptr(),
                val_dim,
                true,
                p_tile,
                v_tile,
            )
        };
    }
}
