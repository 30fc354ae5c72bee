#!/usr/bin/env bash
# Builds the release examples with burn's CUDA backend (and wgpu) on a machine that cannot, or
# should not, download LLVM from GitHub at build time.
#
# burn's `cuda` feature needs cubecl-llvm, whose build dependency `tracel-llvm-bundler` downloads
# LLVM 23.1 unless `$XDG_DATA_HOME/tracel/tracel-llvm-<version>/` already holds an LLVM prefix
# (`bin/llvm-config`) and the marker file `.tracel-llvm-installed`. This script takes that LLVM
# from the Python package registry instead: `mlc-llvm-static` and `mlc-llvm-static-extra-targets`
# (a static LLVM 23.1 with NVPTX, ~90 MB), installed into a virtual environment in a cache
# folder, and points the bundler at it through `XDG_DATA_HOME` for this build only. Nothing
# outside the cache folder and cargo's target directory is written.
#
#   scripts/build-cuda.sh [cargo build arguments...]
#
# Environment:
#   SF_CUDA_CACHE        cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/self-forcing/cuda)
#   SF_CUDA_FEATURES     cargo features (default: cuda,wgpu)
#   SF_LLVM_WHEELS       a folder holding the two wheels, for a machine without the registry
#   CUDARC_CUDA_VERSION  the CUDA driver API the binaries ask for (default: 12080, CUDA 12.8;
#                        drivers of CUDA 12.8 or newer run it)
#   CARGO_BUILD_JOBS     parallel jobs (linking LLVM in needs ~4 GB per job)
#
# Without arguments it builds every example (`--examples`); the binaries are in
# target/release/examples. Measured: docs/gpu.md.
set -euo pipefail

LLVM_PACKAGE_VERSION=23.1.1.post0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${SF_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/self-forcing/cuda}"
features="${SF_CUDA_FEATURES:-cuda,wgpu}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-12080}"

fail() {
    echo "build-cuda: $*" >&2
    exit 1
}

# The bundler version pinned by Cargo.lock names the folder it looks for.
bundler="$(awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/"/, "", $3); print $3 }' \
    "$here/Cargo.lock")"
[ -n "$bundler" ] || fail "Cargo.lock pins no tracel-llvm-bundler (is this the workspace root?)"
case "$bundler" in
    23.1.*) ;;
    *) fail "Cargo.lock pins tracel-llvm-bundler $bundler; this script provides LLVM 23.1 only" ;;
esac

command -v python3 >/dev/null || fail "python3 is needed to install the LLVM package (apt install python3 python3-venv)"
python3 - <<'EOF' || fail "python3 3.8 or newer is needed"
import sys
sys.exit(0 if sys.version_info >= (3, 8) else 1)
EOF
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')"
if [ -n "$glibc" ] && [ "$(printf '%s\n2.28\n' "$glibc" | sort -V | head -n1)" != "2.28" ]; then
    fail "glibc $glibc is older than 2.28, which the LLVM wheels (manylinux_2_28) need"
fi

mkdir -p "$cache"
venv="$cache/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || fail "cannot create a virtual environment (apt install python3-venv)"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
if [ -n "${SF_LLVM_WHEELS:-}" ]; then
    pip+=(--no-index --find-links "$SF_LLVM_WHEELS")
fi
"${pip[@]}" "mlc-llvm-static==$LLVM_PACKAGE_VERSION" \
    "mlc-llvm-static-extra-targets==$LLVM_PACKAGE_VERSION" ||
    fail "cannot install mlc-llvm-static $LLVM_PACKAGE_VERSION (no registry? set SF_LLVM_WHEELS)"

prefix="$("$venv/bin/python" -c 'import mlc_llvm_static, os; print(os.path.join(os.path.dirname(mlc_llvm_static.__file__), "static"))')"
version="$("$prefix/bin/llvm-config" --version)" || fail "$prefix/bin/llvm-config does not run"
case "$version" in
    23.1.*) ;;
    *) fail "the LLVM package reports version $version, not 23.1" ;;
esac
[ -f "$prefix/lib/libLLVMNVPTXCodeGen.a" ] ||
    fail "the LLVM package has no NVPTX target (mlc-llvm-static-extra-targets missing?)"

# The folder the bundler checks: a prefix of links into the package, and its marker.
llvm_dir="$cache/xdg/tracel/tracel-llvm-$bundler"
mkdir -p "$llvm_dir"
for part in bin include lib share; do
    ln -sfn "$prefix/$part" "$llvm_dir/$part"
done
touch "$llvm_dir/.tracel-llvm-installed"
echo "build-cuda: LLVM $version from mlc-llvm-static, as tracel-llvm-$bundler in $llvm_dir" >&2

cd "$here"
if [ "$#" -eq 0 ]; then
    set -- --examples
fi
echo "build-cuda: cargo build --release --features $features $* (CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION)" >&2
XDG_DATA_HOME="$cache/xdg" cargo build --release --features "$features" "$@"
