#!/usr/bin/env bash
# gpu-check.sh: the one prepared device check (see the GPU spec, "With a GPU: one prepared
# script, one call").
#
#   Here (has Rust, no GPU):   scripts/gpu-check.sh --prepare
#       cargo build --release, cargo test --release --no-run --test cuda (the GPU parity
#       suite, tests/cuda/main.rs), copy the pixelrnn binary and the cuda test executable
#       (stripped) into .gpu/ (ignored by git via /.gpu in .gitignore), and print the `run`
#       call to make.
#   There (GPU, no Rust):      scripts/gpu-check.sh          (the `run` call, carry [".gpu"])
#       1. .gpu/pixelrnn info (devices, kernels, ptxas resources);
#       2. the parity suite's device tests: .gpu/cuda --include-ignored ::device
#          (every kernel against its CPU twin on the GPU; the emulated twins ran in CI);
#       3. .gpu/pixelrnn bench --device cuda --recurrence all on the mnist and cifar sizes
#          (every op and kernel version, a training step per model), then the training
#          steps of the cifar-large size (L12 h128);
#       4. the same training steps in PyTorch on the same GPU (scripts/torch/bench_torch.py
#          --device cuda: the reference models of pixelrnn_ref.py, fp32 with TF32 off, cuDNN
#          convolutions; the python is $TORCH_PYTHON, else python3, else .venv-torch's, the
#          first that imports torch; skipped, and said so, when none does);
#       logs and bench*.json, torch.json under $OUT (.gpu/out/ when $OUT is unset); a short
#       table last, with pixelrnn's step time per recurrence next to PyTorch's and the ratio
#       (issue 6's target: pixelrnn >= 3x faster than PyTorch on the same GPU).
#       Each phase has its own time limit (TESTS_LIMIT, BENCH_LIMIT, LARGE_LIMIT, TORCH_LIMIT
#       seconds; together under 5 minutes, usually far less on an H200).
#       Without a GPU the device tests fail cleanly, the bench runs on the CPU at the tiny
#       size instead (a dry run of the bench path), and the PyTorch phase reports that there
#       is no CUDA device, then runs the tiny size on the CPU (a dry run of its path).
#
# Exit status of the default mode: 0 all parity tests passed and every bench row was right
# (the PyTorch comparison's state, measured, partial or not run, is in the table); 1 a test
# failed, timed out, a bench row was wrong, or the PyTorch script crashed or timed out; 2 .gpu/
# is missing or incomplete (run --prepare first); 3 no CUDA device (the device tests failed
# cleanly with 'no CUDA device', as they must on a machine without a GPU).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_DIR="$ROOT/.gpu"
TEST_NAME=cuda
MAX_BYTES=$((64 * 1024 * 1024)) # what `run` carries in all
# Seconds per phase on the device (the run call's timeout must exceed their sum, 290 s, plus
# a few seconds for `info` and the table; GPU.md: keep the script under about 5 minutes).
TESTS_LIMIT=${TESTS_LIMIT:-100}
BENCH_LIMIT=${BENCH_LIMIT:-120}
LARGE_LIMIT=${LARGE_LIMIT:-40}
# PyTorch: import, CUDA and cuDNN start-up, then 3 warm-up + 5 timed steps for each of 9
# rows; rows that would start in the last 20 s are skipped (and listed) rather than cut off.
TORCH_LIMIT=${TORCH_LIMIT:-60}

prepare() {
    set -e
    cd "$ROOT"
    if ! git check-ignore -q .gpu; then
        echo "error: .gpu/ is not ignored by git; add /.gpu to .gitignore" >&2
        exit 1
    fi
    echo "== cargo build --release"
    cargo build --release
    echo "== cargo test --release --no-run --test $TEST_NAME"
    local json exe
    json="$(cargo test --release --no-run --test "$TEST_NAME" --message-format=json)"
    # The compiler-artifact line of the test target carries "executable":"<path>".
    exe="$(printf '%s\n' "$json" | grep '"reason":"compiler-artifact"' |
        grep "\"name\":\"$TEST_NAME\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
    if [[ -z "$exe" || ! -x "$exe" ]]; then
        echo "error: could not find the $TEST_NAME test executable in cargo's output" >&2
        exit 1
    fi
    rm -rf "$GPU_DIR"
    mkdir -p "$GPU_DIR"
    cp target/release/pixelrnn "$GPU_DIR/pixelrnn"
    cp "$exe" "$GPU_DIR/$TEST_NAME"
    strip "$GPU_DIR/pixelrnn" "$GPU_DIR/$TEST_NAME"
    {
        echo "prepared: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$([[ -z "$(git status --porcelain 2>/dev/null)" ]] || echo ' (+ uncommitted changes)')"
        echo "rustc: $(rustc --version)"
        echo "test executable: ${exe#"$ROOT"/}"
        (cd "$GPU_DIR" && sha256sum pixelrnn "$TEST_NAME")
    } >"$GPU_DIR/MANIFEST"
    local bytes
    bytes="$(du -sb "$GPU_DIR" | cut -f1)"
    if ((bytes > MAX_BYTES)); then
        echo "error: .gpu/ is $bytes bytes, over the 64 MiB that run carries" >&2
        exit 1
    fi
    echo
    cat "$GPU_DIR/MANIFEST"
    echo ".gpu/: $((bytes / 1024)) KiB"
    echo
    echo "Now make one device call (the script runs in the repository root there):"
    echo "  run(command=\"bash scripts/gpu-check.sh\", carry=[\".gpu\"], timeout_s=420)"
    echo "and give_back afterwards unless you rerun at once."
}

