#!/usr/bin/env bash
# One prepared GPU benchmark for a machine without network or Rust: build and pack it here, copy
# the archive (< 64 MiB), unpack and run it there.
#
#   scripts/gpu-bench.sh pack [ARCHIVE]    build rollout_bench with CUDA + wgpu, pack it with
#                                          libdevice and the PyTorch reference (default archive:
#                                          target/sf-gpu-bench.tar.xz)
#   scripts/gpu-bench.sh detect            what this machine has (GPU, libcuda, Vulkan, torch)
#   scripts/gpu-bench.sh run [RESULTS]     detect, then run every backend present (default
#                                          results folder: ./results)
#
# On the GPU machine:
#   tar -xJf sf-gpu-bench.tar.xz     (or: python3 -m tarfile -e sf-gpu-bench.tar.xz .)
#   sf-gpu-bench/run.sh [RESULTS]    (run.sh is this script; it runs `run` by default)
#
# `run` benchmarks the 1.3B DiT at 480x832 with random weights, 21 latent frames (7 chunks x 4
# steps + a cache refresh each) decoded by TAEHV, on cuda (f32, bf16) when libcuda.so.1 is
# there and on wgpu/Vulkan (f32, f16) when an NVIDIA Vulkan ICD is, and the same rollout with
# the official PyTorch code (f32, bf16) when python3 has torch with CUDA. Everything missing
# is named in the report; nothing is skipped silently. Each run's log, `results.jsonl` (one
# RESULT line per run, plus the GPU memory nvidia-smi saw) and `summary.md` go to RESULTS.
#
# Environment (pack):
#   SF_BENCH_BIN        a rollout_bench binary to pack instead of building one
#   SF_LIBDEVICE        libdevice.10.bc to pack (default: $CUDA_PATH/nvvm/libdevice/, else the
#                       Python package nvidia-cuda-nvcc-cu12 fetched into the cache);
#                       `none` packs without it (then cuda kernels that use exp/tanh fail)
#   SF_TORCH_SOURCES    folder holding the extracted reference code (benches/compare_pytorch.py's
#                       cache, default ~/.cache/sf-compare, fetched there when missing);
#                       `none` packs without the PyTorch side
#   SF_BENCH_CACHE      cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/self-forcing/gpu-bench)
#   SF_BENCH_XZ         xz preset (default 9e; 0 is fast, for tests)
# Environment (run):
#   SF_BENCH_BACKENDS   backends to run instead of the detected ones (e.g. "cuda", "cpu")
#   SF_BENCH_ARGS       extra rollout_bench / rollout_torch.py flags (e.g. "--layers 1")
#   SF_BENCH_TIMEOUT    seconds per run (default 300)
#   SF_BENCH_PYTHON     the Python with torch (default python3)
#   SF_BENCH_SYSROOT    prefix for the library and ICD searches (tests)
set -euo pipefail

LIMIT=$((64 * 1024 * 1024))
self="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

