//! Where time and channels sit in the Wan VAE's 5-D activations.
//!
//! The layout follows the [`ConvStrategy`](super::ConvStrategy): burn's `conv3d` wants
//! channel-major `[B, C, T, H, W]` (also upstream's and the rollout's layout), the `conv2d`
//! lowerings want time-major `[B, T, C, H, W]`, where one frame's channels are contiguous and
//! frames stack into `conv2d` batches. Every block of the VAE works in either.

use burn::tensor::Tensor;

/// The axis order of a video tensor inside the Wan VAE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `[B, C, T, H, W]`: upstream's, the rollout's and burn's `conv3d` layout.
    ChannelMajor,
    /// `[B, T, C, H, W]`: the layout of the `conv2d` lowerings and of decoded frames.
    TimeMajor,
}

impl Layout {
    /// The time axis (2 or 1).
    pub fn time_axis(self) -> usize {
        match self {
            Layout::ChannelMajor => 2,
            Layout::TimeMajor => 1,
        }
    }

    /// The channel axis (1 or 2).
    pub fn channel_axis(self) -> usize {
        3 - self.time_axis()
    }

    /// The sizes of `x` in channel-major order `[B, C, T, H, W]`, whatever its layout.
    pub fn dims(self, x: &Tensor<5>) -> [usize; 5] {
        let [b, d1, d2, h, w] = x.dims();
        match self {
            Layout::ChannelMajor => [b, d1, d2, h, w],
            Layout::TimeMajor => [b, d2, d1, h, w],
        }
    }

    /// The shape in this layout of a tensor with `channels` channels and `frames` frames.
    pub fn shape(self, [b, c, t, h, w]: [usize; 5]) -> [usize; 5] {
        match self {
            Layout::ChannelMajor => [b, c, t, h, w],
            Layout::TimeMajor => [b, t, c, h, w],
        }
    }

    /// Frames in `x`.
    pub fn frames(self, x: &Tensor<5>) -> usize {
        x.dims()[self.time_axis()]
    }

    /// `x`, given in layout `from`, in this layout (one transpose when they differ).
    pub fn convert(self, x: Tensor<5>, from: Layout) -> Tensor<5> {
        if self == from { x } else { x.swap_dims(1, 2) }
    }

    /// Frames `start .. start + len` of `x`.
    pub fn narrow_time(self, x: Tensor<5>, start: usize, len: usize) -> Tensor<5> {
        x.narrow(self.time_axis(), start, len)
    }

    /// The frames of `parts`, one after the other.
    pub fn cat_time(self, parts: Vec<Tensor<5>>) -> Tensor<5> {
        if parts.len() == 1 {
            parts.into_iter().next().expect("one part")
        } else {
            Tensor::cat(parts, self.time_axis())
        }
    }

    /// The last `n` frames of `history` followed by `x` (fewer if there are fewer).
    pub fn last_frames(self, history: Option<Tensor<5>>, x: Tensor<5>, n: usize) -> Tensor<5> {
        let t = self.frames(&x);
        if t >= n {
            return self.narrow_time(x, t - n, n);
        }
        match history {
            Some(h) => {
                let th = self.frames(&h);
                let keep = (n - t).min(th);
                self.cat_time(vec![self.narrow_time(h, th - keep, keep), x])
            }
            None => x,
        }
    }

    /// Per-frame tokens `[B·T, H·W, C]` (the attention's sequence layout) of `x`.
    pub fn to_tokens(self, x: Tensor<5>) -> Tensor<3> {
        let [b, c, t, h, w] = self.dims(&x);
        match self {
            // [B, C, T·H·W] -> [B, T·H·W, C] -> [B·T, H·W, C]
            Layout::ChannelMajor => {
                x.reshape([b, c, t * h * w])
                    .swap_dims(1, 2)
                    .reshape([b * t, h * w, c])
            }
            // [B·T, C, H·W] -> [B·T, H·W, C]
            Layout::TimeMajor => x.reshape([b * t, c, h * w]).swap_dims(1, 2),
        }
    }

    /// The inverse of [`to_tokens`](Self::to_tokens) for a video of `b` × `t` frames of
    /// `h` × `w`.
    pub fn from_tokens(self, tokens: Tensor<3>, [b, t, h, w]: [usize; 4]) -> Tensor<5> {
        let c = tokens.dims()[2];
        match self {
            Layout::ChannelMajor => tokens
                .reshape([b, t * h * w, c])
                .swap_dims(1, 2)
                .reshape([b, c, t, h, w]),
            Layout::TimeMajor => tokens.swap_dims(1, 2).reshape([b, t, c, h, w]),
        }
    }

    /// Applies a per-image operation on `[N, C', H, W]` planes to every frame and channel: the
    /// two middle axes merge into one (free in both layouts), so only operations that treat
    /// every channel plane alike qualify (nearest resizing, padding).
    pub fn per_plane(self, x: Tensor<5>, f: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<5> {
        let [b, d1, d2, h, w] = x.dims();
        let y = f(x.reshape([b, d1 * d2, h, w]));
        let [_, _, h2, w2] = y.dims();
        y.reshape([b, d1, d2, h2, w2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values(x: Tensor<5>) -> Vec<f32> {
        x.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn both_layouts_hold_the_same_video() {
        let device = Device::flex();
        let cm = Tensor::<5>::random([2, 3, 4, 5, 6], Distribution::Default, &device);
        let tm = Layout::TimeMajor.convert(cm.clone(), Layout::ChannelMajor);
        assert_eq!(tm.dims(), [2, 4, 3, 5, 6]);
        assert_eq!(Layout::TimeMajor.dims(&tm), [2, 3, 4, 5, 6]);
        assert_eq!(Layout::TimeMajor.shape([2, 3, 4, 5, 6]), [2, 4, 3, 5, 6]);
        // Tokens and the frame operations agree between the layouts.
        let tokens = |l: Layout, x: Tensor<5>| l.to_tokens(x).into_data();
        assert_eq!(
            tokens(Layout::ChannelMajor, cm.clone()),
            tokens(Layout::TimeMajor, tm.clone())
        );
        let back = Layout::ChannelMajor
            .from_tokens(Layout::ChannelMajor.to_tokens(cm.clone()), [2, 4, 5, 6]);
        assert_eq!(values(back), values(cm.clone()));
        let tail_cm = Layout::ChannelMajor.last_frames(
            Some(cm.clone()),
            Layout::ChannelMajor.narrow_time(cm.clone(), 0, 1),
            3,
        );
        let tail_tm = Layout::TimeMajor.last_frames(
            Some(tm.clone()),
            Layout::TimeMajor.narrow_time(tm, 0, 1),
            3,
        );
        assert_eq!(
            values(Layout::ChannelMajor.convert(tail_tm, Layout::TimeMajor)),
            values(tail_cm)
        );
    }
}
