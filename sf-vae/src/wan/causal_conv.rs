//! `CausalConv3d` (front-only temporal padding), its feature cache and the ways to compute it.
//!
//! Activations are in the [`Layout`] of the [`ConvStrategy`]: channel-major `[B, C, T, H, W]`
//! for burn's `conv3d`, time-major `[B, T, C, H, W]` for the `conv2d` lowerings (a frame's
//! channels contiguous, so frames stack into `conv2d` batches). Weights keep PyTorch's layout
//! `[out, in, kt, kh, kw]`.

use burn::module::{Initializer, Module, Param};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use sf_device::kernels::{conv2d, conv3d};

use super::layout::Layout;

/// Frames of history a cached convolution keeps (`CACHE_T` upstream).
pub const CACHE_FRAMES: usize = 2;

/// How a 3-D convolution is computed, which also fixes the activations' [`Layout`]. All give
/// the same numbers (to f32 rounding); which is fastest depends on the backend (see
/// `docs/decoders.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvStrategy {
    /// Pick per device ([`resolve`](ConvStrategy::resolve)): [`Conv3d`](ConvStrategy::Conv3d)
    /// on the CPU (Flex), where it was measured fastest, and
    /// [`Conv2dStacked`](ConvStrategy::Conv2dStacked) on every other device (burn's `conv3d`
    /// is reported slow on GPUs).
    #[default]
    Auto,
    /// burn's `conv3d`, on channel-major activations `[B, C, T, H, W]` end to end.
    Conv3d,
    /// One `conv2d` per temporal tap, summed, on time-major activations `[B, T, C, H, W]`.
    Conv2dSum,
    /// The `kt` frames of each output frame stacked along channels, then one `conv2d` with the
    /// weight reshaped to `[out, kt·in, kh, kw]`, on time-major activations.
    Conv2dStacked,
}

impl ConvStrategy {
    /// The concrete strategy for `device`: `Conv3d` on the CPU, where burn-flex's `conv3d` was
    /// measured fastest (`docs/decoders.md`), `Conv2dStacked` elsewhere (burn's `conv3d` on GPUs
    /// is reported slow). Other strategies are returned as they are.
    pub fn resolve(self, device: &Device) -> ConvStrategy {
        match self {
            ConvStrategy::Auto if *device == Device::flex() => ConvStrategy::Conv3d,
            ConvStrategy::Auto => ConvStrategy::Conv2dStacked,
            other => other,
        }
    }

    /// The activation layout of the strategy (resolved for `device`): channel-major for
    /// `Conv3d`, time-major for the `conv2d` lowerings.
    pub fn layout(self, device: &Device) -> Layout {
        match self.resolve(device) {
            ConvStrategy::Conv3d | ConvStrategy::Auto => Layout::ChannelMajor,
            ConvStrategy::Conv2dSum | ConvStrategy::Conv2dStacked => Layout::TimeMajor,
        }
    }
}

/// A `Conv3d` whose temporal padding is applied only in front (`CausalConv3d` upstream).
///
/// With a cache of `c` past frames the cache is prepended and the zero padding reduced by `c`,
/// so a video convolved chunk by chunk gives exactly the frames of convolving it at once.
#[derive(Module, Debug)]
pub struct CausalConv3d {
    /// `[out, in, kt, kh, kw]`.
    pub weight: Param<Tensor<5>>,
    /// `[out]`.
    pub bias: Param<Tensor<1>>,
    /// Frames of zero padding in front (`2 · padding_t`).
    pub time_padding: usize,
    /// Spatial padding `(h, w)` on both sides.
    pub spatial_padding: [usize; 2],
    /// Temporal stride (2 for the encoder's temporal downsampling, else 1).
    pub time_stride: usize,
}

