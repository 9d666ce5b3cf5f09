#!/usr/bin/env bash
# gpu-check.sh: the one prepared device check (../shared/spec/GPU.md: one command of at most
# 10 minutes, planned to end in about 7; at most 8 files back from $OUT).
#
#   Here (has Rust, no GPU):   scripts/gpu-check.sh --prepare
#       With PIXELRNN_REQUIRE_KERNELS=1 (forced): cargo build --release, cargo test --release
#       --no-run --test cuda (the GPU parity suite, tests/cuda/main.rs); copies the pixelrnn
#       binary and the cuda test executable (stripped, gzipped; the check unpacks them and
#       checks their sha256 sums) into .gpu/ (ignored by git). Fails
#       unless `.gpu/pixelrnn info` lists the compiled kernels with an sm_90 cubin for every
#       module, and unless everything that travels (tracked and untracked-not-ignored files,
#       plus .gpu/) is under 60 MiB (run carries 64 MiB). Prints the `run` call to make.
#   There (GPU, no Rust):      scripts/gpu-check.sh          (the `run` call, carry [".gpu"])
#       Phases, in order, each with its time limit (seconds, env overrides) and what it costs
#       on an H200 (estimates: no run has measured them yet; each phase's wall time is
#       printed and goes to the summary):
#       0. machine: driver and CUDA versions, GPU name, ldd --version, nvcc/ncu/sanitizer
#          versions, printed first (~2 s);
#       1. .gpu/pixelrnn info: devices, kernels, ptxas resources (~1 s);
#       1b. mma: the tensor-core parity tests first, the device tests of the groups in
#          MMA_GROUPS: conv_mma (masked_conv2d's tf32 and bf16 kernels against the CPU twin at
#          the same precision, causality at every precision), lstm_mma and lstm_precision (the
#          recurrences' tensor-core kernels; a group without tests yet matches nothing),
#          lstm_unfused_precision and lstm_persistent_precision (the unfused and persistent
#          recurrences' rounded SIMT kernels at tf32 and bf16 against the twin and against the
#          fused tensor-core steps), lstm_mma_weight (the recurrences' tensor-core weight gradient
#          against v1 and the twin), lstm_persistent_mma (the persistent recurrence's
#          tensor-core forward against the twin and the fused tensor-core forward), lstm_at_precision (the sampler's tf32/bf16 one-position
#          steps against the twin, and their sweep against the tensor-core fused forward) and
#          peak_mma (the tensor-core ceiling kernels against their twin, bit for bit), so that
#          a short run still checks mma.sync on the hardware against what the emulator
#          checked (MMA_LIMIT 40; ~5-15 s);
#       2. parity: the suite's device tests (the MMA_GROUPS excluded: phase 1b ran them) (every kernel against its CPU twin on the GPU),
#          one process per test group with PIXELRNN_SYNC_LAUNCHES=1, so a fault names its
#          kernel and poisons no other group; a test that failed after an earlier failure
#          of its process is rerun alone. The NCCL tests are skipped, with the reason, when
#          no libnccl is found (TESTS_LIMIT 90; ~30-60 s);
#       3. bench: pixelrnn bench --device cuda --recurrence all --precision all, mnist and
#          cifar: the ceilings (copy, fp32 FMA, tf32 and bf16 mma), every op and kernel
#          version at every precision (tf32/bf16 rows against their own ceiling), then a
#          training step per model and precision (BENCH_LIMIT 110; ~40-90 s);
#       4. cifar-large: the training steps at 32x32x3 L12 h128 (the fused-vs-unfused
#          numbers), fused and unfused in the folded layout first, then persistent and
#          materialised (LARGE_LIMIT 90; ~30-80 s, most of it the CPU reference steps);
#       5. ptx: one tiny step through the driver's PTX JIT instead of the cubins (PTX_LIMIT
#          20; ~3 s);
#       6. torch: the same training steps in PyTorch on the same GPU (scripts/torch/
#          bench_torch.py, fp32, TF32 off, cuDNN; the python is $TORCH_PYTHON, else python3,
#          else .venv-torch's, the first that imports torch; TORCH_LIMIT 60; ~30-60 s);
#       then, with the time left before the script's deadline (TOTAL_LIMIT 420 s):
#       7. sanitizer: compute-sanitizer memcheck and racecheck over a few device tests
#          (SANITIZER_LIMIT 60; ~20-60 s);
#       8. ncu: Nsight Compute on a cifar-large Row LSTM step: kernel times of its first
#          NCU_LAUNCHES launches, then on the three kernels that took the longest,
#          sectors/request (global loads, stores), shared bank conflicts and achieved
#          occupancy (NCU_LIMIT 90; ~40-90 s).
#       Every bench row is printed as it lands and the bench JSONs are rewritten after each
#       row, so a phase cut off at its limit leaves what it measured. After every phase the
#       logs are packed again into $OUT/logs.tar.gz and $OUT/summary.txt is rewritten; $OUT
#       (.gpu/out/ when $OUT is unset) gets only summary.txt, logs.tar.gz, bench.json,
#       bench-large.json and torch.json (run returns at most 8 files). The summary, last,
#       has a row per test, the bench rows, pixelrnn's step time per recurrence next to
#       PyTorch's with the ratio (issue 6's target: >= 3x), and the phases' wall times.
#   Focused rerun (GPU), after a full check found something and it was fixed here:
#                              scripts/gpu-check.sh --focus   (FOCUS_TESTS, FOCUS_BENCH: focus())
#       The named device test groups, then a few bench commands, logged to $OUT/focus.log.
#   Dry run (no GPU, e.g. here after --prepare):  scripts/gpu-check.sh
#       The same phases: the device tests fail at once with 'no CUDA device', the GPU bench
#       phases fail at once, the bench runs the tiny size on the CPU instead (a dry run of
#       its path), PyTorch runs the tiny size on the CPU if torch is there, sanitizer and ncu
#       say they are not found or have no device. Ends in well under a minute (~10 s here).
#
# Exit status of the default mode: 0 all parity tests passed (NCCL's may be skipped) and
# every bench row was right (the PyTorch comparison's state is in the table); 1 a test failed
# or timed out, a bench row was wrong, or the PyTorch script crashed or timed out; 2 .gpu/ is
# missing or incomplete (run --prepare first); 3 no CUDA device (the dry run).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPU_DIR="$ROOT/.gpu"
TEST_NAME=cuda
MAX_TRAVEL=$((60 * 1024 * 1024)) # run carries 64 MiB; keep a margin
# The script's deadline (s) and each phase's limit (s); see the phases above. The run call's
# timeout_s must exceed TOTAL_LIMIT plus the transfer (480 leaves a minute).
TOTAL_LIMIT=${TOTAL_LIMIT:-420}
MMA_LIMIT=${MMA_LIMIT:-40}
TESTS_LIMIT=${TESTS_LIMIT:-90}
BENCH_LIMIT=${BENCH_LIMIT:-110}
LARGE_LIMIT=${LARGE_LIMIT:-90}
PTX_LIMIT=${PTX_LIMIT:-20}
TORCH_LIMIT=${TORCH_LIMIT:-60}
SANITIZER_LIMIT=${SANITIZER_LIMIT:-60}
NCU_LIMIT=${NCU_LIMIT:-90}
NCU_LAUNCHES=${NCU_LAUNCHES:-1200}
# The test groups (tests/cuda/<group>.rs) of phase 1b, the tensor-core parity tests, as an
# extended regex alternation; phase 2 leaves them out.
MMA_GROUPS="conv_mma|lstm_mma|lstm_mma_weight|lstm_at_precision|lstm_persistent_mma|lstm_persistent_precision|lstm_precision|lstm_unfused_precision|peak_mma"