# The bench rows of $1 (bench JSON) as short table lines; prints nothing if unreadable.
bench_summary() {
    python3 - "$1" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
c = r["ceilings"]
fmt = lambda v, f: "-" if v is None else f.format(v)
print(f"bench on {r['device']} ({r['date']}): copy {fmt(c['copy_gb_per_s'], '{:.0f}')} GB/s, "
      f"fp32 {fmt(c['fp32_gflop_per_s'], '{:.0f}')} GFLOP/s")
bad = [x for x in r["rows"] if x["status"] != "ok"]
ops = [x for x in r["rows"] if x["kind"] == "op"]
print(f"  {len(ops)} op rows, {len(bad)} wrong or failed"
      + "".join(f"\n  NOT OK: {x['name']} {x['config']} {x['shape']} {x['variant']}: {x['status']} {x['note'][:80]}" for x in bad[:8]))
for x in r["rows"]:
    if x["kind"] == "step":
        print(f"  {x['name']:<24} {x['config']:<12} {x['variant']:<10} "
              f"{fmt(x['ms'], '{:9.3f}')} ms {fmt(x['gflop_per_s'], '{:8.1f}')} GFLOP/s "
              f"{fmt(x['speedup_vs_unfused'], '{:5.2f}x vs unfused'):>18}  {x['status']}")
PY
}

