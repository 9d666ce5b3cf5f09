#!/usr/bin/env bash
# Install the CUDA compiler toolchain that the kernels' build (kernels/build.rs) needs, without
# the CUDA toolkit and without root, into the git-ignored folder .cuda-toolchain/ at the
# repository root:
#
#   nvidia-cuda-nvrtc-cu12    libnvrtc (the build falls back to it when nvcc does not work)
#   nvidia-cuda-runtime-cu12  headers: cuda_runtime.h, cuda_fp16.h, cuda_bf16.h, ...
#   nvidia-cuda-nvcc-cu12     nvcc, ptxas (PTX -> SASS resource reports), nvvm/cicc
#
# Usage: scripts/install-cuda-toolchain.sh [TARGET_DIR]   (default: <repo>/.cuda-toolchain)
# Idempotent: a folder that already holds exactly these versions is left alone.
# The build looks in <repo>/.cuda-toolchain, or in $PIXELRNN_CUDA_TOOLCHAIN when that is set
# (kernels/build-support/src/toolchain.rs).
set -euo pipefail

# Pinned versions (CUDA 12.9 update 1). NVRTC 12.9 emits PTX ISA 8.8, which driver >= 575
# loads; the H200 device machine runs driver 580.
PACKAGES=(
    "nvidia-cuda-nvrtc-cu12==12.9.86"
    "nvidia-cuda-runtime-cu12==12.9.79"
    "nvidia-cuda-nvcc-cu12==12.9.86"
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:-${PIXELRNN_CUDA_TOOLCHAIN:-$repo_root/.cuda-toolchain}}"
stamp="$target/.pixelrnn-toolchain-stamp"
want="$(printf '%s\n' "${PACKAGES[@]}")"

if [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    echo "install-cuda-toolchain: $target is up to date"
else
    python="${PYTHON:-$(command -v python3 || command -v python || true)}"
    if [[ -z "$python" ]]; then
        echo "install-cuda-toolchain: python3 with pip is required" >&2
        exit 1
    fi
    echo "install-cuda-toolchain: installing ${PACKAGES[*]} into $target"
    # Remove only what an earlier run installed: the folder may be one the user named.
    rm -rf "$target/nvidia" "$target"/nvidia_cuda_*.dist-info "$stamp"
    mkdir -p "$target"
    PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
        --no-cache-dir --no-deps --no-warn-script-location --target "$target" "${PACKAGES[@]}"
    # pip does not always keep the executable bit of wheel data files.
    find "$target/nvidia" -path '*/bin/*' -type f -exec chmod +x {} +
    printf '%s\n' "$want" >"$stamp"
    # kernels/build.rs watches the stamp only once it exists: make cargo re-run it now, so that
    # a build that was CPU-only picks up the new compiler (touch changes no content).
    if [[ -f "$repo_root/kernels/build.rs" ]]; then
        touch "$repo_root/kernels/build.rs"
    fi
fi

nvidia="$target/nvidia"
echo "install-cuda-toolchain: nvrtc   $(ls "$nvidia"/cuda_nvrtc/lib/libnvrtc.so* 2>/dev/null | head -n 1)"
echo "install-cuda-toolchain: headers $nvidia/cuda_runtime/include"
if [[ -x "$nvidia/cuda_nvcc/bin/ptxas" ]]; then
    echo "install-cuda-toolchain: ptxas   $("$nvidia/cuda_nvcc/bin/ptxas" --version | sed -n 's/.*, V//p')"
fi
if [[ -x "$nvidia/cuda_nvcc/bin/nvcc" ]]; then
    echo "install-cuda-toolchain: nvcc    $("$nvidia/cuda_nvcc/bin/nvcc" --version | sed -n 's/.*, V//p')"
fi