prepare() {
    set -e
    cd "$ROOT"
    export PIXELRNN_REQUIRE_KERNELS=1
    if ! git check-ignore -q .gpu; then
        echo "error: .gpu/ is not ignored by git; add /.gpu to .gitignore" >&2
        exit 1
    fi
    echo "== PIXELRNN_REQUIRE_KERNELS=1 cargo build --release"
    cargo build --release
    echo "== PIXELRNN_REQUIRE_KERNELS=1 cargo test --release --no-run --test $TEST_NAME"
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
    # The kernels must be in the binary: every module compiled, each with its sm_90 cubin.
    "$GPU_DIR/pixelrnn" info >"$GPU_DIR/info.txt"
    local modules no_cubin
    modules="$(grep -cE '^  [a-z0-9_]+ \(sm_[0-9]+, PTX ISA' "$GPU_DIR/info.txt" || true)"
    no_cubin="$(grep -E '^  [a-z0-9_]+ \(sm_[0-9]+, PTX ISA' "$GPU_DIR/info.txt" | grep -v '+ sm_90 cubin' || true)"
    if ! grep -q '^kernels: compiled to PTX and embedded' "$GPU_DIR/info.txt" || ((modules == 0)); then
        echo "error: .gpu/pixelrnn info lists no compiled kernels:" >&2
        grep '^kernels:' "$GPU_DIR/info.txt" >&2
        rm -rf "$GPU_DIR"
        exit 1
    fi
    if [[ -n "$no_cubin" ]]; then
        echo "error: kernel modules without an sm_90 cubin (the H200 would JIT their PTX):" >&2
        echo "$no_cubin" >&2
        rm -rf "$GPU_DIR"
        exit 1
    fi
    {
        echo "prepared: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$([[ -z "$(git status --porcelain 2>/dev/null)" ]] || echo ' (+ uncommitted changes)')"
        echo "rustc: $(rustc --version)"
        echo "test executable: ${exe#"$ROOT"/}"
        echo "kernel modules: $modules, each with an sm_90 cubin"
        (cd "$GPU_DIR" && sha256sum pixelrnn "$TEST_NAME")
    } >"$GPU_DIR/MANIFEST"
    # The two binaries embed every module's cubin and PTX (~30 MiB each stripped); gzip packs
    # them to ~8-10 MiB each so that they fit what travels. check() unpacks them and checks
    # the MANIFEST's sha256 sums.
    gzip -9 -n "$GPU_DIR/pixelrnn" "$GPU_DIR/$TEST_NAME"
    # Everything that travels: tracked and untracked-not-ignored files (shared/ among them
    # when the checkout has one), plus .gpu/.
    local tree gpu bytes
    tree="$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null |
        awk '{s += $1} END {print s + 0}')"
    gpu="$(du -sb "$GPU_DIR" | cut -f1)"
    bytes=$((tree + gpu))
    if ((bytes > MAX_TRAVEL)); then
        echo "error: what travels is $((bytes / 1024)) KiB (tree $((tree / 1024)) KiB + .gpu/ $((gpu / 1024)) KiB), over 60 MiB" >&2
        exit 1
    fi
    echo
    cat "$GPU_DIR/MANIFEST"
    echo "travels: $((bytes / 1024)) KiB (tree $((tree / 1024)) KiB + .gpu/ $((gpu / 1024)) KiB; limit 60 MiB)"
    echo
    echo "Now make one device call (the script runs in the repository root there):"
    echo "  run(command=\"bash scripts/gpu-check.sh\", carry=[\".gpu\"], timeout_s=480)"
    echo "and give_back afterwards unless you rerun at once."
}