# The first python that imports torch: $TORCH_PYTHON, python3 (the device image's), the
# venv of scripts/torch/install.sh (this machine's). Prints it; fails when none does.
torch_python() {
    local p
    for p in "${TORCH_PYTHON:-}" python3 "$ROOT/.venv-torch/bin/python"; do
        [[ -n "$p" ]] || continue
        command -v "$p" >/dev/null 2>&1 || continue
        if timeout 30 "$p" -c 'import torch' >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Training step, pixelrnn against PyTorch: pixelrnn's step rows of $1 and $2 (bench JSON,
# either may be missing) side by side with the rows of $3 (bench_torch.py's JSON), one line
# per model, config and recurrence variant; $4 is what to say when $3 is missing.
compare_summary() {
    python3 - "$@" <<'PY'
import json, os, sys
paths, torch_path, why = sys.argv[1:3], sys.argv[3], sys.argv[4]
def load(p):
    try:
        return json.load(open(p)) if os.path.exists(p) else None
    except (OSError, ValueError) as e:
        print(f"  (could not read {p}: {e})")
        return None
benches = [r for r in map(load, paths) if r]
t = load(torch_path)
if t is None:
    print(f"pixelrnn vs PyTorch, training step: no PyTorch rows ({why})")
    sys.exit(0)
steps = [x for r in benches for x in r["rows"] if x["kind"] == "step"]
dev_p = benches[0]["device"] if benches else "(no pixelrnn bench JSON)"
on_gpu = t["device"].startswith("cuda")
how = (f"fp32, TF32 off (matmul {t['tf32']['matmul']}, cuDNN {t['tf32']['cudnn']}), cuDNN "
       f"{t['cudnn']}, cudnn.benchmark {t['cudnn_benchmark']}" if on_gpu else "fp32")
print(f"training step, pixelrnn on {dev_p} vs PyTorch {t['torch']} eager on {t['device']} ({how})")
print(f"  {t['warmup']} warm-up + median of {t['steps']} steps; ratio = PyTorch ms / pixelrnn ms"
      + (", issue 6's target >= 3x" if on_gpu else ""))
if not on_gpu or not any(r["device"].startswith("cuda") for r in benches):
    print("  DRY RUN: not both on a GPU, so these ratios say nothing about issue 6's target")
if not t.get("complete", False):
    print("  PyTorch run INCOMPLETE (killed at its time limit?): rows below are what it wrote")
print(f"  {'model':<12} {'config':<12} {'recurrence':<10} {'pixelrnn ms':>12} {'PyTorch ms':>11} {'ratio':>8}")
fmt = lambda v: "-" if v is None else f"{v:.3f}"
# Every (model, config) of either side, PyTorch's order first (a side that did not run a row
# shows "not run").
keys = list(dict.fromkeys([(r["model"], r["config"]) for r in t["rows"]]
                          + [(x["name"].replace(" train step", ""), x["config"]) for x in steps]))
for model, cfg in keys:
    tr = next((r for r in t["rows"] if (r["model"], r["config"]) == (model, cfg)), None)
    tms = tr["ms"] if tr and tr["status"] == "ok" else None
    tcol = "not run" if tr is None else fmt(tms) if tr["status"] == "ok" else tr["status"]
    mine = [x for x in steps if x["name"] == f"{model} train step" and x["config"] == cfg]
    if not mine:
        print(f"  {model:<12} {cfg:<12} {'-':<10} {'not run':>12} {tcol:>11} {'-':>8}  {tr['note'][:60]}")
        continue
    for x in mine:
        rec = x.get("recurrence") or "-"
        note = ""
        if tr and x["shape"] != tr["shape"]:
            note = f"SIZE MISMATCH: pixelrnn {x['shape']}, PyTorch {tr['shape']}"
        pms = x["ms"] if x["status"] == "ok" else None
        pcol = fmt(pms) if x["status"] == "ok" else x["status"]
        if pms and tms and not note:
            ratio = tms / pms
            rcol = f"{ratio:.2f}x"
            if on_gpu:
                note = "target met" if ratio >= 3 else "below 3x"
        else:
            rcol = "-"
            if not note and x["status"] != "ok":
                note = "pixelrnn: " + x.get("note", "")[:60]
            elif not note and tr and tr["status"] != "ok":
                note = "PyTorch: " + tr["note"][:60]
        print(f"  {model:<12} {cfg:<12} {rec:<10} {pcol:>12} {tcol:>11} {rcol:>8}  {note}")
PY
}

check() {
    local out="${OUT:-$GPU_DIR/out}"
    mkdir -p "$out"
    cd "$ROOT"
    if [[ ! -x "$GPU_DIR/pixelrnn" || ! -x "$GPU_DIR/$TEST_NAME" ]]; then
        echo "error: .gpu/pixelrnn or .gpu/$TEST_NAME missing: run scripts/gpu-check.sh --prepare here and carry [\".gpu\"]" >&2
        exit 2
    fi
    cp "$GPU_DIR/MANIFEST" "$out/MANIFEST" 2>/dev/null || true
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "host: $(hostname)"
        if command -v nvidia-smi >/dev/null 2>&1; then
            nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
        else
            echo "nvidia-smi: not found"
        fi
    } >"$out/machine.log" 2>&1

    echo "== .gpu/pixelrnn info"
    "$GPU_DIR/pixelrnn" info >"$out/info.log" 2>&1
    local info_rc=$?
    cat "$out/info.log"
    local has_gpu=1
    grep -q '^cuda devices: none' "$out/info.log" && has_gpu=0

    # NCCL (the nccl::device tests): cudarc dlopens `libnccl.so`, while pip's NCCL (the one
    # PyTorch ships) is `libnccl.so.2`; link it under the expected name when found.
    local nccl_lib=""
    nccl_lib="$(ldconfig -p 2>/dev/null | awk '/libnccl\.so/ {print $NF; exit}')"
    if [[ -z "$nccl_lib" ]]; then
        for py in "${TORCH_PYTHON:-}" python3; do
            [[ -n "$py" ]] || continue
            nccl_lib="$("$py" -c 'import glob, os, nvidia.nccl as n; d = os.path.join(list(n.__path__)[0], "lib"); print((glob.glob(d + "/libnccl.so*") or [""])[0])' 2>/dev/null)" && [[ -n "$nccl_lib" ]] && break
        done
    fi
    if [[ -n "$nccl_lib" ]]; then
        mkdir -p "$out/nccl-lib"
        ln -sf "$nccl_lib" "$out/nccl-lib/libnccl.so"
        export LD_LIBRARY_PATH="$out/nccl-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        echo "nccl: $nccl_lib"
    else
        echo "nccl: not found (the nccl::device tests will say so)"
    fi

    echo
    echo "== .gpu/$TEST_NAME --include-ignored ::device --test-threads=1 (limit ${TESTS_LIMIT}s)"
    # One test at a time, so each test's printed errors and panic message follow its name.
    timeout "$TESTS_LIMIT" "$GPU_DIR/$TEST_NAME" --include-ignored ::device --nocapture \
        --test-threads=1 >"$out/$TEST_NAME.log" 2>&1
    local test_rc=$?
    cat "$out/$TEST_NAME.log"

    echo
    local bench_rc large_rc=0
    if ((has_gpu)); then
        echo "== .gpu/pixelrnn bench --device cuda --recurrence all --config mnist,cifar (limit ${BENCH_LIMIT}s)"
        timeout "$BENCH_LIMIT" "$GPU_DIR/pixelrnn" bench --device cuda --recurrence all \
            --config mnist,cifar --json "$out/bench.json" >"$out/bench.log" 2>&1
        bench_rc=$?
        cat "$out/bench.log"
        echo
        echo "== .gpu/pixelrnn bench --device cuda --part steps --config cifar-large (limit ${LARGE_LIMIT}s)"
        timeout "$LARGE_LIMIT" "$GPU_DIR/pixelrnn" bench --device cuda --part steps \
            --recurrence all --config cifar-large --step-iters 3 \
            --json "$out/bench-large.json" >"$out/bench-large.log" 2>&1
        large_rc=$?
        cat "$out/bench-large.log"
        echo
        # The runs above load the embedded sm_90 cubins; this one forces the PTX through the
        # driver's JIT (informational: an older driver may not know the PTX ISA of the build).
        echo "== PIXELRNN_KERNEL_IMAGE=ptx .gpu/pixelrnn bench --device cuda --config tiny --part steps (limit 30s)"
        PIXELRNN_KERNEL_IMAGE=ptx timeout 30 "$GPU_DIR/pixelrnn" bench --device cuda --config tiny \
            --part steps --recurrence fused --iters 2 --step-iters 1 --warmup 1 \
            >"$out/bench-ptx.log" 2>&1
        echo "ptx path: exit $? (log: bench-ptx.log)"
        tail -n 8 "$out/bench-ptx.log"
    else
        echo "== no CUDA device: .gpu/pixelrnn bench --device cpu --config tiny (a dry run of the bench path)"
        "$GPU_DIR/pixelrnn" bench --device cpu --config tiny --iters 2 --step-iters 1 \
            --warmup 1 --json "$out/bench.json" >"$out/bench.log" 2>&1
        bench_rc=$?
        cat "$out/bench.log"
    fi

    # PyTorch on the same GPU, the same training steps. torch_state: measured; partial (some
    # rows failed or were skipped: bench_torch.py's status 5, the table says which); failed
    # (crashed or timed out); no-torch; no-device.
    echo
    local torch_rc=0 torch_state torch_why="" py
    rm -f "$out/torch.json"
    if ! py="$(torch_python)"; then
        torch_state=no-torch
        torch_why="no python with torch here (tried ${TORCH_PYTHON:+$TORCH_PYTHON, }python3, .venv-torch/bin/python)"
        echo "== PyTorch comparison skipped: $torch_why" | tee "$out/torch.log"
    else
        echo "== $py scripts/torch/bench_torch.py --device cuda (limit ${TORCH_LIMIT}s)"
        timeout "$TORCH_LIMIT" "$py" scripts/torch/bench_torch.py --device cuda \
            --config mnist,cifar,cifar-large --warmup 3 --steps 5 \
            --budget-s $((TORCH_LIMIT > 40 ? TORCH_LIMIT - 20 : TORCH_LIMIT / 2)) \
            --json "$out/torch.json" >"$out/torch.log" 2>&1
        torch_rc=$?
        cat "$out/torch.log"
        if ((torch_rc == 0)); then
            torch_state=measured
        elif ((torch_rc == 5)); then
            torch_state=partial
            torch_why="some rows failed or were skipped, see the table and $out/torch.log"
        elif ((torch_rc == 3)); then
            torch_state=no-device
            torch_why="$(grep -m1 'no CUDA device' "$out/torch.log" | cut -c1-150)"
            if ((!has_gpu)); then
                echo "== no CUDA device: $py scripts/torch/bench_torch.py --device cpu --config tiny (a dry run of its path)"
                "$py" scripts/torch/bench_torch.py --device cpu --config tiny --warmup 1 \
                    --threads 1 --steps 2 --json "$out/torch.json" >>"$out/torch.log" 2>&1 ||
                    echo "PyTorch CPU dry run failed (rc=$?)" | tee -a "$out/torch.log"
                tail -n 5 "$out/torch.log"
            fi
        else
            torch_state=failed
            local last
            last="$(tail -n 1 "$out/torch.log" | cut -c1-120)"
            torch_why="rc=$torch_rc$( ((torch_rc == 124)) && echo ", timed out")${last:+: $last}"
        fi
    fi

    # Table: one row per test. Status from libtest's failures list; note from the test's own
    # "rel err" line, or the first line of its panic message.
    local tests failed
    tests="$("$GPU_DIR/$TEST_NAME" --list --include-ignored ::device 2>/dev/null | sed -n 's/: test$//p')"
    failed="$(awk '/^failures:$/ {n++; next} n == 2 && /^    / {print $1} n == 2 && /^$/ {exit}' \
        "$out/$TEST_NAME.log")"
    local gpu_name="no nvidia-smi"
    if command -v nvidia-smi >/dev/null 2>&1; then
        gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
    fi
    local no_device=0
    grep -q 'no CUDA device' "$out/$TEST_NAME.log" && no_device=1

    {
        echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $gpu_name, $(grep -m1 '^commit:' "$GPU_DIR/MANIFEST" 2>/dev/null || echo 'commit: unknown')"
        printf '%-40s %-7s %s\n' "step" "status" "note"
        printf '%-40s %-7s %s\n' "pixelrnn info" "$([[ $info_rc == 0 ]] && echo ok || echo "rc=$info_rc")" \
            "$(grep -m1 '^cuda devices\?' "$out/info.log" | cut -c1-90)"
        local t status note
        for t in $tests; do
            if grep -qx "$t" <<<"$failed"; then status=FAILED; else status=ok; fi
            [[ $test_rc != 0 && -z "$failed" ]] && status="rc=$test_rc"
            note="$(awk -v t="$t" '
                /^test [^ ]+ \.\.\. / { cur = $2 }
                cur == t && /rel err/ { sub(/^.*\.\.\. /, ""); sub(/^ok$/, ""); print; exit }
                cur == t && /panicked at/ { getline; print; exit }' "$out/$TEST_NAME.log")"
            printf '%-40s %-7s %s\n' "$t" "$status" "$(cut -c1-110 <<<"$note")"
        done
        echo "$(grep -m1 '^test result:' "$out/$TEST_NAME.log" || echo "test result: none (rc=$test_rc$( ((test_rc == 124)) && echo ", timed out"))")"
        bench_summary "$out/bench.json" || echo "bench: no JSON (rc=$bench_rc)"
        [[ -f "$out/bench-large.json" ]] && bench_summary "$out/bench-large.json"
        echo "bench rc=$bench_rc$( ((has_gpu)) && echo ", cifar-large rc=$large_rc")"
        compare_summary "$out/bench.json" "$out/bench-large.json" "$out/torch.json" \
            "$torch_state${torch_why:+: $torch_why}" ||
            echo "pixelrnn vs PyTorch: the comparison table failed (see $out/torch.log)"
        echo "PyTorch comparison: $torch_state${torch_why:+ ($torch_why)}"
        if ((no_device)); then
            echo "verdict: NO CUDA DEVICE on this machine: the parity tests failed cleanly, nothing was measured on a GPU"
        elif [[ $test_rc == 0 && $bench_rc == 0 && $large_rc == 0 && $torch_state != failed ]]; then
            echo "verdict: all GPU parity tests passed and every bench row was right$([[ $torch_state == measured ]] || echo "; PyTorch comparison not run ($torch_state)")"
        else
            echo "verdict: FAILED (tests rc=$test_rc, bench rc=$bench_rc, cifar-large rc=$large_rc, PyTorch rc=$torch_rc; 124 = timed out), see the logs"
        fi
        echo "logs: $out/{machine,info,$TEST_NAME,bench,bench-large,torch}.log, bench*.json, torch.json"
    } >"$out/summary.txt"
    echo
    cat "$out/summary.txt"

    if ((no_device)); then exit 3; fi
    if [[ $test_rc != 0 || $bench_rc != 0 || $large_rc != 0 || $torch_state == failed ]]; then exit 1; fi
    exit 0
}

case "${1:-}" in
    --prepare) prepare ;;
    "") check ;;
    -h | --help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' ;;
    *)
        echo "usage: $0 [--prepare]" >&2
        exit 2
        ;;
esac
