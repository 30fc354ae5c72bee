//! `CausalConv3d` (front-only temporal padding), its feature cache and the ways to compute it.
//!
//! Activations are kept time-major, `[B, T, C, H, W]`, so a frame's channels are contiguous and a
//! 3-D convolution can be computed as 2-D convolutions over stacked frames (see
//! [`ConvStrategy`]). Weights keep PyTorch's layout `[out, in, kt, kh, kw]`.

use burn::module::{Initializer, Module, Param};
use burn::tensor::module::{conv2d, conv3d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

/// Frames of history a cached convolution keeps (`CACHE_T` upstream).
pub const CACHE_FRAMES: usize = 2;

/// How a 3-D convolution is computed. All give the same numbers (to f32 rounding); which is
/// fastest depends on the backend (see `docs/wan_vae.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvStrategy {
    /// Pick per device: [`Conv2dStacked`](ConvStrategy::Conv2dStacked) everywhere (measured
    /// fastest on Flex, and burn's conv3d is reported slow on wgpu).
    #[default]
    Auto,
    /// burn's `conv3d` (permutes to channel-major and back).
    Conv3d,
    /// One `conv2d` per temporal tap, summed.
    Conv2dSum,
    /// The `kt` frames of each output frame stacked along channels, then one `conv2d` with the
    /// weight reshaped to `[out, kt·in, kh, kw]`.
    Conv2dStacked,
}

impl ConvStrategy {
    /// The concrete strategy for `device`: `Conv3d` on the CPU, where burn-flex's `conv3d` was
    /// measured fastest (`docs/decoders.md`), `Conv2dStacked` elsewhere (burn's `conv3d` on wgpu
    /// is reported slow).
    pub fn resolve(self, device: &Device) -> ConvStrategy {
        match self {
            ConvStrategy::Auto if *device == Device::flex() => ConvStrategy::Conv3d,
            ConvStrategy::Auto => ConvStrategy::Conv2dStacked,
            other => other,
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

    /// Convolves `x` `[B, T, C, H, W]` with up to `time_padding` frames of `history` in front
    /// (zeros for the rest). Returns `[B, T', O, H', W']`.
    pub fn forward(
        &self,
        x: Tensor<5>,
        history: Option<Tensor<5>>,
        strategy: ConvStrategy,
    ) -> Tensor<5> {
        let pad = self.time_padding;
        let mut parts = Vec::with_capacity(3);
        let mut have = 0;
        let history = history.filter(|_| pad > 0).map(|h| {
            let t = h.dims()[1];
            if t > pad {
                h.narrow(1, t - pad, pad)
            } else {
                h
            }
        });
        if let Some(h) = &history {
            have = h.dims()[1];
        }
        if have < pad {
            let [b, _, c, h, w] = x.dims();
            parts.push(Tensor::zeros(
                [b, pad - have, c, h, w],
                (&x.device(), x.dtype()),
            ));
        }
        parts.extend(history);
        let x = if parts.is_empty() {
            x
        } else {
            parts.push(x);
            Tensor::cat(parts, 1)
        };
        self.valid_time(x, strategy.resolve(&self.weight.lazy_device()))
    }

    /// The convolution without temporal padding (spatial padding applied).
    fn valid_time(&self, x: Tensor<5>, strategy: ConvStrategy) -> Tensor<5> {
        let [b, t, c, h, w] = x.dims();
        let [o, _, kt, kh, kw] = self.weight.lazy_shape().dims::<5>();
        let s = self.time_stride;
        let t_out = (t.saturating_sub(kt)) / s + 1;
        let [ph, pw] = self.spatial_padding;
        let weight = self.weight.val().cast(x.dtype());
        let bias = self.bias.val().cast(x.dtype());
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
        match strategy {
            ConvStrategy::Conv3d | ConvStrategy::Auto => {
                let opts3 = ConvOptions::new([s, 1, 1], [0, ph, pw], [1, 1, 1], 1);
                let out = conv3d(x.permute([0, 2, 1, 3, 4]), weight, Some(bias), opts3);
                out.permute([0, 2, 1, 3, 4])
            }
            ConvStrategy::Conv2dSum => {
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
                frames(acc.expect("kernel has at least one temporal tap"))
            }
            ConvStrategy::Conv2dStacked => {
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
    }
}

/// Frames `k, k + s, ..., k + s (n − 1)` of `x` along axis 1.
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
    /// The last (up to [`CACHE_FRAMES`]) input frames of the slot's convolution.
    Frames(Tensor<5>),
}

/// The causal feature cache of one encoder or decoder: one slot per cached convolution, in
/// execution order, plus how to compute convolutions.
#[derive(Clone, Debug, Default)]
pub struct FeatureCache {
    slots: Vec<CacheSlot>,
    next: usize,
    /// How 3-D convolutions are computed.
    pub strategy: ConvStrategy,
    /// The demo's variant (`ZERO_VAE_CACHE`): every slot starts as zero frames, so the temporal
    /// upsamplers never skip a frame (the first latent frame also gives 4 frames).
    pub zero_history: bool,
}

impl FeatureCache {
    /// An empty cache.
    pub fn new(strategy: ConvStrategy, zero_history: bool) -> Self {
        FeatureCache {
            slots: Vec::new(),
            next: 0,
            strategy,
            zero_history,
        }
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
        let next = last_frames(history.clone(), x.clone(), CACHE_FRAMES);
        let out = conv.forward(x, history, self.strategy);
        self.put(idx, CacheSlot::Frames(next));
        out
    }
}

/// The last `n` frames of `history` followed by `x` (fewer if there are fewer).
pub(crate) fn last_frames(history: Option<Tensor<5>>, x: Tensor<5>, n: usize) -> Tensor<5> {
    let t = x.dims()[1];
    if t >= n {
        return x.narrow(1, t - n, n);
    }
    match history {
        Some(h) => {
            let th = h.dims()[1];
            let keep = (n - t).min(th);
            Tensor::cat(vec![h.narrow(1, th - keep, keep), x], 1)
        }
        None => x,
    }
}
