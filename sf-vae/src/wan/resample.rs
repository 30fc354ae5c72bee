//! `Resample`: spatial ×2 up/down sampling, optionally with a temporal one (`time_conv`).
//!
//! Checkpoint key `resample.1` (the conv after the `Upsample` / `ZeroPad2d` of a `Sequential`)
//! maps to `resample`.

use burn::module::Module;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};
use burn::tensor::{Device, Tensor};

use super::causal_conv::{CacheSlot, CausalConv3d, FeatureCache};
use super::conv2d::Conv2dLayer;
use super::layout::Layout;

/// What a [`Resample`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResampleMode {
    /// Nearest ×2 in space, then a 3×3 conv `C → C/2`.
    #[default]
    Upsample2d,
    /// [`Upsample2d`](ResampleMode::Upsample2d) after a temporal conv `C → 2C` whose two halves
    /// become two consecutive frames.
    Upsample3d,
    /// Zero-pad right/bottom by one, then a 3×3 conv with stride 2.
    Downsample2d,
    /// [`Downsample2d`](ResampleMode::Downsample2d), then a temporal conv with stride 2.
    Downsample3d,
}

/// One resampling stage.
#[derive(Module, Debug)]
pub struct Resample {
    /// `resample.1`.
    pub resample: Conv2dLayer,
    /// `time_conv` (3-D modes only).
    pub time_conv: Option<CausalConv3d>,
    /// The mode.
    #[module(skip)]
    pub mode: ResampleMode,
}

impl Resample {
    /// A stage over `channels` (upsampling halves them).
    pub fn new(channels: usize, mode: ResampleMode, device: &Device) -> Self {
        let c = channels;
        let (resample, time_conv) = match mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => (
                Conv2dLayer::new(c, c / 2, 3, 1, 1, device),
                (mode == ResampleMode::Upsample3d)
                    .then(|| CausalConv3d::new(c, 2 * c, [3, 1, 1], [1, 0, 0], 1, device)),
            ),
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => (
                Conv2dLayer::new(c, c, 3, 2, 0, device),
                (mode == ResampleMode::Downsample3d)
                    .then(|| CausalConv3d::new(c, c, [3, 1, 1], [0, 0, 0], 2, device)),
            ),
        };
        Resample {
            resample,
            time_conv,
            mode,
        }
    }

    /// Applies the stage to a video in the cache's layout, using one cache slot in the 3-D
    /// modes.
    pub fn forward(&self, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
        let layout = cache.layout();
        let x = match (&self.time_conv, self.mode) {
            (Some(conv), ResampleMode::Upsample3d) => upsample_time(conv, x, cache),
            _ => x,
        };
        // Nearest resizing and padding treat every channel plane alike: no axis moves.
        let x = layout.per_plane(x, |planes| match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                let options =
                    InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([2.0, 2.0]);
                interpolate(planes, options)
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => {
                planes.pad((0, 1, 0, 1), PadMode::Constant(0.0))
            }
        });
        let y = self.resample.forward(x, layout);
        match (&self.time_conv, self.mode) {
            (Some(conv), ResampleMode::Downsample3d) => downsample_time(conv, y, cache),
            _ => y,
        }
    }
}

/// The temporal half of `upsample3d`: on the first pass of a video the slot becomes `Rep` and
/// the frames pass unchanged (unless the cache starts from zero history); afterwards the conv
/// doubles every frame: output channels `[0, C)` and `[C, 2C)` are frames `2t` and `2t + 1`.
fn upsample_time(conv: &CausalConv3d, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
    let (idx, slot) = cache.take();
    if matches!(slot, CacheSlot::Empty) && !cache.zero_history {
        cache.put(idx, CacheSlot::Rep);
        return x;
    }
    let layout = cache.layout();
    let y = cache.conv_in_slot(idx, slot, conv, x);
    let [b, c2, t, h, w] = layout.dims(&y);
    let c = c2 / 2;
    match layout {
        // [B, 2, C, T, H, W] -> [B, C, T, 2, H, W] (the one copy this layout costs).
        Layout::ChannelMajor => y
            .reshape([b, 2, c, t, h, w])
            .permute([0, 2, 3, 1, 4, 5])
            .reshape([b, c, 2 * t, h, w]),
        // [B, T, 2, C, H, W] is already frame-major.
        Layout::TimeMajor => y.reshape([b, 2 * t, c, h, w]),
    }
}

/// The temporal half of `downsample3d`: the first pass keeps the frames and remembers the last
/// one; later passes convolve (last remembered frame, frames) with stride 2.
fn downsample_time(conv: &CausalConv3d, x: Tensor<5>, cache: &mut FeatureCache) -> Tensor<5> {
    let layout = cache.layout();
    let (idx, slot) = cache.take();
    let keep = layout.last_frames(None, x.clone(), 1);
    let out = match slot {
        CacheSlot::Frames(prev) => {
            let input = layout.cat_time(vec![layout.last_frames(None, prev, 1), x]);
            cache.conv_uncached(conv, input)
        }
        CacheSlot::Empty | CacheSlot::Rep => x,
    };
    cache.put(idx, CacheSlot::Frames(keep));
    out
}
