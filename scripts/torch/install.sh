#!/usr/bin/env bash
# Installs the PyTorch reference's Python environment (torch, numpy, safetensors) into a
# virtual environment. Only scripts/torch/ uses it; the Rust build and tests never do.
#
#   bash scripts/torch/install.sh            # venv in .venv-torch/ (repository root)
#   PIXELRNN_TORCH_VENV=/some/dir bash scripts/torch/install.sh
#
# PyPI is the only index reachable here, so this is a plain `pip install torch`: on Linux
# x86_64 that is the CUDA build with its nvidia-* wheels (a few GB). The scripts only use the
# CPU. Idempotent: an existing venv with torch importable is left as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PIXELRNN_TORCH_VENV:-$root/.venv-torch}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, numpy, safetensors' 2>/dev/null; then
    echo "install.sh: $venv already has torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
    exit 0
fi

t0=$(date +%s)
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade --quiet pip
"$venv/bin/python" -m pip install --quiet torch numpy safetensors
t1=$(date +%s)

"$venv/bin/python" - <<'PY'
import torch, numpy, safetensors
print(f"torch {torch.__version__}, numpy {numpy.__version__}, safetensors {safetensors.__version__}, "
      f"{torch.get_num_threads()} CPU threads")
PY
echo "install.sh: $venv ready in $((t1 - t0)) s, $(du -sh "$venv" | cut -f1) on disk"
if ! git -C "$root" check-ignore -q "$venv" 2>/dev/null; then
    case "$venv" in "$root"/*)
        echo "install.sh: warning: $venv is inside the repository and not git-ignored" >&2 ;;
    esac
fi
