//! The causal Wan DiT (`CausalWanModel`): full-sequence and KV-cached chunk forwards.

use burn::module::Module;
use burn::tensor::{Device, FloatDType, Tensor};

use crate::ModelError;
use crate::attention::SelfAttnCall;
use crate::block::{BlockInputs, WanAttentionBlock};
use crate::cache::{CacheConfig, KvCaches, plan_write};
use crate::config::WanConfig;
use crate::embeddings::{
    PatchEmbedding, TextEmbedding, TimeEmbedding, TimeProjection, sinusoidal_embedding,
};
use crate::head::{Head, unpatchify};
use crate::layers::f32;
use crate::rope::{Rope, RopeFreqs};

/// The Wan2.1 DiT with per-frame timesteps and an optional per-layer KV cache.
///
/// Field names mirror the checkpoint keys (`patch_embedding`, `blocks.{i}.self_attn.q`, ...);
/// the Sequential indices of the checkpoint (`text_embedding.0`, `ffn.2`, `time_projection.1`)
/// become named fields (`fc1`, `fc2`, `linear`), see [`crate::loader`].
#[derive(Module, Debug)]
pub struct WanModel {
    /// Conv3d patch embedding.
    pub patch_embedding: PatchEmbedding,
    /// Text MLP.
    pub text_embedding: TextEmbedding,
    /// Time MLP.
    pub time_embedding: TimeEmbedding,
    /// SiLU + Linear to the six modulation vectors.
    pub time_projection: TimeProjection,
    /// Transformer blocks.
    pub blocks: Vec<WanAttentionBlock>,
    /// Output head.
    pub head: Head,
    /// Hyper-parameters.
    #[module(skip)]
    config: WanConfig,
    /// RoPE angle tables.
    #[module(skip)]
    rope: Rope,
}

/// Hidden states of one forward, for parity debugging.
#[derive(Clone, Debug)]
pub struct Intermediates {
    /// Patch-embedding output `[B, dim, F, H/ph, W/pw]`.
    pub patch_embedding: Tensor<5>,
    /// Embedded context `[B, text_len, dim]` (absent when taken from a filled cache).
    pub text_embedding: Option<Tensor<3>>,
    /// Time embedding `e` per frame `[B, F, dim]`.
    pub time_embedding: Tensor<3>,
    /// Time projection `e0` per frame `[B, F, 6·dim]`.
    pub time_projection: Tensor<3>,
    /// Hidden state after each block `[B, L, dim]`.
    pub blocks: Vec<Tensor<3>>,
    /// Head output before unpatchify `[B, L, out_dim·ph·pw]`.
    pub head: Tensor<3>,
}

