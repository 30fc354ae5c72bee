#!/usr/bin/env python3
"""The PyTorch side of `examples/rollout_bench.rs`: the same Self-Forcing rollout (chunks of 3
latent frames, 4 denoising steps at t = 1000, 937.5, 833.3, 625 and a cache refresh at t = 0,
a global KV cache of every frame so far) with the official Wan2.1 DiT code and the upstream
TAEHV decoder, random weights, on one device and dtype. Prints the same `RESULT {json}` line.

Reference code, read from the pinned wheels by `benches/compare_pytorch.py` (its `--cache`
folder, or `SF_TORCH_SOURCES` when the extracted sources were packed by `scripts/gpu-bench.sh`):
  * wan22==2.2.11 wan/modules/model.py: WanModel, blocks, RoPE, heads, unchanged. Its
    flash_attention is replaced by torch SDPA (compare_pytorch's stand-in). Self-Forcing's
    causal inference model is not on PyPI, so the KV cache is OUR re-statement of it: each
    block's self-attention writes the chunk's roped keys/values at the chunk's rows of a
    preallocated cache and attends to every row up to the chunk's end; RoPE's time axis starts
    at the chunk's first frame (the rest of the official forward is untouched).
  * fastvideo==0.2.1 taehv.py (upstream TAEHV): each chunk goes through `decode_video`
    (the same work per chunk as a streaming decode; upstream keeps no memory across calls).
bf16 casts the models to bf16 and runs under autocast, as Self-Forcing's inference does.

    python benches/rollout_torch.py --device cuda --dtype bf16
    python benches/rollout_torch.py --device cpu --layers 1 --height 64 --width 64 --latent-frames 6
"""
import argparse, json, os, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_pytorch as cp  # noqa: E402  (the reference-code loaders)

TIMESTEPS = [1000.0, 937.5, 833.3333, 625.0]   # [1000, 750, 500, 250] warped with shift 5


def init_(module, gen):
    """Fan-in-scaled normal weights, generated on the module's device."""
    import torch
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=gen, device=p.device, dtype=torch.float32)
            if p.ndim == 1 and "norm" in name:
                p.copy_(1.0 + 0.1 * r)
            elif "modulation" in name:
                p.copy_(r / p.shape[-1] ** 0.5)
            elif p.ndim >= 2:
                p.copy_(r / p[0].numel() ** 0.5)
            else:
                p.copy_(0.05 * r)