# The bench rows of $1 (bench JSON) as short table lines; prints nothing if unreadable.
bench_summary() {
    python3 - "$1" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
c = r["ceilings"]
fmt = lambda v, f: "-" if v is None else f.format(v)
print(f"bench on {r['device']} ({r['date']}){'' if r.get('complete', True) else ', INCOMPLETE (cut off at its time limit?)'}: copy {fmt(c['copy_gb_per_s'], '{:.0f}')} GB/s, "
      f"fp32 {fmt(c['fp32_gflop_per_s'], '{:.0f}')} GFLOP/s, tf32 mma {fmt(c.get('tf32_gflop_per_s'), '{:.0f}')} GFLOP/s, "
      f"bf16 mma {fmt(c.get('bf16_gflop_per_s'), '{:.0f}')} GFLOP/s"
      + ("" if c.get('tf32_gflop_per_s') is not None else " ('-': not measured, see the bench log's ceilings line)"))
bad = [x for x in r["rows"] if x["status"] != "ok"]
ops = [x for x in r["rows"] if x["kind"] == "op"]
print(f"  {len(ops)} op rows, {len(bad)} wrong or failed"
      + "".join(f"\n  NOT OK: {x['name']} {x['config']} {x['shape']} {x['variant']}: {x['status']} {x['note'][:80]}" for x in bad[:8]))
for x in r["rows"]:
    if x["kind"] == "step":
        peak = fmt(x.get('frac_peak'), '{:.0%}') + " of " + x.get('peak', 'fp32')
        print(f"  {x['name']:<24} {x['config']:<12} {x['variant']:<16} "
              f"{fmt(x['ms'], '{:9.3f}')} ms {fmt(x['gflop_per_s'], '{:8.1f}')} GFLOP/s {peak:>12} "
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
prec = t.get("fp32_precision", {})
how = (f"fp32, TF32 off (matmul {t['tf32']['matmul']}, cuDNN {t['tf32']['cudnn']}; effective "
       f"conv precision {prec.get('conv', '?')}, matmul {prec.get('matmul', '?')}), cuDNN "
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

# Phase 7: compute-sanitizer's memcheck and racecheck over a few device tests (the shared-
# memory kernels among them: the reduction, the implicit-GEMM convolution, the Row LSTM).
# Its last line of sanitizer.txt is the phase's state.
SANITIZER_TESTS=(pointwise::add::device pointwise::sum::device
    conv::masked_conv2d_forward_backward::device lstm::row_lstm::device)
RACECHECK_TESTS=(pointwise::sum::device conv::masked_conv2d_forward_backward::device)
sanitizer_phase() {
    local lim=$1 out="$LOGS/sanitizer.txt" t_end=$(($(date +%s) + $1))
    : >"$out"
    if ! command -v compute-sanitizer >/dev/null 2>&1; then
        echo "sanitizer: skipped: compute-sanitizer not found" | tee -a "$out"
        return
    fi
    if ((!HAS_GPU)); then
        echo "sanitizer: skipped: no CUDA device" | tee -a "$out"
        return
    fi
    local tool rc t states=""
    for tool in memcheck racecheck; do
        local -a tests=("${SANITIZER_TESTS[@]}")
        [[ $tool == racecheck ]] && tests=("${RACECHECK_TESTS[@]}")
        t=$((t_end - $(date +%s)))
        [[ $tool == memcheck ]] && t=$((t * 5 / 10))
        if ((t < 5)); then
            states+="$tool not run (no time left); "
            continue
        fi
        PIXELRNN_SYNC_LAUNCHES=1 timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 9 \
            --print-limit 20 "$GPU_DIR/$TEST_NAME" --include-ignored --exact --test-threads=1 \
            "${tests[@]}" >"$LOGS/sanitizer-$tool.log" 2>&1
        rc=$?
        local what
        what="$(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/sanitizer-$tool.log" | sed 's/^========= //')"
        case $rc in
            0) what="clean${what:+, $what}" ;;
            9)
                what="ERRORS${what:+, $what}"
                SANITIZER_FOUND=1
                ;;
            124) what="timed out after ${t}s${what:+, $what}" ;;
            *) what="rc=$rc${what:+, $what}: $(grep -m1 -E '^test result:|panicked' "$LOGS/sanitizer-$tool.log")" ;;
        esac
        echo "sanitizer $tool over ${tests[*]}: $what" | tee -a "$out"
        states+="$tool $what; "
    done
    echo "sanitizer: ${states%; }" >>"$out"
}

# Phase 8: Nsight Compute on a cifar-large Row LSTM training step (fused, folded: the step
# the comparison is about). Pass 1: the duration of each of the first NCU_LAUNCHES launches
# (ceilings' peak_fma and peak_mma excluded), summed per kernel; pass 2: one launch of each of the three
# longest, with the counters the emulator reports. The last line of ncu-summary.txt is the
# phase's state.
NCU_METRICS=gpu__time_duration.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_st.sum,l1tex__t_requests_pipe_lsu_mem_global_op_st.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum,smsp__inst_executed_op_shared_ld.sum,smsp__inst_executed_op_shared_st.sum,sm__warps_active.avg.pct_of_peak_sustained_active
# The kernels of an ncu --csv log of gpu__time_duration.sum ($1), summed per kernel, longest
# first, at most $2 of them: "name launches ms" per line (the ceilings' peak kernels left out).
ncu_kernel_totals() {
    python3 - "$1" "$2" <<'PY'
import csv, sys
rows = list(csv.DictReader(l for l in open(sys.argv[1], errors="replace") if l.startswith('"')))
tot = {}
for r in rows:
    if r.get("Metric Name") == "gpu__time_duration.sum" and not r["Kernel Name"].startswith(("peak_fma", "peak_mma")):
        v = float(r["Metric Value"].replace(",", "") or 0)
        n, s = tot.get(r["Kernel Name"], (0, 0.0))
        tot[r["Kernel Name"]] = (n + 1, s + v)
for k, (n, s) in sorted(tot.items(), key=lambda kv: -kv[1][1])[:int(sys.argv[2])]:
    print(f"{k} {n} {s / 1e6:.3f}")
PY
}

ncu_phase() {
    local lim=$1 out="$LOGS/ncu-summary.txt" t_end=$(($(date +%s) + $1))
    : >"$out"
    if ! command -v ncu >/dev/null 2>&1; then
        echo "ncu: skipped: ncu not found" | tee -a "$out"
        return
    fi
    if ((!HAS_GPU)); then
        echo "ncu: skipped: no CUDA device" | tee -a "$out"
        return
    fi
    local -a step=("$GPU_DIR/pixelrnn" bench --device cuda --part steps --config cifar-large
        --model row-lstm --recurrence fused --warmup 0 --step-iters 1 --iters 1)
    local t=$(((t_end - $(date +%s)) * 4 / 10)) rc
    if ((t < 10)); then
        echo "ncu: skipped: ${lim}s left, too few" | tee -a "$out"
        return
    fi
    timeout "$t" ncu --csv --print-units base --kernel-name-base function \
        --metrics gpu__time_duration.sum --launch-count "$NCU_LAUNCHES" \
        --log-file "$LOGS/ncu-times.csv" "${step[@]}" >"$LOGS/ncu-times.log" 2>&1
    rc=$?
    local top
    top="$(ncu_kernel_totals "$LOGS/ncu-times.csv" 3 2>>"$LOGS/ncu-times.log")"
    if [[ -z "$top" ]]; then
        echo "ncu: no kernel times (rc=$rc$( ((rc == 124)) && echo ", timed out after ${t}s"); see ncu-times.log): $(grep -m1 -E 'ERROR|error' "$LOGS/ncu-times.log" | cut -c1-120)" | tee -a "$out"
        return
    fi
    echo "ncu pass 1 (first $NCU_LAUNCHES launches of a cifar-large row-lstm fused step, rc=$rc): longest kernels (launches, ms in all):" | tee -a "$out"
    sed 's/^/  /' <<<"$top" | tee -a "$out"
    local k n ms done_k=""
    while read -r k n ms; do
        t=$(((t_end - $(date +%s)) / 2))
        ((t < 8)) && { echo "  $k: not profiled (no time left)" | tee -a "$out"; continue; }
        timeout "$t" ncu --csv --print-units base --kernel-name-base function --kernel-name "$k" \
            --launch-skip 1 --launch-count 1 --metrics "$NCU_METRICS" \
            --log-file "$LOGS/ncu-$k.csv" "${step[@]}" >"$LOGS/ncu-$k.log" 2>&1
        done_k+="$k "
    done <<<"$top"
    python3 - "$LOGS" $done_k <<'PY' | tee -a "$out"
import csv, os, sys
logs, names = sys.argv[1], sys.argv[2:]
print(f"  {'kernel':<28} {'us':>8} {'ld sect/req':>11} {'st sect/req':>11} {'shm ld conf':>11} {'shm st conf':>11} {'shm wf/inst':>11} {'occupancy':>9}")
got = 0
for k in names:
    p = os.path.join(logs, f"ncu-{k}.csv")
    m = {}
    if os.path.exists(p):
        for r in csv.DictReader(l for l in open(p, errors="replace") if l.startswith('"')):
            try:
                m[r["Metric Name"]] = float(r["Metric Value"].replace(",", ""))
            except (KeyError, ValueError):
                pass
    if not m:
        print(f"  {k:<28} no counters (see ncu-{k}.log)")
        continue
    got += 1
    g = lambda n: m.get(n)
    div = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}"
    pre = "l1tex__t_"
    wf = (g("l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum") or 0) + (g("l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum") or 0)
    inst = (g("smsp__inst_executed_op_shared_ld.sum") or 0) + (g("smsp__inst_executed_op_shared_st.sum") or 0)
    occ = g("sm__warps_active.avg.pct_of_peak_sustained_active")
    us = g("gpu__time_duration.sum")
    print(f"  {k:<28} {'-' if us is None else f'{us / 1e3:.1f}':>8} "
          f"{div(g(pre + 'sectors_pipe_lsu_mem_global_op_ld.sum'), g(pre + 'requests_pipe_lsu_mem_global_op_ld.sum')):>11} "
          f"{div(g(pre + 'sectors_pipe_lsu_mem_global_op_st.sum'), g(pre + 'requests_pipe_lsu_mem_global_op_st.sum')):>11} "
          f"{g('l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum') or 0:>11.0f} "
          f"{g('l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum') or 0:>11.0f} "
          f"{div(wf, inst):>11} {'-' if occ is None else f'{occ:.1f}%':>9}")