impl WanModel {
    /// A model for `config` on `device`, lazily initialised (load a checkpoint before use).
    pub fn new(config: &WanConfig, device: &Device) -> Result<Self, ModelError> {
        config.validate()?;
        let c = config;
        let blocks = (0..c.num_layers)
            .map(|_| {
                WanAttentionBlock::new(
                    c.dim,
                    c.ffn_dim,
                    c.num_heads,
                    c.qk_norm,
                    c.cross_attn_norm,
                    c.eps,
                    device,
                )
            })
            .collect();
        Ok(WanModel {
            patch_embedding: PatchEmbedding::new(c.in_dim, c.dim, c.patch_size, device),
            text_embedding: TextEmbedding::new(c.text_dim, c.dim, device),
            time_embedding: TimeEmbedding::new(c.freq_dim, c.dim, device),
            time_projection: TimeProjection::new(c.dim, device),
            blocks,
            head: Head::new(c.dim, c.head_out_dim(), c.eps, device),
            config: config.clone(),
            rope: Rope::new(c.head_dim())?,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &WanConfig {
        &self.config
    }

    /// The compute dtype (the dtype of the weights).
    pub fn dtype(&self) -> FloatDType {
        self.head.head.weight.val().dtype().into()
    }

    /// Tokens per latent frame of `height × width`.
    pub fn frame_seqlen(&self, height: usize, width: usize) -> usize {
        (height / self.config.patch_size[1]) * (width / self.config.patch_size[2])
    }

    /// Empty caches for every block.
    pub fn new_cache(&self, config: CacheConfig) -> KvCaches {
        KvCaches::new(config, self.config.num_layers)
    }

    /// Flow prediction for `x [B, in_dim, F, H, W]` with per-frame timesteps `t` (`B·F` host
    /// values, batch-major: `t[b·F + f]`; raw values such as 937.5) and text `context [B, ≤ text_len, text_dim]` (zero-padded to
    /// `text_len`). The first frame sits at latent frame `start_frame` (RoPE position and cache
    /// tokens). Without `cache` all frames attend to each other; with one, the frames form one
    /// chunk that writes its keys/values and attends to the cache window. Returns
    /// `[B, out_dim, F, H, W]` in f32.
    pub fn forward(
        &self,
        x: Tensor<5>,
        t: &[f32],
        context: Tensor<3>,
        cache: Option<&mut KvCaches>,
        start_frame: usize,
    ) -> Result<Tensor<5>, ModelError> {
        Ok(self.run(x, t, context, cache, start_frame, false, false)?.0)
    }

    /// [`forward`](Self::forward) through `cache` with LongLive's `sink_recache_after_switch`
    /// flag (the re-cache call after a prompt switch with `global_sink` off rewrites the sink).
    pub fn forward_cached(
        &self,
        x: Tensor<5>,
        t: &[f32],
        context: Tensor<3>,
        cache: &mut KvCaches,
        start_frame: usize,
        sink_recache: bool,
    ) -> Result<Tensor<5>, ModelError> {
        let out = self.run(x, t, context, Some(cache), start_frame, false, sink_recache)?;
        Ok(out.0)
    }

    /// [`forward`](Self::forward) that also returns the hidden states.
    pub fn forward_with_intermediates(
        &self,
        x: Tensor<5>,
        t: &[f32],
        context: Tensor<3>,
        cache: Option<&mut KvCaches>,
        start_frame: usize,
    ) -> Result<(Tensor<5>, Intermediates), ModelError> {
        let (out, inter) = self.run(x, t, context, cache, start_frame, true, false)?;
        let inter = inter.ok_or_else(|| ModelError::InvalidInput("no intermediates".into()))?;
        Ok((out, inter))
    }

    /// Block-causal forward over all frames: chunks of `frames_per_block` frames run in order
    /// through a fresh global cache, each attending to itself and the chunks before it (the
    /// training-time block mask). Equals the KV-cache inference of one pass per chunk.
    pub fn forward_block_causal(
        &self,
        x: Tensor<5>,
        t: &[f32],
        context: Tensor<3>,
        frames_per_block: usize,
    ) -> Result<Tensor<5>, ModelError> {
        if frames_per_block == 0 {
            return Err(ModelError::InvalidInput(
                "frames_per_block must be positive".into(),
            ));
        }
        self.check_inputs(&x, t, &context, None)?;
        let [batch, _, frames, height, width] = x.dims();
        let fs = self.frame_seqlen(height, width);
        let mut cache = self.new_cache(CacheConfig::global(frames, fs));
        let mut outs = Vec::new();
        let mut start = 0;
        while start < frames {
            let n = frames_per_block.min(frames - start);
            let chunk_t: Vec<f32> = (0..batch)
                .flat_map(|b| {
                    t[b * frames + start..b * frames + start + n]
                        .iter()
                        .copied()
                })
                .collect();
            let out = self.forward(
                x.clone().narrow(2, start, n),
                &chunk_t,
                context.clone(),
                Some(&mut cache),
                start,
            )?;
            outs.push(out);
            start += n;
        }
        Ok(Tensor::cat(outs, 2))
    }

    fn check_inputs(
        &self,
        x: &Tensor<5>,
        t: &[f32],
        context: &Tensor<3>,
        cache: Option<&KvCaches>,
    ) -> Result<(), ModelError> {
        let c = &self.config;
        let [b, ch, f, h, w] = x.dims();
        let bad = |m: String| Err(ModelError::InvalidInput(m));
        if ch != c.in_dim
            || f == 0
            || !h.is_multiple_of(c.patch_size[1])
            || !w.is_multiple_of(c.patch_size[2])
        {
            return bad(format!(
                "x must be [B, {}, F ≥ 1, H, W] with H, W multiples of {:?}, got {:?}",
                c.in_dim,
                &c.patch_size[1..],
                x.dims()
            ));
        }
        if h < c.patch_size[1] || w < c.patch_size[2] {
            return bad(format!("x {:?} is smaller than one patch", x.dims()));
        }
        if t.len() != b * f || t.iter().any(|v| !v.is_finite()) {
            return bad(format!(
                "t must hold {} finite timesteps ([B = {b}, F = {f}], one per frame), got {} \
                 values",
                b * f,
                t.len()
            ));
        }
        let [cb, cl, cd] = context.dims();
        if cb != b || cl > c.text_len || cd != c.text_dim {
            return bad(format!(
                "context must be [{b}, ≤ {}, {}], got {:?}",
                c.text_len,
                c.text_dim,
                context.dims()
            ));
        }
        if let Some(cache) = cache
            && cache.layers.len() != c.num_layers
        {
            return bad(format!(
                "the cache has {} layers, the model {}",
                cache.layers.len(),
                c.num_layers
            ));
        }
        Ok(())
    }

    /// RoPE of the call's queries, and of the attended cache rows when the cache ropes keys
    /// relative to itself (then the queries sit at the rows they are written to, or at the end
    /// of the window when the call evicts, as LongLive's `causal_model_infinity.py`).
    fn positions(
        &self,
        cache: Option<&KvCaches>,
        start_frame: usize,
        grid: [usize; 3],
        sink_recache: bool,
        device: &burn::tensor::Device,
    ) -> Result<(RopeFreqs, Option<RopeFreqs>), ModelError> {
        let config = cache.and_then(|c| c.config().copied().map(|cfg| (c, cfg)));
        let Some((cache, config)) = config.filter(|(_, cfg)| cfg.relative_rope) else {
            return Ok((self.rope.freqs(start_frame, grid, device)?, None));
        };
        let [frames, rows, cols] = grid;
        let fs = rows * cols;
        let (g, l) = cache.counters();
        let n = frames * fs;
        let plan = plan_write(&config, g, l, start_frame * fs, n, sink_recache)?;
        let first = if plan.evicted > 0 {
            config.capacity_tokens / fs - frames
        } else {
            (plan.local_end_after - n) / fs
        };
        let query = self.rope.freqs(first, grid, device)?;
        let keys = plan
            .attended_rows()
            .into_iter()
            .flatten()
            .map(|row| [row / fs, (row % fs) / cols, row % cols]);
        Ok((query, Some(self.rope.freqs_at(keys, device)?)))
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        x: Tensor<5>,
        t: &[f32],
        context: Tensor<3>,
        mut cache: Option<&mut KvCaches>,
        start_frame: usize,
        record: bool,
        sink_recache: bool,
    ) -> Result<(Tensor<5>, Option<Intermediates>), ModelError> {
        self.check_inputs(&x, t, &context, cache.as_deref())?;
        let c = &self.config;
        let device = x.device();
        let [b, _, frames, height, width] = x.dims();
        let grid = [frames, height / c.patch_size[1], width / c.patch_size[2]];
        let fs = grid[1] * grid[2];
        let compute = self.dtype();

        // Patch embedding: [B, L, D] tokens, residual stream in f32.
        let mut hidden = f32(self.patch_embedding.forward(x));
        let patch_embedding = record.then(|| {
            hidden
                .clone()
                .reshape([b, grid[0], grid[1], grid[2], c.dim])
                .permute([0, 4, 1, 2, 3])
        });
        let mut block_outputs = Vec::new();

        // Time embedding per frame, sinusoid in f64 from the raw values.
        let timesteps: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
        let sinusoid = sinusoidal_embedding(&timesteps, c.freq_dim, &device);
        let e = self.time_embedding.forward(sinusoid);
        let e0 = self.time_projection.forward(e.clone());
        let e = e.reshape([b, frames, c.dim]);
        let e0 = e0.reshape([b, frames, 6, c.dim]);

        // Text embedding, unless every cross-attention cache is filled.
        let need_text = cache.as_deref().is_none_or(|k| !k.cross_attn_ready());
        let text = if need_text {
            let [_, rows, _] = context.dims();
            let context = if rows < c.text_len {
                let pad = Tensor::zeros(
                    [b, c.text_len - rows, c.text_dim],
                    (&device, context.dtype()),
                );
                Tensor::cat(vec![context, pad], 1)
            } else {
                context
            };
            Some(self.text_embedding.forward(context).cast(compute))
        } else {
            None
        };

        let (rope, key_rope) =
            self.positions(cache.as_deref(), start_frame, grid, sink_recache, &device)?;
        let inputs = BlockInputs {
            e0: &e0,
            context: text.as_ref(),
            self_attn: SelfAttnCall {
                rope: &rope,
                key_rope: key_rope.as_ref(),
                current_start: start_frame * fs,
                sink_recache,
            },
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let layer = cache.as_deref_mut().map(|k| &mut k.layers[i]);
            hidden = block.forward(hidden, &inputs, layer)?;
            if record {
                block_outputs.push(hidden.clone());
            }
        }

        let out = self.head.forward(hidden, e.clone());
        let inter = patch_embedding.map(|patch_embedding| Intermediates {
            patch_embedding,
            text_embedding: text.clone(),
            time_embedding: e,
            time_projection: e0.reshape([b, frames, 6 * c.dim]),
            blocks: block_outputs,
            head: out.clone(),
        });
        let patch = [c.patch_size[1], c.patch_size[2]];
        Ok((unpatchify(out, grid, patch, c.out_dim), inter))
    }
}