impl CausalConv3d {
    /// A convolution `c_in → c_out` with `kernel` `(kt, kh, kw)`, `padding` `(pt, ph, pw)` and a
    /// temporal stride; weights are random (uniform ±1/√fan_in) until a checkpoint is loaded.
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: [usize; 3],
        padding: [usize; 3],
        time_stride: usize,
        device: &Device,
    ) -> Self {
        let fan_in = c_in * kernel.iter().product::<usize>();
        let bound = 1.0 / (fan_in as f64).sqrt();
        let uniform = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        CausalConv3d {
            weight: uniform.init_with(
                [c_out, c_in, kernel[0], kernel[1], kernel[2]],
                None,
                None,
                device,
            ),
            bias: uniform.init_with([c_out], None, None, device),
            time_padding: 2 * padding[0],
            spatial_padding: [padding[1], padding[2]],
            time_stride,
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.lazy_shape().dims::<5>()[0]
    }

    /// Convolves `x` with up to `time_padding` frames of `history` in front (zeros for the
    /// rest). `x`, `history` and the result are in the [`Layout`] of `strategy` resolved for the
    /// weights' device ([`ConvStrategy::layout`]).
    pub fn forward(
        &self,
        x: Tensor<5>,
        history: Option<Tensor<5>>,
        strategy: ConvStrategy,
    ) -> Tensor<5> {
        let device = self.weight.lazy_device();
        let strategy = strategy.resolve(&device);
        let layout = strategy.layout(&device);
        let pad = self.time_padding;
        let history = history
            .filter(|_| pad > 0)
            .map(|h| layout.last_frames(None, h, pad));
        let have = history.as_ref().map_or(0, |h| layout.frames(h));
        let mut parts = Vec::with_capacity(3);
        if have < pad {
            let [b, c, _, h, w] = layout.dims(&x);
            parts.push(Tensor::zeros(
                layout.shape([b, c, pad - have, h, w]),
                (&x.device(), x.dtype()),
            ));
        }
        parts.extend(history);
        let x = if parts.is_empty() {
            x
        } else {
            parts.push(x);
            layout.cat_time(parts)
        };
        self.valid_time(x, strategy)
    }

    /// The convolution without temporal padding (spatial padding applied), in the layout of
    /// the (resolved) `strategy`.
    fn valid_time(&self, x: Tensor<5>, strategy: ConvStrategy) -> Tensor<5> {
        let [o, c, kt, kh, kw] = self.weight.lazy_shape().dims::<5>();
        let s = self.time_stride;
        let [ph, pw] = self.spatial_padding;
        let weight = self.weight.val().cast(x.dtype());
        let bias = self.bias.val().cast(x.dtype());
        if matches!(strategy, ConvStrategy::Conv3d | ConvStrategy::Auto) {
            // Channel-major in and out: burn's layout.
            let opts3 = ConvOptions::new([s, 1, 1], [0, ph, pw], [1, 1, 1], 1);
            return conv3d(x, weight, Some(bias), opts3);
        }
        let [b, t, _, h, w] = x.dims();
        let t_out = (t.saturating_sub(kt)) / s + 1;
        let opts2 = ConvOptions::new([1, 1], [ph, pw], [1, 1], 1);
        let frames = |tensor: Tensor<4>| {
            let [_, o, h2, w2] = tensor.dims();
            tensor.reshape([b, t_out, o, h2, w2])
        };
        if kt == 1 && s == 1 {
            let x = x.reshape([b * t, c, h, w]);
            let w2 = weight.reshape([o, c, kh, kw]);
            return frames(conv2d(x, w2, Some(bias), opts2));
        }
        if strategy == ConvStrategy::Conv2dSum {
            let mut acc: Option<Tensor<4>> = None;
            for k in 0..kt {
                let taps = strided_frames(x.clone(), k, s, t_out).reshape([b * t_out, c, h, w]);
                let wk = weight.clone().narrow(2, k, 1).reshape([o, c, kh, kw]);
                let bk = (k == 0).then(|| bias.clone());
                let y = conv2d(taps, wk, bk, opts2.clone());
                acc = Some(match acc {
                    Some(a) => a + y,
                    None => y,
                });
            }
            return frames(acc.expect("kernel has at least one temporal tap"));
        }
        let stacked = if t_out == 1 {
            x.narrow(1, 0, kt).reshape([b, kt * c, h, w])
        } else {
            let windows = (0..t_out)
                .map(|i| x.clone().narrow(1, i * s, kt).reshape([b, kt * c, h, w]))
                .collect();
            Tensor::stack::<5>(windows, 1).reshape([b * t_out, kt * c, h, w])
        };
        let w2 = weight.permute([0, 2, 1, 3, 4]).reshape([o, kt * c, kh, kw]);
        frames(conv2d(stacked, w2, Some(bias), opts2))
    }
}