print(f"ncu: counters of {got} of the {len(names)} longest kernels (sectors/request, bank conflicts, occupancy above)")
PY
}

# Seconds left before the deadline, and a phase's limit: min(its limit, time left - $2), at
# least 1 (`timeout 0` would mean no limit at all).
left() { echo $((DEADLINE - $(date +%s))); }
limit_for() {
    local l r
    r=$(($(left) - ${2:-0}))
    l=$1
    ((r < l)) && l=$r
    ((l < 1)) && l=1
    echo "$l"
}

# Phase bookkeeping: PHASES holds "name seconds state" lines for the summary.
PHASES=""
phase_start() {
    PHASE_T0=$(date +%s)
    echo
    echo "== [$1] $2 (limit ${3}s, $(left)s left of ${TOTAL_LIMIT}s)"
}
phase_end() {
    local s=$(($(date +%s) - PHASE_T0))
    PHASES+="$(printf '%-12s %5ss  %s' "$1" "$s" "$2")"$'\n'
    echo "-- [$1] ${s}s: $2"
    pack
}

# Packs the scratch logs into $OUT/logs.tar.gz (atomically) and rewrites $OUT/summary.txt,
# so a run killed mid-phase still returns the logs and a summary of the phases before.
pack() {
    tar -czf "$WORK/logs.tar.gz.tmp" -C "$WORK" logs 2>/dev/null &&
        mv -f "$WORK/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
    summary >"$WORK/summary.tmp" 2>&1 && mv -f "$WORK/summary.tmp" "$OUT/summary.txt"
}

# Per device test: "name status note" from the group logs (libtest's 'test NAME ... STATUS'
# lines; a test that started and never finished is TIMED-OUT or CRASHED; the note is the
# test's 'rel err' line or the first line of its panic). $1: the file listing every test.
test_table() {
    python3 - "$1" "$LOGS" <<'PY'
import glob, os, re, sys
names = [l.strip() for l in open(sys.argv[1]) if l.strip()]
logs = sys.argv[2]
status, notes = {}, {}
for path in sorted(glob.glob(os.path.join(logs, "tests-*.log"))):
    text = open(path, errors="replace").read()
    rc = next((l.split("=", 1)[1] for l in text.splitlines() if l.startswith("## rc=")), "")
    alone = "-alone-" in path
    running = None
    for line in text.splitlines():
        m = re.match(r"^test (\S+) \.\.\. ?(ok|FAILED|ignored)?\s*$", line)
        if m:
            name, st = m.group(1), m.group(2)
            if st is None:
                running = name
                continue
            running = None
            if alone:
                prev = status.get(name, "")
                # collateral: failed after an earlier failure of its process, passes alone.
                status[name] = ("FAILED" if st == "FAILED" else
                                "collateral" if prev == "FAILED" else st)
            else:
                status[name] = st
    if running:
        status[running] = "TIMED-OUT" if rc == "124" else f"CRASHED (rc={rc})"
    # Notes: the captured output of each test (--show-output prints passing tests' too).
    for m in re.finditer(r"^---- (\S+) stdout ----\n(.*?)(?=^---- |^failures:|^successes:|\Z)", text, re.S | re.M):
        name, body = m.group(1), m.group(2)
        lines = body.splitlines()
        note = ""
        for i, l in enumerate(lines):
            if "panicked at" in l:
                note = lines[i + 1] if i + 1 < len(lines) else l
                break
            if "rel err" in l and not note:
                note = l
        if note and (name not in notes or alone):
            notes[name] = note.strip()
skips = {}
sp = os.path.join(logs, "skipped.txt")
if os.path.exists(sp):
    for l in open(sp):
        n, _, why = l.strip().partition(" ")
        skips[n] = why
for n in names:
    st = status.get(n) or ("skipped" if n in skips else "not run")
    note = skips.get(n, "") if st == "skipped" else notes.get(n, "")
    print(f"{n:<64} {st:<8} {note[:100]}")
PY
}