def f32_region(fn, device_type):
    import torch

    def run(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return fn(*args, **kwargs)
    return run


class Cache:
    """Per-block K/V buffers and the chunk being written."""
    def __init__(self):
        self.start_frame, self.frame_tokens, self.freqs = 0, 0, {}


def patch_self_attention(wm, cache):
    """Makes WanSelfAttention.forward attend to the cache (see the module doc)."""
    import torch

    def shifted(freqs, f0):
        if f0 not in cache.freqs:
            c = freqs.shape[1]
            ct = c - 2 * (c // 3)
            out = freqs.clone()
            out[: freqs.shape[0] - f0, :ct] = freqs[f0:, :ct]
            cache.freqs[f0] = out
        return cache.freqs[f0]

    def forward(self, x, seq_lens, grid_sizes, freqs):
        b, s, n, d = *x.shape[:2], self.num_heads, self.head_dim
        q = self.norm_q(self.q(x)).view(b, s, n, d)
        k = self.norm_k(self.k(x)).view(b, s, n, d)
        v = self.v(x).view(b, s, n, d)
        f = shifted(freqs, cache.start_frame)
        q = wm.rope_apply(q, grid_sizes, f).to(v.dtype)
        k = wm.rope_apply(k, grid_sizes, f).to(v.dtype)
        lo = cache.start_frame * cache.frame_tokens
        self.kv_k[:, lo:lo + s] = k
        self.kv_v[:, lo:lo + s] = v
        x = wm.flash_attention(q=q, k=self.kv_k[:, :lo + s], v=self.kv_v[:, :lo + s])
        return self.o(x.flatten(2))

    wm.WanSelfAttention.forward = forward


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    ap.add_argument("--latent-frames", type=int, default=21)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--decoder", default="taehv", choices=["taehv", "none"])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--cache", default=os.environ.get("SF_TORCH_SOURCES") or
                    os.path.join(os.path.expanduser("~"), ".cache", "sf-compare"))
    a = ap.parse_args()
    if a.latent_frames % 3:
        raise SystemExit("error: --latent-frames must be a multiple of 3 (chunks of 3 latent frames)")
    import torch
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: torch has no CUDA device here (torch.cuda.is_available() is False)")
    dev = torch.device(a.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    cp.ensure_source("wan22", a.cache)
    wm = cp.load_wan(a.cache, "model")
    cache = Cache()
    patch_self_attention(wm, cache)
    gen = torch.Generator(device=dev).manual_seed(1)
    started = time.perf_counter()
    with torch.device(dev):
        dit = wm.WanModel(num_layers=a.layers, **cp.DIT)
    init_(dit, gen)
    dit = dit.to(dtype).eval()
    # The official forward computes the time embedding in f32 (its autocast block, written for
    # CUDA, asserts it): keep those two layers f32 and outside autocast on every device.
    for m in (dit.time_embedding, dit.time_projection):
        m.float()
        m.forward = f32_region(m.forward, dev.type)
    # Norm gains stay f32 as well (the norms compute in f32; CUDA's autocast runs them in f32).
    for m in dit.modules():
        if "Norm" in type(m).__name__:
            m.float()
    taehv = None
    if a.decoder == "taehv":
        cp.ensure_source("fastvideo", a.cache)
        taehv = cp.load_taehv(a.cache).TAEHV(checkpoint_path=None).to(dev, dtype).eval()
    lat_h, lat_w = a.height // 8, a.width // 8
    cache.frame_tokens = (lat_h // 2) * (lat_w // 2)
    heads, hd = cp.DIT["num_heads"], cp.DIT["dim"] // cp.DIT["num_heads"]
    for blk in dit.blocks:
        shape = (1, a.latent_frames * cache.frame_tokens, heads, hd)
        blk.self_attn.kv_k = torch.zeros(shape, device=dev, dtype=dtype)
        blk.self_attn.kv_v = torch.zeros(shape, device=dev, dtype=dtype)
    context = torch.randn(cp.DIT["text_len"], cp.DIT["text_dim"], generator=gen, device=dev).to(dtype)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    sync()
    print(f"torch {torch.__version__} on {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), "
          f"{a.dtype}, {a.layers} layers; weights ready in {time.perf_counter() - started:.1f} s", flush=True)

    def call(x, t):
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32):
            return dit([x], t=torch.tensor([t], device=dev), context=[context],
                       seq_len=x.shape[1] * cache.frame_tokens)[0]

    runs = []
    for run in range(a.runs):
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        noise = torch.randn(16, a.latent_frames, lat_h, lat_w, generator=gen, device=dev).to(dtype)
        r = dict(denoise=0.0, decode=0.0, first=None, frames=0)
        t0 = time.perf_counter()
        with torch.no_grad():
            for start in range(0, a.latent_frames, 3):
                cache.start_frame = start
                ts = time.perf_counter()
                x = noise[:, start:start + 3]
                for i, t in enumerate(TIMESTEPS):
                    flow = call(x, t).to(dtype)
                    x0 = x - (t / 1000.0) * flow
                    if i + 1 < len(TIMESTEPS):
                        s = TIMESTEPS[i + 1] / 1000.0
                        eps = torch.randn(x0.shape, generator=gen, device=dev).to(dtype)
                        x = (1 - s) * x0 + s * eps
                call(x0, 0.0)   # cache refresh with the clean chunk
                sync()
                r["denoise"] += time.perf_counter() - ts
                td = time.perf_counter()
                n = 4 * 3 - 3 if start == 0 else 4 * 3
                if taehv is not None:
                    out = taehv.decode_video(x0.permute(1, 0, 2, 3).unsqueeze(0), parallel=True,
                                             show_progress_bar=False)
                    out.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
                else:
                    x0.float().cpu()
                sync()
                r["decode"] += time.perf_counter() - td
                r["frames"] += n
                if r["first"] is None:
                    r["first"] = time.perf_counter() - t0
        r["total"] = time.perf_counter() - t0
        r["peak"] = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
        r["reserved"] = torch.cuda.max_memory_reserved(dev) if dev.type == "cuda" else None
        print(f"run {run + 1}: {r['frames']} frames, denoise {r['denoise']:.2f} s "
              f"({r['frames'] / r['denoise']:.2f} FPS), decode {r['decode']:.2f} s, end to end {r['total']:.2f} s "
              f"({r['frames'] / r['total']:.2f} FPS), first chunk {r['first']:.2f} s", flush=True)
        runs.append(r)
    col = lambda k: [r[k] for r in runs]
    print("RESULT " + json.dumps(dict(
        backend="torch-" + dev.type, dtype=a.dtype, layers=a.layers, latent_frames=a.latent_frames,
        height=a.height, width=a.width, decoder=a.decoder, torch=torch.__version__, seconds=col("total"),
        frames=col("frames"), denoise_seconds=col("denoise"), decode_seconds=col("decode"),
        first_chunk_seconds=col("first"), denoise_fps=[r["frames"] / r["denoise"] for r in runs],
        end_to_end_fps=[r["frames"] / r["total"] for r in runs], device_peak_in_use_bytes=col("peak"),
        device_peak_reserved_bytes=col("reserved"))))


if __name__ == "__main__":
    main()
