//! 3D rotary position embedding (frame, height, width) with interleaved channel pairs.
//!
//! A head of width `d` holds `d/2` complex pairs `(2j, 2j+1)`. They are split into
//! `[d - 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋]` channels for the frame, height and width axes; pair `j` of an
//! axis of width `d_a` rotates by `pos · 10000^(-2j/d_a)`. Angles are computed in f64 on the host
//! (as upstream), and the rotation itself runs in f32.

use burn::tensor::{Device, FloatDType, Tensor, TensorData};

use crate::ModelError;

/// Positions per axis in the table (upstream's `rope_params(1024, ..)`).
pub const ROPE_MAX_POSITIONS: usize = 1024;
/// RoPE base.
pub const ROPE_THETA: f64 = 10000.0;

/// The per-axis angle tables of one head width.
#[derive(Clone, Debug)]
pub struct Rope {
    head_dim: usize,
    /// Pairs per axis (frame, height, width).
    pairs: [usize; 3],
    /// `angles[a][pos * pairs[a] + j]` for axis `a`.
    angles: [Vec<f64>; 3],
}

/// cos / sin of every token's angles, shaped `[1, L, 1, head_dim/2]` (f32), for one grid.
#[derive(Clone, Debug)]
pub struct RopeFreqs {
    /// cos of the angles.
    pub cos: Tensor<4>,
    /// sin of the angles.
    pub sin: Tensor<4>,
}

impl Rope {
    /// Builds the tables for heads of width `head_dim` (must be even).
    pub fn new(head_dim: usize) -> Result<Self, ModelError> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "RoPE needs an even, positive head_dim, got {head_dim}"
            )));
        }
        let widths = Self::split(head_dim);
        let pairs = widths.map(|w| w / 2);
        let angles = widths.map(|w| {
            let mut table = Vec::with_capacity(ROPE_MAX_POSITIONS * w / 2);
            for pos in 0..ROPE_MAX_POSITIONS {
                for j in 0..w / 2 {
                    let freq = 1.0 / ROPE_THETA.powf((2 * j) as f64 / w as f64);
                    table.push(pos as f64 * freq);
                }
            }
            table
        });
        Ok(Rope {
            head_dim,
            pairs,
            angles,
        })
    }

    /// Channel widths of the (frame, height, width) parts: `[d - 4⌊d/6⌋, 2⌊d/6⌋, 2⌊d/6⌋]`.
    pub fn split(head_dim: usize) -> [usize; 3] {
        let s = 2 * (head_dim / 6);
        [head_dim - 2 * s, s, s]
    }

    /// The head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The angle of pair `j` (over the whole head) at grid position (frame, row, col).
    pub fn angle(&self, frame: usize, row: usize, col: usize, j: usize) -> f64 {
        let [p0, p1, p2] = self.pairs;
        if j < p0 {
            self.angles[0][frame * p0 + j]
        } else if j < p0 + p1 {
            self.angles[1][row * p1 + j - p0]
        } else {
            self.angles[2][col * p2 + j - p0 - p1]
        }
    }

    /// cos/sin for the tokens of a `(frames, rows, cols)` grid in (frame, row, col) order, the
    /// first frame being at absolute temporal position `start_frame`.
    pub fn freqs(
        &self,
        start_frame: usize,
        grid: [usize; 3],
        device: &Device,
    ) -> Result<RopeFreqs, ModelError> {
        let [frames, rows, cols] = grid;
        let limits = [
            ("frame", start_frame + frames),
            ("height", rows),
            ("width", cols),
        ];
        for (axis, end) in limits {
            if end > ROPE_MAX_POSITIONS {
                return Err(ModelError::InvalidInput(format!(
                    "RoPE {axis} position {} exceeds the table of {ROPE_MAX_POSITIONS} positions",
                    end - 1
                )));
            }
        }
        let positions = (0..frames).flat_map(move |f| {
            (0..rows).flat_map(move |r| (0..cols).map(move |c| [start_frame + f, r, c]))
        });
        self.freqs_at(positions, device)
    }

    /// cos/sin for tokens at explicit `[frame, row, col]` grid positions, in order (the
    /// KV-cache-relative RoPE ropes cached keys by their cache row).
    pub fn freqs_at(
        &self,
        positions: impl IntoIterator<Item = [usize; 3]>,
        device: &Device,
    ) -> Result<RopeFreqs, ModelError> {
        let half = self.head_dim / 2;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        let mut tokens = 0;
        for [f, r, c] in positions {
            if let Some(far) = [f, r, c].into_iter().find(|&p| p >= ROPE_MAX_POSITIONS) {
                return Err(ModelError::InvalidInput(format!(
                    "RoPE position {far} exceeds the table of {ROPE_MAX_POSITIONS} positions"
                )));
            }
            for j in 0..half {
                let a = self.angle(f, r, c, j);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
            tokens += 1;
        }
        let shape = [1, tokens, 1, half];
        Ok(RopeFreqs {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        })
    }
}

impl RopeFreqs {
    /// Rotates `x` `[B, L, H, head_dim]` (any float dtype; computed in f32, returned in the input
    /// dtype).
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let dtype = x.dtype();
        let [b, l, h, d] = x.dims();
        let x = x.cast(FloatDType::F32).reshape([b, l, h, d / 2, 2]);
        let re = x.clone().narrow(4, 0, 1).reshape([b, l, h, d / 2]);
        let im = x.narrow(4, 1, 1).reshape([b, l, h, d / 2]);
        let out_re = re.clone() * self.cos.clone() - im.clone() * self.sin.clone();
        let out_im = re * self.sin.clone() + im * self.cos.clone();
        Tensor::stack::<5>(vec![out_re, out_im], 4)
            .reshape([b, l, h, d])
            .cast(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_upstream() {
        assert_eq!(Rope::split(128), [44, 42, 42]);
        assert_eq!(Rope::split(16), [8, 4, 4]);
        assert_eq!(Rope::split(64), [24, 20, 20]);
        assert_eq!(Rope::split(2), [2, 0, 0]);
        assert!(Rope::new(15).is_err());
    }

    #[test]
    fn angles_follow_the_formula() {
        let rope = Rope::new(128).unwrap();
        // Frame part: 22 pairs over width 44.
        let a = rope.angle(7, 0, 0, 3);
        assert!((a - 7.0 / 10000f64.powf(6.0 / 44.0)).abs() < 1e-12);
        // Height part starts at pair 22 (width 42).
        let a = rope.angle(0, 5, 0, 22 + 2);
        assert!((a - 5.0 / 10000f64.powf(4.0 / 42.0)).abs() < 1e-12);
        // Width part starts at pair 43.
        let a = rope.angle(0, 0, 9, 43 + 20);
        assert!((a - 9.0 / 10000f64.powf(40.0 / 42.0)).abs() < 1e-12);
    }

    #[test]
    fn rotation_preserves_norms_and_rejects_far_frames() {
        let device = Device::flex();
        let rope = Rope::new(16).unwrap();
        let freqs = rope.freqs(3, [2, 2, 3], &device).unwrap();
        let x = Tensor::<4>::ones([1, 12, 2, 16], &device);
        let y = freqs.apply(x);
        let norm = y.square().sum().into_scalar::<f32>();
        assert!((norm - (12 * 2 * 16) as f32).abs() < 1e-3);
        assert!(rope.freqs(1023, [2, 1, 1], &device).is_err());
    }
}