summary() {
    local gpu_name="no nvidia-smi"
    command -v nvidia-smi >/dev/null 2>&1 &&
        gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
    echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on ${gpu_name:-?}, $(grep -m1 '^commit:' "$GPU_DIR/MANIFEST" 2>/dev/null || echo 'commit: unknown')"
    grep -E '^(driver|cuda|ldd|gpu):' "$LOGS/machine.log" 2>/dev/null | sed 's/^/  /'
    echo "pixelrnn info: $(grep -m1 '^cuda devices\?' "$LOGS/info.log" 2>/dev/null | cut -c1-100)"
    if [[ -f "$LOGS/tests.list" ]]; then
        if ((HAS_GPU)); then
            printf '%-64s %-8s %s\n' "device test" "status" "note"
            test_table "$LOGS/tests.list"
        else
            # Without a device every test fails the same way: one line for them.
            test_table "$LOGS/tests.list" | awk '{n[$2]++} $2 == "FAILED" && !note {$1 = $2 = ""; note = $0}
                END {for (s in n) printf "device tests %s: %d\n", s, n[s]; print "  e.g.:" note}'
        fi
        echo "parity: $TESTS_STATE"
    fi
    [[ -f "$OUT/bench.json" ]] && { bench_summary "$OUT/bench.json" || echo "bench: bench.json unreadable"; }
    [[ -f "$LOGS/bench-cpu.json" ]] && { bench_summary "$LOGS/bench-cpu.json" || true; }
    [[ -f "$OUT/bench-large.json" ]] && { bench_summary "$OUT/bench-large.json" || echo "cifar-large: bench-large.json unreadable"; }
    [[ -n "$BENCH_STATE" ]] && echo "bench: $BENCH_STATE"
    if [[ -n "$TORCH_STATE" ]]; then
        compare_summary "$OUT/bench.json" "$OUT/bench-large.json" "$OUT/torch.json" \
            "$TORCH_STATE${TORCH_WHY:+: $TORCH_WHY}" ||
            echo "pixelrnn vs PyTorch: the comparison table failed (see torch.log)"
        echo "PyTorch comparison: $TORCH_STATE${TORCH_WHY:+ ($TORCH_WHY)}"
    fi
    [[ -f "$LOGS/sanitizer.txt" ]] && cat "$LOGS/sanitizer.txt"
    [[ -f "$LOGS/ncu-summary.txt" ]] && cat "$LOGS/ncu-summary.txt"
    echo "phases (wall time, state):"
    printf '%s' "$PHASES" | sed 's/^/  /'
    [[ -n "$VERDICT" ]] && echo "verdict: $VERDICT"
    echo "files: $OUT/{summary.txt,logs.tar.gz,bench.json,bench-large.json,torch.json}; logs.tar.gz holds logs/ (machine, info, tests-*, bench*, torch, sanitizer, ncu)"
}

# The names of the suite's device tests (`<group>::<test>::device`, NCCL's `nccl::device::<test>`),
# one per line.
device_tests() {
    "$GPU_DIR/$TEST_NAME" --list --include-ignored ::device 2>/dev/null | sed -n 's/: test$//p' |
        grep -v '::emulated$'
}