fail() {
    echo "gpu-bench: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------- pack
pack() {
    local repo archive cache bin libdevice sources
    repo="$(cd "$(dirname "$self")/.." && pwd)"
    [ -f "$repo/Cargo.toml" ] && [ -f "$repo/examples/rollout_bench.rs" ] ||
        fail "pack runs from the project checkout (scripts/gpu-bench.sh pack)"
    archive="${1:-$repo/target/sf-gpu-bench.tar.xz}"
    case "$archive" in /*) ;; *) archive="$PWD/$archive" ;; esac
    [ -e "$archive" ] && fail "$archive exists; remove it or name another archive"
    command -v xz >/dev/null || fail "xz is not installed (apt install xz-utils)"
    cache="${SF_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/self-forcing/gpu-bench}"
    mkdir -p "$cache"

    bin="${SF_BENCH_BIN:-}"
    if [ -z "$bin" ]; then
        "$repo/scripts/build-cuda.sh" --example rollout_bench
        bin="${CARGO_TARGET_DIR:-$repo/target}/release/examples/rollout_bench"
    fi
    [ -x "$bin" ] || fail "no rollout_bench binary at $bin"

    libdevice="${SF_LIBDEVICE:-}"
    if [ -z "$libdevice" ]; then
        libdevice="$(find_libdevice "$cache")" || fail "no libdevice.10.bc: install the CUDA \
toolkit (set CUDA_PATH), or let pip fetch nvidia-cuda-nvcc-cu12, or set SF_LIBDEVICE=FILE \
(SF_LIBDEVICE=none packs without it)"
    fi

    sources="${SF_TORCH_SOURCES:-$HOME/.cache/sf-compare}"
    STAGE="$(mktemp -d)"
    trap 'rm -rf "$STAGE"' EXIT
    local stage="$STAGE"
    local root="$stage/sf-gpu-bench"
    mkdir -p "$root/bin" "$root/torch"
    cp "$bin" "$root/bin/rollout_bench"
    # Debug symbols are a quarter of the binary; the benchmark does not need them.
    command -v strip >/dev/null && strip "$root/bin/rollout_bench"
    cp "$self" "$root/run.sh"
    chmod +x "$root/run.sh" "$root/bin/rollout_bench"
    {
        echo "commit $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
        echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sm)"
        echo "binary rollout_bench $(sha256sum "$bin" | cut -d' ' -f1) $("$bin" --version)"
    } >"$root/MANIFEST"
    # The Vulkan loader, for a GPU machine that has the driver's ICD but no loader.
    local loader
    if loader="$(find_lib libvulkan.so.1 "")"; then
        mkdir -p "$root/lib"
        cp -L "$loader" "$root/lib/libvulkan.so.1"
        echo "vulkan-loader $loader" >>"$root/MANIFEST"
    else
        echo "vulkan-loader not packed (no libvulkan.so.1 here)" >>"$root/MANIFEST"
    fi
    if [ "$libdevice" = none ]; then
        echo "libdevice not packed (SF_LIBDEVICE=none)" >>"$root/MANIFEST"
    else
        [ -f "$libdevice" ] || fail "SF_LIBDEVICE=$libdevice is not a file"
        mkdir -p "$root/cuda/nvvm/libdevice"
        cp "$libdevice" "$root/cuda/nvvm/libdevice/libdevice.10.bc"
        echo "libdevice $libdevice" >>"$root/MANIFEST"
    fi
    if [ "$sources" = none ]; then
        echo "torch not packed (SF_TORCH_SOURCES=none)" >>"$root/MANIFEST"
    else
        python3 - "$repo/benches" "$sources" <<'EOF' || fail "the PyTorch reference code is not \
in $sources and could not be fetched (pip download wan22==2.2.11 fastvideo==0.2.1); set \
SF_TORCH_SOURCES=DIR, or SF_TORCH_SOURCES=none to pack without the PyTorch side"
import sys
sys.path.insert(0, sys.argv[1])
import compare_pytorch as cp
cp.ensure_source("wan22", sys.argv[2])
cp.ensure_source("fastvideo", sys.argv[2])
EOF
        cp "$repo/benches/rollout_torch.py" "$repo/benches/compare_pytorch.py" "$root/torch/"
        for f in wan22-2.2.11/wan/modules/attention.py wan22-2.2.11/wan/modules/model.py \
            wan22-2.2.11/wan/modules/t5.py wan22-2.2.11/wan/modules/vae2_1.py \
            fastvideo-0.2.1/fastvideo/third_party/taehv/taehv.py; do
            mkdir -p "$root/torch/sources/$(dirname "$f")"
            cp "$sources/$f" "$root/torch/sources/$f"
        done
        echo "torch reference code from $sources (wan22 2.2.11, fastvideo 0.2.1)" >>"$root/MANIFEST"
    fi
    tar -C "$stage" -cf - sf-gpu-bench | xz -T0 "-${SF_BENCH_XZ:-9e}" >"$archive.part"
    local size
    size=$(stat -c %s "$archive.part")
    if [ "$size" -ge "$LIMIT" ]; then
        rm -f "$archive.part"
        fail "the archive is $size bytes, over the 64 MiB a GPU machine receives"
    fi
    mv "$archive.part" "$archive"
    echo "packed $archive ($size bytes, limit $LIMIT):"
    sed 's/^/  /' "$root/MANIFEST"
}

# Prints a libdevice.10.bc path: the CUDA toolkit's, else one from the pip package.
find_libdevice() {
    local cache="$1" f
    for f in "${CUDA_PATH:-/usr/local/cuda}/nvvm/libdevice/libdevice.10.bc" \
        "$cache/nvcc/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    python3 -m pip download --no-deps --only-binary=:all: nvidia-cuda-nvcc-cu12 -d "$cache/wheels" \
        >&2 || return 1
    local wheel
    wheel="$(ls "$cache"/wheels/nvidia_cuda_nvcc_cu12-*.whl 2>/dev/null | head -n1)"
    [ -n "$wheel" ] || return 1
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(
        "nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc", sys.argv[2])' "$wheel" "$cache/nvcc" >&2 ||
        return 1
    echo "$cache/nvcc/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc"
}

# ---------------------------------------------------------------------------------------- detect
# Sets HAVE_* and MISSING; prints the report.
detect() {
    local sys="${SF_BENCH_SYSROOT:-}"
    MISSING=()
    HAVE_SMI=0 HAVE_CUDA=0 HAVE_VULKAN=0 HAVE_TORCH=0
    echo "## Machine"
    echo "- $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    if command -v nvidia-smi >/dev/null 2>&1 &&
        gpus="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"; then
        HAVE_SMI=1
        echo "- nvidia-smi: $gpus"
    else
        MISSING+=("nvidia-smi (no NVIDIA driver tools; GPU memory is not sampled)")
    fi
    local libcuda=""
    libcuda="$(find_lib libcuda.so.1 "$sys")" && HAVE_CUDA=1
    if [ "$HAVE_CUDA" = 1 ]; then
        echo "- libcuda.so.1: $libcuda"
    else
        MISSING+=("libcuda.so.1 (the NVIDIA driver's CUDA library: the cuda backend cannot run)")
    fi
    local vulkan="" icds=() nvidia_icd=""
    vulkan="$(find_lib libvulkan.so.1 "$sys")" || vulkan=""
    local bundled
    bundled="$(cd "$(dirname "$self")" && pwd)/lib"
    if [ -z "$vulkan" ] && [ -f "$bundled/libvulkan.so.1" ]; then
        vulkan="$bundled/libvulkan.so.1 (bundled)"
        export LD_LIBRARY_PATH="$bundled${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    local d f
    for d in "$sys/usr/share/vulkan/icd.d" "$sys/etc/vulkan/icd.d" "$sys/usr/local/share/vulkan/icd.d" \
        "$sys/usr/local/nvidia/share/vulkan/icd.d"; do
        for f in "$d"/*.json; do
            [ -f "$f" ] || continue
            icds+=("$(basename "$f")")
            case "$(basename "$f")" in nvidia*) nvidia_icd="$f" ;; esac
        done
    done
    local listed="${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}}"
    for f in ${listed:+${listed//:/ }}; do
        [ -f "$f" ] && icds+=("$f") && grep -qi nvidia "$f" && nvidia_icd="$f"
    done
    if [ -n "$vulkan" ] && [ -n "$nvidia_icd" ]; then
        HAVE_VULKAN=1
        # The loader searches only the standard folders; name the driver's file outright.
        export VK_DRIVER_FILES="$nvidia_icd"
        echo "- Vulkan: $vulkan, NVIDIA ICD $nvidia_icd"
    elif [ -z "$vulkan" ]; then
        MISSING+=("libvulkan.so.1 (the Vulkan loader: the wgpu backend cannot run)")
    else
        MISSING+=("an NVIDIA Vulkan ICD (nvidia_icd.json; found: ${icds[*]:-none}): wgpu would not use the GPU")
    fi
    local torch py="${SF_BENCH_PYTHON:-python3}"
    if ! command -v "$py" >/dev/null 2>&1; then
        MISSING+=("$py (the PyTorch side cannot run; SF_BENCH_PYTHON names another Python)")
    elif torch="$("$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null)"; then
        case "$torch" in
            *" True "*) HAVE_TORCH=1; echo "- $py $("$py" -V 2>&1 | cut -d' ' -f2), torch ${torch/ True / with CUDA on }" ;;
            *) MISSING+=("torch with CUDA (torch ${torch%% *} has no CUDA device: the PyTorch side cannot run)") ;;
        esac
    else
        MISSING+=("torch in $py (the PyTorch side cannot run; SF_BENCH_PYTHON names another Python)")
    fi
    if [ ${#MISSING[@]} -gt 0 ]; then
        echo "## Missing"
        printf -- '- %s\n' "${MISSING[@]}"
    fi
}

# Prints the path of shared library $1 (ldconfig's cache, LD_LIBRARY_PATH, the usual folders).
find_lib() {
    local name="$1" sys="$2" d
    if [ -z "$sys" ] && command -v ldconfig >/dev/null 2>&1; then
        d="$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n { print $NF; exit }')"
        [ -n "$d" ] && { echo "$d"; return 0; }
    fi
    for d in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} "$sys/usr/lib/x86_64-linux-gnu" "$sys/usr/lib64" "$sys/usr/lib" \
        "$sys/usr/local/nvidia/lib64" "$sys/usr/lib/wsl/lib"; do
        [ -e "$d/$name" ] && { echo "$d/$name"; return 0; }
    done
    return 1
}

# ---------------------------------------------------------------------------------------- run
run() {
    local here out
    here="$(cd "$(dirname "$self")" && pwd)"
    out="${1:-$PWD/results}"
    [ -x "$here/bin/rollout_bench" ] || fail "no bin/rollout_bench beside $self: run it from an \
unpacked archive (scripts/gpu-bench.sh pack makes one)"
    [ -e "$out/results.jsonl" ] && fail "$out already holds results; name another folder"
    mkdir -p "$out"
    # Not in a pipeline: detect sets the HAVE_* flags and the loader's environment for the runs.
    detect >"$out/machine.md"
    { echo; echo "## Bundle"; sed 's/^/- /' "$here/MANIFEST"; } >>"$out/machine.md"
    cat "$out/machine.md"
    echo

    # wgpu's adapter enumeration complains once per probe without one.
    if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
        XDG_RUNTIME_DIR="$(mktemp -d)" && chmod 700 "$XDG_RUNTIME_DIR" && export XDG_RUNTIME_DIR
    fi
    local backends="${SF_BENCH_BACKENDS:-}" not_run=()
    if [ -z "$backends" ]; then
        [ "$HAVE_CUDA" = 1 ] && backends="cuda" || not_run+=("cuda: libcuda.so.1 missing")
        [ "$HAVE_VULKAN" = 1 ] && backends="$backends wgpu" ||
            not_run+=("wgpu: no Vulkan loader with an NVIDIA ICD")
    fi
    if [ -f "$here/cuda/nvvm/libdevice/libdevice.10.bc" ] &&
        [ ! -f "${CUDA_PATH:-/nonexistent}/nvvm/libdevice/libdevice.10.bc" ]; then
        export CUDA_PATH="$here/cuda"
    fi
    local b dtype
    for b in $backends; do
        case "$b" in
            cuda) dtypes="f32 bf16" ;;
            wgpu) dtypes="f32 f16" ;;   # wgpu has no bf16 (burn 0.22)
            *) dtypes="f32" ;;
        esac
        for dtype in $dtypes; do
            one "$out" "$b-$dtype" "$here/bin/rollout_bench" --device "$b" --dtype "$dtype"
        done
    done
    local torch_dir="$here/torch"
    if [ -n "${SF_BENCH_BACKENDS:-}" ]; then
        not_run+=("PyTorch: SF_BENCH_BACKENDS names the backends")
    elif [ ! -f "$torch_dir/rollout_torch.py" ]; then
        not_run+=("PyTorch: the reference code was not packed (see the bundle's MANIFEST)")
    elif [ "$HAVE_TORCH" != 1 ]; then
        not_run+=("PyTorch: no python3 with CUDA torch")
    else
        for dtype in f32 bf16; do
            SF_TORCH_SOURCES="$torch_dir/sources" one "$out" "torch-$dtype" \
                "${SF_BENCH_PYTHON:-python3}" "$torch_dir/rollout_torch.py" --device cuda --dtype "$dtype"
        done
    fi
    summary "$out" "${not_run[@]}" | tee "$out/summary.md"
}

# Runs one benchmark ($2 = label) with nvidia-smi sampling; appends its result to results.jsonl.
one() {
    local out="$1" label="$2"
    shift 2
    local log="$out/$label.log" smi="$out/$label.smi" sampler="" status=ok base=0
    echo "=== $label: $* ${SF_BENCH_ARGS:-}"
    if [ "$HAVE_SMI" = 1 ]; then
        base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n1)"
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$smi" 2>/dev/null &
        sampler=$!
    fi
    # shellcheck disable=SC2086  # SF_BENCH_ARGS is a list of flags
    timeout "${SF_BENCH_TIMEOUT:-300}" "$@" ${SF_BENCH_ARGS:-} >"$log" 2>&1 || status="failed (exit $?)"
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null || true
    case "$status" in *"exit 124"*) status="timed out after ${SF_BENCH_TIMEOUT:-300} s" ;; esac
    grep -v '^RESULT ' "$log" | tail -n 4 | sed 's/^/  /' || true
    local result peak=null
    result="$(grep "^RESULT " "$log" | tail -n1 | cut -c8-)" || result=""
    [ -n "$result" ] || { [ "$status" = ok ] && status="no RESULT line"; result="{}"; }
    if [ -s "$smi" ]; then
        peak=$(awk -v b="$base" 'BEGIN { m = 0 } { if ($1 + 0 > m) m = $1 + 0 } END { print (m - b) * 1048576 }' "$smi")
    fi
    python3 - "$label" "$status" "$peak" "$result" >>"$out/results.jsonl" <<'EOF' ||
import json, sys
label, status, peak, result = sys.argv[1:]
r = json.loads(result)
r.update(label=label, status=status, nvidia_smi_peak_bytes=None if peak == "null" else float(peak))
print(json.dumps(r))
EOF
        echo "{\"label\": \"$label\", \"status\": \"$status\"}" >>"$out/results.jsonl"
    echo "  -> $status"
}

# Prints the markdown summary of results.jsonl; the rest of the arguments are what did not run.
summary() {
    local out="$1"
    shift
    python3 - "$out/results.jsonl" "$@" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()] if len(sys.argv) > 1 else []
gib = lambda b: "–" if b in (None, 0) else f"{b / 2**30:.2f} GiB"
best = lambda r, k, f=max: f"{f(r[k]):.2f}" if r.get(k) else "–"
print("## Results (best of the runs; the first run includes kernel compilation)")
print()
print("| run | status | frames | denoise FPS | end-to-end FPS | first chunk s (run 1 / best) | GPU memory peak (nvidia-smi) | allocator peak |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    first = r.get("first_chunk_seconds") or []
    fc = f"{first[0]:.2f} / {min(first):.2f}" if first else "–"
    alloc = max([b for b in (r.get("device_peak_reserved_bytes") or []) if b] or [0])
    print(f"| {r['label']} | {r['status']} | {(r.get('frames') or ['–'])[-1]} | {best(r, 'denoise_fps')} | "
          f"{best(r, 'end_to_end_fps')} | {fc} | {gib(r.get('nvidia_smi_peak_bytes'))} | {gib(alloc)} |")
if len(sys.argv) > 2:
    print()
    print("Not run:")
    for n in sys.argv[2:]:
        print(f"- {n}")
EOF
}

case "${1:-run}" in
    pack) shift; pack "$@" ;;
    detect) detect ;;
    run) shift || true; run "$@" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//' ;;
    *)
        # In an unpacked archive `run.sh RESULTS` runs the benchmark.
        if [ -x "$(dirname "$self")/bin/rollout_bench" ] && [ "${1#-}" = "$1" ]; then
            run "$@"
        else
            fail "unknown command '$1' (pack, detect, run or --help)"
        fi
        ;;
esac
