#!/usr/bin/env bash
# Cross-checks pixelrnn against the PyTorch reference for every model and data format:
# for pixelcnn, row-lstm, diag-bilstm, multiscale on each of the three bases (8 x 8 images,
# scale 4) and for 1 channel binary, 1 channel 256-way, 3 channels 256-way and the
# discretized logistic mixture (3 components) on 1 and 3 channels, makes a small random uint8 dataset, trains a tiny pixelrnn model for a
# few steps, and compares the per-sub-pixel test NLL (scripts/torch/crosscheck.py).
#
#   bash scripts/torch/install.sh      # once
#   bash scripts/torch/crosscheck.sh   # prints a table; exit 1 if any model disagrees
#
# Environment: PIXELRNN_TORCH_VENV (default .venv-torch), PIXELRNN (default
# target/release/pixelrnn, built with cargo build --release only when missing),
# CROSSCHECK_DIR (work folder, default a temporary one), H, W (image size, default 7 x 9:
# not square, so that a swapped height and width shows), TOL (default 1e-4), SCALE (of the
# randomized pass, default 1: see crosscheck.py --randomize), MODELS (the models to check,
# default all of them: pixelcnn row-lstm diag-bilstm gated-pixelcnn ms-pixelcnn ms-row-lstm
# ms-diag-bilstm).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${PIXELRNN_TORCH_VENV:-$root/.venv-torch}"
py="$venv/bin/python"
exe="${PIXELRNN:-$root/target/release/pixelrnn}"
H="${H:-7}"; W="${W:-9}"; TOL="${TOL:-1e-4}"; SCALE="${SCALE:-1}"
MODELS="${MODELS:-pixelcnn row-lstm diag-bilstm gated-pixelcnn ms-pixelcnn ms-row-lstm ms-diag-bilstm}"
[ -x "$py" ] || { echo "crosscheck.sh: no venv at $venv: run scripts/torch/install.sh" >&2; exit 2; }
if [ ! -x "$exe" ]; then
    echo "crosscheck.sh: $exe missing: cargo build --release" >&2
    (cd "$root" && cargo build --release) || { echo "crosscheck.sh: build failed" >&2; exit 2; }
fi
export PYTHONDONTWRITEBYTECODE=1

# The reference itself against the spec's statements (causality, receptive fields, 8 bits/dim).
"$py" "$root/scripts/torch/pixelrnn_ref.py" --selftest || { echo "crosscheck.sh: the reference fails its selftest" >&2; exit 1; }

work="${CROSSCHECK_DIR:-$(mktemp -d -t pixelrnn-crosscheck.XXXXXX)}"
mkdir -p "$work"

"$py" - "$work" "$H" "$W" <<'PY'
import sys, numpy as np
work, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(12345)
for c in (1, 3):
    np.save(f"{work}/data_c{c}.npy", rng.integers(0, 256, size=(40, h, w, c), dtype=np.uint8))
    # Multi-scale needs a square image cut into whole blocks: 8 x 8, scale 4 (r = 2).
    np.save(f"{work}/square_c{c}.npy", rng.integers(0, 256, size=(40, 8, 8, c), dtype=np.uint8))
    # Class-conditional (--condition class): the same kind of images with labels 0..2 (K = 3).
    for name, (hh, ww) in (("cond", (h, w)), ("cond_square", (8, 8))):
        img = lambda n: rng.integers(0, 256, size=(n, hh, ww, c), dtype=np.uint8)
        np.savez(f"{work}/{name}_c{c}.npz", train=img(36), test=img(4),
                 train_labels=np.arange(36, dtype=np.uint8) % 3,
                 test_labels=np.array([2, 0, 1, 2], dtype=np.uint8))
PY

fail=0
results="$work/results.jsonl"
: > "$results"
for model in $MODELS; do
    for fmt in c1-binary c1 c3 c1-mixture c3-mixture c1-class c3-class; do
        c="${fmt:1:1}"
        run="$work/$model-$fmt"
        extra=()
        [ "$fmt" = c1-binary ] && extra=(--binarize)
        # The discretized logistic mixture (docs/logistic-mixture.md): one channel group.
        case "$fmt" in *-mixture) extra=(--likelihood logistic-mixture --mixtures 3) ;; esac
        data="$work/data_c$c.npy"
        square="$work/square_c$c.npy"
        # Class-conditional: every class table (docs/CHECKPOINTS.md), labels from the .npz.
        case "$fmt" in *-class)
            extra=(--condition class); data="$work/cond_c$c.npz"; square="$work/cond_square_c$c.npz" ;;
        esac
        kind=(--model "$model")
        case "$model" in ms-*)
            # Both stages, every conditioning tensor (upsample, input.cond, layers.*.cond)
            data="$square"
            kind=(--model multiscale --base "${model#ms-}" --scale 4 --cond-features 3) ;;
        esac
        rm -rf "$run"
        if ! "$exe" train --data "$data" "${kind[@]}" --layers 2 --hidden 6 \
                --head 8 --steps 3 --batch 4 --eval-every 3 --out "$run" "${extra[@]}" \
                > "$run.train.log" 2>&1; then
            echo "crosscheck.sh: training $model $fmt failed:" >&2
            tail -5 "$run.train.log" >&2
            fail=1
            continue
        fi
        # the trained weights, then a copy with random weights (masked taps filled too)
        for rnd in "" "--randomize $SCALE"; do
            # shellcheck disable=SC2086
            if ! "$py" "$root/scripts/torch/crosscheck.py" "$run" --data "$data" \
                    --pixelrnn "$exe" --tol "$TOL" --json $rnd >> "$results"; then
                fail=1
            fi
        done
    done
done

"$py" - "$results" "$TOL" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| model | data | weights | NLL pixelrnn | NLL torch (f64) | max abs diff | max rel diff | masked!=0 / live==0 | |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    wts = f"random x{r['randomized']:g}" if r["randomized"] is not None else f"trained, step {r['step']}"
    counts = "-" if r["randomized"] is not None else f"{r['nonzero_masked_weights']} / {r['zero_live_weights']}"
    print(f"| {r['model']} | {r['format']} | {wts} | {r['nll_pixelrnn']:.4f} | "
          f"{r['nll_torch']:.4f} | {r['max_abs_diff']:.2e} | {r['max_rel_diff']:.2e} | {counts} | "
          f"{'ok' if r['ok'] else 'MISMATCH'} |")
print(f"(NLL in nats/image over the {rows[0]['images'] if rows else 0} test images; tolerance "
      f"{sys.argv[2]} relative per sub-pixel; masked!=0 / live==0: weights of the trained "
      f"checkpoint that are non-zero where the spec masks them / exactly zero where the spec keeps them)")
PY
echo "crosscheck.sh: work folder $work"
[ "$fail" = 0 ] || { echo "crosscheck.sh: DISAGREEMENT (see above)" >&2; exit 1; }