# Phase 1b: the tensor-core parity tests (the device tests of the MMA_GROUPS), in one process
# with PIXELRNN_SYNC_LAUNCHES=1. Sets MMA_STATE; a failure on a device fails the run.
mma_phase() {
    local lim=$1 names=() rc n_ok
    # Every device test, then the groups of MMA_GROUPS: a group with no tests yet (the
    # recurrences' lstm_mma, lstm_precision while they are written) matches nothing, harmlessly.
    mapfile -t names < <(device_tests | grep '::device$' | grep -E "^($MMA_GROUPS)::" || true)
    if ((${#names[@]} == 0)); then
        MMA_STATE="no tensor-core device tests ($MMA_GROUPS) in .gpu/$TEST_NAME"
        ((HAS_GPU)) && TESTS_FAILED=1
        echo "mma: $MMA_STATE"
        return 0
    fi
    PIXELRNN_SYNC_LAUNCHES=1 timeout "$lim" "$GPU_DIR/$TEST_NAME" --include-ignored --exact \
        --test-threads=1 --show-output "${names[@]}" >"$LOGS/tests-mma.log" 2>&1
    rc=$?
    echo "## rc=$rc" >>"$LOGS/tests-mma.log"
    grep -E '^test .* \.\.\. |^test result:|panicked at' "$LOGS/tests-mma.log"
    n_ok="$(grep -c ' \.\.\. ok$' "$LOGS/tests-mma.log" || true)"
    MMA_STATE="rc=$rc, $n_ok of ${#names[@]} tensor-core tests passed"
    ((rc != 0 && HAS_GPU)) && TESTS_FAILED=1
    echo "mma: $MMA_STATE"
    return 0
}

# Phase 2: the device tests, one process per group (the name's first component), with
# PIXELRNN_SYNC_LAUNCHES=1 (a synchronise after every launch: a fault is reported by the
# launch that made it). A test that failed after an earlier failure of its process may be
# collateral (a fault poisons the context): each such test is rerun alone.
parity_phase() {
    local lim=$1 t_end=$(($(date +%s) + $1)) nccl_why=""
    device_tests | grep -vE "^($MMA_GROUPS)::" >"$LOGS/tests.list"
    : >"$LOGS/skipped.txt"
    [[ -z "$NCCL_LIB" ]] && nccl_why="libnccl not found (ldconfig, nvidia.nccl of $(command -v python3 || echo 'no python'))"
    local groups g rc=0 worst=0
    groups="$(cut -d: -f1 "$LOGS/tests.list" | uniq)"
    for g in $groups; do
        local names
        mapfile -t names < <(grep "^$g::" "$LOGS/tests.list")
        if [[ $g == nccl && -n "$nccl_why" ]]; then
            for n in "${names[@]}"; do
                echo "$n $nccl_why" >>"$LOGS/skipped.txt"
                echo "$n skipped: $nccl_why"
            done
            continue
        fi
        local gl=$((t_end - $(date +%s)))
        if ((gl <= 0)); then
            echo "group $g: not run (the phase's ${lim}s are spent)"
            continue
        fi
        echo "-- group $g (${#names[@]} tests, limit ${gl}s)"
        PIXELRNN_SYNC_LAUNCHES=1 timeout "$gl" "$GPU_DIR/$TEST_NAME" --include-ignored --exact \
            --test-threads=1 --show-output "${names[@]}" >"$LOGS/tests-$g.log" 2>&1
        rc=$?
        echo "## rc=$rc" >>"$LOGS/tests-$g.log"
        grep -E '^test .* \.\.\. |^test result:|panicked at' "$LOGS/tests-$g.log"
        ((rc != 0)) && worst=$rc
        # Rerun alone every failed test but the first of its process (not without a device:
        # there every test fails at once, for that reason).
        local failed=()
        ((HAS_GPU)) &&
            mapfile -t failed < <(sed -n 's/^test \(\S*\) \.\.\. FAILED$/\1/p' "$LOGS/tests-$g.log" | tail -n +2)
        for n in "${failed[@]}"; do
            gl=$((t_end - $(date +%s)))
            ((gl > 30)) && gl=30
            ((gl <= 0)) && break
            PIXELRNN_SYNC_LAUNCHES=1 timeout "$gl" "$GPU_DIR/$TEST_NAME" --include-ignored --exact \
                --test-threads=1 --show-output "$n" >"$LOGS/tests-$g-alone-${n//:/_}.log" 2>&1
            echo "## rc=$?" >>"$LOGS/tests-$g-alone-${n//:/_}.log"
            echo "   alone: $(grep -m1 "^test $n \.\.\. " "$LOGS/tests-$g-alone-${n//:/_}.log")"
        done
    done
    local table bad
    table="$(test_table "$LOGS/tests.list")"
    bad="$(awk '$2 != "ok" && $2 != "skipped" && $2 != "collateral" {print $1}' <<<"$table" | grep -c . || true)"
    local n_ok n_skip
    n_ok="$(awk '$2 == "ok"' <<<"$table" | grep -c . || true)"
    n_skip="$(awk '$2 == "skipped"' <<<"$table" | grep -c . || true)"
    TESTS_STATE="$n_ok passed, $bad failed or not run, $n_skip skipped${nccl_why:+ (NCCL: $nccl_why)}"
    if grep -qh 'no CUDA device' "$LOGS"/tests-*.log 2>/dev/null && ((n_ok == 0)); then
        TESTS_STATE+="; no CUDA device"
        NO_DEVICE=1
    fi
    ((bad > 0)) && TESTS_FAILED=1
    echo "parity: $TESTS_STATE"
    return 0
}

# The binaries that --prepare packed (.gpu/*.gz), unpacked into a fresh folder (the carried
# tree may be read-only) that becomes GPU_DIR, with the MANIFEST's sha256 sums checked. Does
# nothing when .gpu/ holds them unpacked (an older --prepare).
unpack_binaries() {
    [[ -f "$GPU_DIR/pixelrnn.gz" && -f "$GPU_DIR/$TEST_NAME.gz" ]] || return 0
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/gpu-bin.XXXXXX")" || return 1
    cp "$GPU_DIR/MANIFEST" "$GPU_DIR/info.txt" "$dir/" 2>/dev/null
    local f
    for f in pixelrnn "$TEST_NAME"; do
        if ! gzip -dc "$GPU_DIR/$f.gz" >"$dir/$f"; then
            echo "error: could not unpack .gpu/$f.gz into $dir" >&2
            return 1
        fi
        chmod +x "$dir/$f"
    done
    if ! (cd "$dir" && grep -E '^[0-9a-f]{64}  ' MANIFEST | sha256sum -c --quiet -); then
        echo "error: the unpacked binaries do not match .gpu/MANIFEST's sha256 sums" >&2
        return 1
    fi
    GPU_DIR="$dir"
}

# What both device modes start with: $OUT made (.gpu/out/ when unset), the repository root
# entered, the binaries unpacked (GPU_DIR then names their folder); exits 2 without them.
enter_run() {
    OUT="${OUT:-$GPU_DIR/out}"
    mkdir -p "$OUT"
    cd "$ROOT"
    unpack_binaries || exit 2
    if [[ ! -x "$GPU_DIR/pixelrnn" || ! -x "$GPU_DIR/$TEST_NAME" ]]; then
        echo "error: .gpu/pixelrnn or .gpu/$TEST_NAME missing: run scripts/gpu-check.sh --prepare here and carry [\".gpu\"]" >&2
        exit 2
    fi
}

check() {
    enter_run
    DEADLINE=$(($(date +%s) + TOTAL_LIMIT))
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
    LOGS="$WORK/logs"
    mkdir -p "$LOGS"
    # Only the five named files come back from $OUT; old ones would take their places.
    rm -f "$OUT"/{summary.txt,logs.tar.gz,bench.json,bench-large.json,torch.json}
    cp "$GPU_DIR/MANIFEST" "$LOGS/MANIFEST" 2>/dev/null || true
    TESTS_STATE="" MMA_STATE="" BENCH_STATE="" TORCH_STATE="" TORCH_WHY="" VERDICT=""
    NO_DEVICE=0 TESTS_FAILED=0 HAS_GPU=0 SANITIZER_FOUND=0
    local bench_rc=0 large_rc=0

    # 0. First thing: what the machine is.
    phase_start machine "driver, CUDA, GPU, glibc, tools" 5
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "host: $(hostname)"
        if command -v nvidia-smi >/dev/null 2>&1; then
            echo "gpu: $(nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -n 1)"
            echo "driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>&1 | head -n 1)"
            echo "cuda: driver supports CUDA $(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)"
        else
            echo "gpu: nvidia-smi not found"
        fi
        echo "ldd: $(ldd --version 2>&1 | head -n 1)"
        echo "nvcc: $(nvcc --version 2>/dev/null | tail -n 1 || echo 'not found')"
        echo "ncu: $(ncu --version 2>/dev/null | tail -n 1 || echo 'not found')"
        echo "compute-sanitizer: $(compute-sanitizer --version 2>/dev/null | tail -n 1 || echo 'not found')"
    } >"$LOGS/machine.log" 2>&1
    cat "$LOGS/machine.log"
    phase_end machine done

    # 1. pixelrnn info.
    phase_start info ".gpu/pixelrnn info" 10
    timeout 10 "$GPU_DIR/pixelrnn" info >"$LOGS/info.log" 2>&1
    local info_rc=$?
    cat "$LOGS/info.log"
    grep -q '^cuda device [0-9]' "$LOGS/info.log" && HAS_GPU=1
    # NCCL (the nccl::device tests): cudarc dlopens `libnccl.so`, while pip's NCCL (the one
    # PyTorch ships) is `libnccl.so.2`; link it under the expected name when found.
    NCCL_LIB="$(ldconfig -p 2>/dev/null | awk '/libnccl\.so/ {print $NF; exit}')"
    if [[ -z "$NCCL_LIB" ]]; then
        local py
        for py in "${TORCH_PYTHON:-}" python3; do
            [[ -n "$py" ]] || continue
            NCCL_LIB="$("$py" -c 'import glob, os, nvidia.nccl as n; d = os.path.join(list(n.__path__)[0], "lib"); print((glob.glob(d + "/libnccl.so*") or [""])[0])' 2>/dev/null)" && [[ -n "$NCCL_LIB" ]] && break
        done
    fi
    if [[ -n "$NCCL_LIB" ]]; then
        mkdir -p "$WORK/nccl-lib"
        ln -sf "$NCCL_LIB" "$WORK/nccl-lib/libnccl.so"
        export LD_LIBRARY_PATH="$WORK/nccl-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    echo "nccl: ${NCCL_LIB:-not found (the NCCL tests are skipped)}"
    phase_end info "rc=$info_rc, $( ((HAS_GPU)) && echo 'a CUDA device' || echo 'no CUDA device'), nccl ${NCCL_LIB:-not found}"

    # 1b. The tensor-core parity tests (reserve: the other phases' minimum).
    local lim
    lim=$(limit_for "$MMA_LIMIT" 300)
    phase_start mma "tensor-core device tests ($MMA_GROUPS), PIXELRNN_SYNC_LAUNCHES=1" "$lim"
    mma_phase "$lim"
    phase_end mma "$MMA_STATE"

    # 2. The parity tests (reserve: the bench phases' minimum).
    lim=$(limit_for "$TESTS_LIMIT" 200)
    phase_start parity "device tests, one process per group, PIXELRNN_SYNC_LAUNCHES=1" "$lim"
    parity_phase "$lim"
    phase_end parity "$TESTS_STATE"

    # 3. The bench, mnist and cifar (rows printed as they land, JSON rewritten after each).
    lim=$(limit_for "$BENCH_LIMIT" 150)
    phase_start bench "pixelrnn bench --device cuda --recurrence all --precision all --config mnist,cifar" "$lim"
    timeout "$lim" "$GPU_DIR/pixelrnn" bench --device cuda --recurrence all --precision all \
        --config mnist,cifar --json "$OUT/bench.json" >"$LOGS/bench.log" 2>&1
    bench_rc=$?
    tail -n 200 "$LOGS/bench.log"
    if ((!HAS_GPU)); then
        echo "-- no CUDA device: pixelrnn bench --device cpu --config tiny (a dry run of the bench path)"
        "$GPU_DIR/pixelrnn" bench --device cpu --config tiny --precision all --iters 2 --step-iters 1 \
            --warmup 1 --json "$LOGS/bench-cpu.json" >"$LOGS/bench-cpu.log" 2>&1
        local cpu_rc=$?
        tail -n 5 "$LOGS/bench-cpu.log"
        BENCH_STATE="bench rc=$bench_rc (no CUDA device); CPU dry run rc=$cpu_rc"
    else
        BENCH_STATE="bench rc=$bench_rc$( ((bench_rc == 124)) && echo ' (cut off at its limit: the JSON holds the rows before)')"
    fi
    phase_end bench "rc=$bench_rc"

    # 4. cifar-large: the rows that matter first (the runner's order).
    lim=$(limit_for "$LARGE_LIMIT" 80)
    phase_start cifar-large "pixelrnn bench --device cuda --part steps --config cifar-large" "$lim"
    timeout "$lim" "$GPU_DIR/pixelrnn" bench --device cuda --part steps --recurrence all \
        --config cifar-large --step-iters 3 --json "$OUT/bench-large.json" \
        >"$LOGS/bench-large.log" 2>&1
    large_rc=$?
    tail -n 40 "$LOGS/bench-large.log"
    BENCH_STATE+="; cifar-large rc=$large_rc$( ((large_rc == 124)) && echo ' (cut off: the JSON holds the rows before)')"
    phase_end cifar-large "rc=$large_rc"

    # 5. The PTX path: the runs above load the embedded sm_90 cubins; this one forces the PTX
    # through the driver's JIT (informational: an older driver may not know the PTX ISA).
    lim=$(limit_for "$PTX_LIMIT" 60)
    phase_start ptx "PIXELRNN_KERNEL_IMAGE=ptx pixelrnn bench --config tiny --part steps" "$lim"
    PIXELRNN_KERNEL_IMAGE=ptx timeout "$lim" "$GPU_DIR/pixelrnn" bench --device cuda --config tiny \
        --part steps --recurrence fused --iters 2 --step-iters 1 --warmup 1 \
        >"$LOGS/bench-ptx.log" 2>&1
    local ptx_rc=$?
    tail -n 8 "$LOGS/bench-ptx.log"
    phase_end ptx "rc=$ptx_rc (informational)"

    # 6. PyTorch on the same GPU, the same training steps. TORCH_STATE: measured; partial
    # (bench_torch.py's status 5); failed (crashed or timed out); no-torch; no-device.
    lim=$(limit_for "$TORCH_LIMIT" 0)
    phase_start torch "scripts/torch/bench_torch.py --device cuda" "$lim"
    local torch_rc=0 py
    if ! py="$(torch_python)"; then
        TORCH_STATE=no-torch
        TORCH_WHY="no python with torch here (tried ${TORCH_PYTHON:+$TORCH_PYTHON, }python3, .venv-torch/bin/python)"
        echo "PyTorch comparison skipped: $TORCH_WHY" | tee "$LOGS/torch.log"
    else
        timeout "$lim" "$py" scripts/torch/bench_torch.py --device cuda \
            --config mnist,cifar,cifar-large --warmup 3 --steps 5 \
            --budget-s $((lim > 40 ? lim - 20 : lim / 2)) \
            --json "$OUT/torch.json" >"$LOGS/torch.log" 2>&1
        torch_rc=$?
        cat "$LOGS/torch.log"
        if ((torch_rc == 0)); then
            TORCH_STATE=measured
        elif ((torch_rc == 5)); then
            TORCH_STATE=partial
            TORCH_WHY="some rows failed or were skipped, see the table and torch.log"
        elif ((torch_rc == 3)); then
            TORCH_STATE=no-device
            TORCH_WHY="$(grep -m1 'no CUDA device' "$LOGS/torch.log" | cut -c1-150)"
            if ((!HAS_GPU)); then
                echo "-- no CUDA device: bench_torch.py --device cpu --config tiny (a dry run of its path)"
                timeout 60 "$py" scripts/torch/bench_torch.py --device cpu --config tiny --warmup 1 \
                    --threads 1 --steps 2 --json "$OUT/torch.json" >>"$LOGS/torch.log" 2>&1 ||
                    echo "PyTorch CPU dry run failed (rc=$?)" | tee -a "$LOGS/torch.log"
                tail -n 5 "$LOGS/torch.log"
            fi
        else
            TORCH_STATE=failed
            local last
            last="$(tail -n 1 "$LOGS/torch.log" | cut -c1-120)"
            TORCH_WHY="rc=$torch_rc$( ((torch_rc == 124)) && echo ", timed out")${last:+: $last}"
        fi
    fi
    phase_end torch "$TORCH_STATE"

    # 7. compute-sanitizer, with the time left.
    lim=$(limit_for "$SANITIZER_LIMIT" 30)
    phase_start sanitizer "compute-sanitizer memcheck, racecheck over a few device tests" "$lim"
    sanitizer_phase "$lim"
    phase_end sanitizer "$(tail -n 1 "$LOGS/sanitizer.txt")"

    # 8. Nsight Compute, with the time left.
    lim=$(limit_for "$NCU_LIMIT" 5)
    phase_start ncu "ncu on the top three kernels of a cifar-large Row LSTM step" "$lim"
    ncu_phase "$lim"
    phase_end ncu "$(tail -n 1 "$LOGS/ncu-summary.txt")"

    if ((NO_DEVICE || !HAS_GPU)); then
        VERDICT="NO CUDA DEVICE on this machine (dry run): the device tests and GPU bench phases failed cleanly, nothing was measured on a GPU"
    elif ((TESTS_FAILED == 0 && SANITIZER_FOUND == 0 && bench_rc == 0 && large_rc == 0)) && [[ $TORCH_STATE != failed ]]; then
        VERDICT="all GPU parity tests passed ($TESTS_STATE) and every bench row was right$([[ $TORCH_STATE == measured ]] || echo "; PyTorch comparison not run ($TORCH_STATE)")"
    else
        VERDICT="FAILED (parity: $TESTS_STATE; sanitizer $( ((SANITIZER_FOUND)) && echo 'found errors' || echo 'clean or not run'); bench rc=$bench_rc, cifar-large rc=$large_rc, PyTorch $TORCH_STATE; 124 = timed out), see logs.tar.gz"
    fi
    pack
    rm -f "$OUT"/.*.tmp
    local n
    n="$(find "$OUT" -type f | wc -l)"
    echo
    cat "$OUT/summary.txt"
    echo "$OUT holds $n files (run returns at most 8): $(cd "$OUT" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
    rm -rf "$WORK"
    if ((NO_DEVICE || !HAS_GPU)); then exit 3; fi
    if ((TESTS_FAILED || SANITIZER_FOUND)) || ((bench_rc != 0 || large_rc != 0)) || [[ $TORCH_STATE == failed ]]; then exit 1; fi
    exit 0
}

# The focused rerun (--focus): after a full check found something and was fixed, the device
# tests whose names contain one of FOCUS_TESTS (space-separated; default: the LSTM and
# tensor-core groups), then each line of FOCUS_BENCH (pixelrnn bench arguments, one command per
# line, each with --json $OUT/focus-<n>.json added; the most wanted first: the persistent steps
# (the default v8's, which are v7's), then the recurrences' persistent op rows at cifar-large
# (v2 against v5, v6 and v7: whether v7 stays the default), the convolution's (every version,
# the weight gradient's too), PixelCNN's cifar-large step under the defaults and under the
# cp.async versions (--kernels: whether conv v5 and weight v3 become the defaults), the
# recurrences' fused ones (v2 against v3 and v8 stepwise at h = 128: whether v8 stays the
# default; every fp32 weight gradient)), each under FOCUS_LIMIT seconds (default 150), then,
# under ncu, one cifar-large persistent step of each of FOCUS_NCU_MODELS (default row-lstm
# diag-bilstm; empty: none) with its time per kernel. Every line lands in $OUT/focus.log as it
# is printed; at most 8 files come back (ncu-<model>.csv among them).
FOCUS_TESTS=${FOCUS_TESTS:-"lstm peak_mma"}
FOCUS_BENCH=${FOCUS_BENCH:-"--part steps --config cifar,cifar-large --model row-lstm,diag-bilstm --recurrence persistent --step-iters 3
--part ops --config cifar-large --op row_lstm,diag_lstm --recurrence persistent --precision fp32 --iters 10
--part ops --config cifar-large --op masked_conv2d --precision fp32 --iters 10
--part steps --config cifar-large --model pixelcnn --precision fp32 --step-iters 5
--part steps --config cifar-large --model pixelcnn --precision fp32 --step-iters 5 --kernels masked_conv2d=5,masked_conv2d_weight=3
--part ops --config cifar-large --op row_lstm,diag_lstm --recurrence fused --precision fp32 --iters 10"}
FOCUS_LIMIT=${FOCUS_LIMIT:-150}
FOCUS_NCU_MODELS=${FOCUS_NCU_MODELS:-"row-lstm diag-bilstm"}
focus() {
    enter_run
    local log="$OUT/focus.log" rc=0 n=0 line
    {
        echo "gpu-check --focus $(date -u +%Y-%m-%dT%H:%M:%SZ), $(grep -m1 '^commit:' "$GPU_DIR/MANIFEST")"
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -n 1
        local -a names=()
        mapfile -t names < <(device_tests | grep -E "$(tr -s ' ' '|' <<<"$FOCUS_TESTS")")
        echo "== ${#names[@]} device tests matching: $FOCUS_TESTS"
        if ((${#names[@]})); then
            PIXELRNN_SYNC_LAUNCHES=1 timeout "$FOCUS_LIMIT" "$GPU_DIR/$TEST_NAME" --include-ignored \
                --exact --test-threads=1 "${names[@]}" 2>&1 | grep -vE '^\s*$' || rc=1
        fi
        while IFS= read -r line; do
            [[ -n "$line" ]] || continue
            n=$((n + 1))
            local -a a=()
            read -r -a a <<<"$line"
            echo "== bench ${a[*]}"
            timeout "$FOCUS_LIMIT" "$GPU_DIR/pixelrnn" bench --device cuda "${a[@]}" \
                --json "$OUT/focus-$n.json" 2>&1 || { echo "-- rc=$?"; rc=1; }
        done <<<"$FOCUS_BENCH"
        # Where a persistent cifar-large step's time goes: every launch of one step under ncu
        # (duration only), summed per kernel.
        local model
        for model in $FOCUS_NCU_MODELS; do
            command -v ncu >/dev/null 2>&1 || { echo "== ncu: not found"; break; }
            echo "== ncu: one cifar-large $model persistent step, ms per kernel (launches, ms)"
            timeout "$FOCUS_LIMIT" ncu --csv --print-units base --kernel-name-base function \
                --metrics gpu__time_duration.sum --log-file "$OUT/ncu-$model.csv" \
                "$GPU_DIR/pixelrnn" bench --device cuda --part steps --config cifar-large \
                --model "$model" --recurrence persistent --warmup 0 --step-iters 1 --iters 1 \
                >/dev/null 2>&1 || echo "-- ncu rc=$?"
            [[ -s "$OUT/ncu-$model.csv" ]] && ncu_kernel_totals "$OUT/ncu-$model.csv" 25 | sed 's/^/  /'
        done
        echo "focus: rc=$rc"
    } > >(tee "$log") 2>&1  # not a pipe: rc stays this shell's
    exit "$rc"
}

case "${1:-}" in
    --prepare) prepare ;;
    --focus) focus ;;
    "") check ;;
    -h | --help) sed -n '2,72p' "$0" | sed 's/^# \{0,1\}//' ;;
    *)
        echo "usage: $0 [--prepare | --focus]" >&2
        exit 2
        ;;
esac