/// Frames `k, k + s, ..., k + s (n − 1)` of time-major `x`.
fn strided_frames(x: Tensor<5>, k: usize, s: usize, n: usize) -> Tensor<5> {
    if s == 1 {
        return x.narrow(1, k, n);
    }
    let frames = (0..n).map(|i| x.clone().narrow(1, k + i * s, 1)).collect();
    Tensor::cat(frames, 1)
}

/// One slot of the feature cache.
// A few dozen slots per decoder: the size difference between variants is negligible.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default)]
pub enum CacheSlot {
    /// Not used yet in this video.
    #[default]
    Empty,
    /// The temporal upsampler skipped its first frame (`"Rep"` upstream): its history is empty.
    Rep,
    /// The last (up to [`CACHE_FRAMES`]) input frames of the slot's convolution, in the
    /// cache's [`Layout`].
    Frames(Tensor<5>),
}

/// The causal feature cache of one encoder or decoder: one slot per cached convolution, in
/// execution order, plus how to compute convolutions and so the activations' [`Layout`].
#[derive(Clone, Debug)]
pub struct FeatureCache {
    slots: Vec<CacheSlot>,
    next: usize,
    strategy: ConvStrategy,
    layout: Layout,
    /// The demo's variant (`ZERO_VAE_CACHE`): every slot starts as zero frames, so the temporal
    /// upsamplers never skip a frame (the first latent frame also gives 4 frames).
    pub zero_history: bool,
}

impl FeatureCache {
    /// An empty cache for convolutions computed with `strategy` (resolved for `device`).
    pub fn new(strategy: ConvStrategy, zero_history: bool, device: &Device) -> Self {
        let strategy = strategy.resolve(device);
        FeatureCache {
            slots: Vec::new(),
            next: 0,
            strategy,
            layout: strategy.layout(device),
            zero_history,
        }
    }

    /// How 3-D convolutions are computed (never [`ConvStrategy::Auto`]).
    pub fn strategy(&self) -> ConvStrategy {
        self.strategy
    }

    /// The layout of the activations (and of the cached frames).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Forgets every slot (a new video).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.next = 0;
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, CacheSlot::Empty))
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Starts one pass of the network: slots are taken again from the first.
    pub fn begin_pass(&mut self) {
        self.next = 0;
    }

    /// Takes the next slot (in execution order), leaving `Empty` in its place.
    pub(crate) fn take(&mut self) -> (usize, CacheSlot) {
        let idx = self.next;
        self.next += 1;
        if idx == self.slots.len() {
            self.slots.push(CacheSlot::Empty);
        }
        (idx, std::mem::take(&mut self.slots[idx]))
    }

    /// Stores a slot taken with [`take`](Self::take).
    pub(crate) fn put(&mut self, idx: usize, slot: CacheSlot) {
        self.slots[idx] = slot;
    }

    /// Runs `conv` on `x` without history (a 1×1×1 or a stride-2 convolution).
    pub(crate) fn conv_uncached(&self, conv: &CausalConv3d, x: Tensor<5>) -> Tensor<5> {
        conv.forward(x, None, self.strategy)
    }

    /// Runs `conv` on `x` with the next slot as history and stores the new history: the last
    /// [`CACHE_FRAMES`] frames of (old history, `x`).
    pub(crate) fn conv(&mut self, conv: &CausalConv3d, x: Tensor<5>) -> Tensor<5> {
        let (idx, slot) = self.take();
        self.conv_in_slot(idx, slot, conv, x)
    }

    /// [`conv`](Self::conv) with a slot already taken.
    pub(crate) fn conv_in_slot(
        &mut self,
        idx: usize,
        slot: CacheSlot,
        conv: &CausalConv3d,
        x: Tensor<5>,
    ) -> Tensor<5> {
        let history = match slot {
            CacheSlot::Frames(h) => Some(h),
            CacheSlot::Empty | CacheSlot::Rep => None,
        };
        let next = self
            .layout
            .last_frames(history.clone(), x.clone(), CACHE_FRAMES);
        let out = conv.forward(x, history, self.strategy);
        self.put(idx, CacheSlot::Frames(next));
        out
    }
}
