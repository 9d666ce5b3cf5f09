"""Issue 8's comparison harness: one training step (forward, mean NLL, backward, RMSProp;
batch 16) of the PyTorch reference models (pixelrnn_ref.py, eager, fp32) and of pixelrnn's
criterion bench `train_step`, on the same machine, in one run, alternating, median of rounds.

    .venv-torch/bin/python scripts/torch/bench_torch.py                  # all configs, both
    .venv-torch/bin/python scripts/torch/bench_torch.py --only pixelcnn --rounds 3
    .venv-torch/bin/python scripts/torch/bench_torch.py --torch-only

pixelrnn is timed through `cargo bench --bench train_step -- <id>` (its fused recurrence;
`--unfused` for the other), so build it first (`cargo bench --bench train_step --no-run`).
PyTorch runs with `--threads` threads (default 2, like the rayon pool on this machine).

The GPU side of issue 6 (PyTorch only; `pixelrnn bench` times pixelrnn's side, and
scripts/gpu-check.sh prints the two side by side):

    python3 scripts/torch/bench_torch.py --device cuda --json torch.json
    python3 scripts/torch/bench_torch.py --device cuda --config mnist --only row-lstm
    .venv-torch/bin/python scripts/torch/bench_torch.py --device cpu --config tiny   # dry run

`--config` (implied by `--device cuda`) selects the sizes of `pixelrnn bench` (src/bench/config.rs
CONFIGS: mnist, cifar, cifar-large, tiny) and times PyTorch alone, on `--device`: the same
step as `pixelrnn bench`'s step rows (the batch of `step_images` uploaded each step, 256-way
softmax, RMSProp lr 1e-3 decay 0.95), `--warmup` untimed steps, then the median of `--steps`
steps. On CUDA: strict fp32 (TF32 off for matmuls and cuDNN convolutions), cuDNN
convolutions with `cudnn.benchmark` autotuning (off with `--no-cudnn-benchmark`), each step
timed with two torch.cuda.Events on an idle device (as pixelrnn times its steps). Rows that
would start after `--budget-s` seconds (counted from the start of this script, the import of
torch included) are skipped and listed, so that a caller's time limit does not cut a row
off; the JSON is rewritten after every row. Exit status: 0 every row measured, 5 a row
failed (its error is in the row) or was skipped, 3 `--device cuda` without a CUDA device,
4 PyTorch missing, 2 bad arguments, 1 the script itself failed.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # --budget-s counts from here: importing torch can take seconds

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

try:
    import torch
except ImportError:
    print(f"bench_torch.py: PyTorch is not installed for {sys.executable} "
          "(scripts/torch/install.sh makes .venv-torch/ with it)", file=sys.stderr)
    raise SystemExit(4)

sys.dont_write_bytecode = True  # no __pycache__/ left in the repository by the import below
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixelrnn_ref import KINDS, Config, PixelModel  # noqa: E402

BATCH = 16
# (kind, bench id, H, W, C, binary, layers, hidden, head): the cases of benches/train_step.rs.
CASES = [
    ("pixelcnn", "default_28x28x1_bin_L7_h32", 28, 28, 1, True, 7, 32, 64),
    ("pixelcnn", "mnist_28x28x1_L7_h16", 28, 28, 1, False, 7, 16, 32),
    ("pixelcnn", "cifar_32x32x3_L4_h32", 32, 32, 3, False, 4, 32, 64),
    ("row-lstm", "mnist_28x28x1_L7_h16", 28, 28, 1, False, 7, 16, 32),
    ("row-lstm", "cifar_32x32x3_L4_h32", 32, 32, 3, False, 4, 32, 64),
    ("diag-bilstm", "mnist_28x28x1_L7_h16", 28, 28, 1, False, 7, 16, 32),
    ("diag-bilstm", "cifar_32x32x3_L4_h32", 32, 32, 3, False, 4, 32, 64),
]

# name: (H, W, C, layers, hidden, head, batch). The sizes of `pixelrnn bench` (src/bench/config.rs,
# CONFIGS; keep in sync). Every JSON row carries `shape` in the bench's label format, so
# scripts/gpu-check.sh can refuse to compare rows of different sizes.
BENCH_CONFIGS = {
    "mnist": (28, 28, 1, 7, 16, 32, 16),
    "cifar": (32, 32, 3, 4, 32, 64, 16),
    "cifar-large": (32, 32, 3, 12, 128, 128, 16),
    "tiny": (8, 8, 1, 1, 4, 8, 2),
}
DEFAULT_GPU_CONFIGS = "mnist,cifar,cifar-large"


def torch_step_ms(case, steps: int) -> float:
    kind, _, h, w, c, binary, layers, hidden, head = case
    cfg = Config(kind, h, w, c, binary, layers, hidden, head)
    torch.manual_seed(0)
    model = PixelModel(cfg)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.95, eps=1e-8)
    hi = 2 if binary else 256
    n = BATCH * h * w * c
    images = (torch.arange(n) * 7919 % hi).to(torch.uint8).view(BATCH, h, w, c)
    times = []
    for s in range(steps + 2):
        t0 = time.perf_counter()
        x = model.network_input(images)
        t = images.permute(0, 3, 1, 2)
        loss = model.nll(model(x), t).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if s >= 2:  # two warm-up steps
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def pixelrnn_step_ms(case, unfused: bool) -> float:
    kind, name = case[0], case[1]
    group = kind.replace("-", "_") + "_train_step"
    variant = "cpu" if kind == "pixelcnn" else ("cpu_unfused" if unfused else "cpu_fused")
    bench_id = f"{group}/{variant}/{name}"
    out = subprocess.run(
        ["cargo", "bench", "--bench", "train_step", "--", "--warm-up-time", "1",
         "--measurement-time", "2", f"^{bench_id}$"],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) ", out)
    if not m:
        raise RuntimeError(f"no time for {bench_id} in:\n{out}")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_json(path: str | None, report: dict) -> None:
    """Rewritten after every row, so a run killed by a time limit leaves what it measured."""
    if not path:
        return
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------
# CPU mode without --config: pixelrnn and PyTorch alternating (issue 8)
# ---------------------------------------------------------------------------------------

def run_alternating(args) -> int:
    torch.set_num_threads(args.threads)
    cases = [c for c in CASES if args.only in f"{c[0]}/{c[1]}"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
          f"{args.rounds} rounds (medians)")
    report = {"tool": "bench_torch.py", "mode": "cpu alternating", "torch": torch.__version__,
              "device": f"cpu ({torch.get_num_threads()} threads)", "date": utc_now(),
              "rounds": args.rounds, "steps": args.steps, "rows": []}
    for case in cases:
        tt, pp = [], []
        for _ in range(args.rounds):
            tt.append(torch_step_ms(case, args.steps))
            if not args.torch_only:
                pp.append(pixelrnn_step_ms(case, args.unfused))
        t = statistics.median(tt)
        line = f"{case[0]:12} {case[1]:28} torch {t:9.1f} ms"
        row = {"model": case[0], "config": case[1], "ms": t, "pixelrnn_ms": None,
               "pixelrnn_recurrence": None if case[0] == "pixelcnn" else
               ("unfused" if args.unfused else "fused")}
        if pp:
            p = statistics.median(pp)
            line += f"   pixelrnn {p:9.1f} ms   torch/pixelrnn {t / p:5.2f}x"
            row["pixelrnn_ms"] = p
        print(line, flush=True)
        report["rows"].append(row)
        write_json(args.json, report)
    return 0


# ---------------------------------------------------------------------------------------
# --config mode: PyTorch alone at the sizes of `pixelrnn bench` (CUDA or CPU)
# ---------------------------------------------------------------------------------------

def shape_label(name: str) -> str:
    """`28x28x1 L7 h16 D32 B16`, as `BenchConfig::label` in src/bench/config.rs."""
    h, w, c, layers, hidden, head, batch = BENCH_CONFIGS[name]
    return f"{h}x{w}x{c} L{layers} h{hidden} D{head} B{batch}"


def step_images(name: str) -> torch.Tensor:
    """`step_images` of src/bench/steps.rs: pixel i of the batch (NHWC order) is (i * 7919) % 256."""
    h, w, c, _, _, _, batch = BENCH_CONFIGS[name]
    n = batch * h * w * c
    return (torch.arange(n, dtype=torch.int64) * 7919 % 256).to(torch.uint8).view(batch, h, w, c)


def train_step(model: PixelModel, opt, images_host: torch.Tensor, device: torch.device):
    """One step as `pixelrnn bench` times it: the host batch is uploaded (pixelrnn builds and
    uploads its input and targets every step), forward, mean NLL, backward, RMSProp."""
    images = images_host.to(device)
    x = model.network_input(images)
    loss = model.nll(model(x), images.permute(0, 3, 1, 2)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def time_case(kind: str, name: str, device: torch.device, args) -> dict:
    """Builds the model, runs the warm-up and the timed steps; one JSON row."""
    h, w, c, layers, hidden, head, batch = BENCH_CONFIGS[name]
    row = {"model": kind, "config": name, "shape": shape_label(name), "batch": batch,
           "status": "ok", "ms": None, "ms_min": None, "wall_ms": None, "steps": 0,
           "loss": None, "peak_mib": None, "note": ""}
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = PixelModel(Config(kind, h, w, c, False, layers, hidden, head)).to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.95, eps=1e-8)
    images = step_images(name)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    # The first step's loss: a model at init predicts about uniformly, ln 256 = 5.55 nats.
    loss = float(train_step(model, opt, images, device).detach())
    row["loss"] = loss
    if not math.isfinite(loss):
        row["status"] = "WRONG"
        row["note"] = f"non-finite loss {loss}: not timed"
        return row
    for _ in range(max(args.warmup - 1, 0)):  # the step above was the first warm-up step
        train_step(model, opt, images, device)
    times, walls = [], []
    for _ in range(max(args.steps, 1)):
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)  # idle before, as pixelrnn's time_ms
            t0 = time.perf_counter()
            start.record()
            train_step(model, opt, images, device)
            end.record()
            end.synchronize()
            walls.append((time.perf_counter() - t0) * 1e3)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            train_step(model, opt, images, device)
            times.append((time.perf_counter() - t0) * 1e3)
            walls.append(times[-1])
    row["ms"] = statistics.median(times)
    row["ms_min"] = min(times)
    row["wall_ms"] = statistics.median(walls)
    row["steps"] = len(times)
    if cuda:
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    row["note"] = f"{batch / (row['ms'] / 1e3):.0f} images/s"
    return row


def conv_fp32_precision() -> dict:
    """PyTorch's effective fp32 precision of cuDNN convolutions and of matmuls, as read back
    after the settings above: 'tf32' (TF32 on) or 'ieee' (full fp32). PyTorch >= 2.9 has the
    per-op `fp32_precision` attributes ('none' there means: inherit the backend's, then the
    global, then the legacy `allow_tf32` flag); older versions only the flag."""
    def resolve(*values: str | None) -> str | None:
        return next((v for v in values if v not in (None, "none")), None)
    cudnn = getattr(torch.backends.cudnn, "fp32_precision", None)
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    mm = getattr(getattr(torch.backends.cuda, "matmul", None), "fp32_precision", None)
    glob = getattr(torch.backends, "fp32_precision", None)
    conv_p = resolve(conv, cudnn, glob) or ("tf32" if torch.backends.cudnn.allow_tf32 else "ieee")
    mm_p = resolve(mm, glob) or ("tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee")
    return {"conv": conv_p, "matmul": mm_p, "conv_tf32": conv_p == "tf32",
            "source": "fp32_precision attributes" if conv is not None else "allow_tf32 flags"}


def setup_device(args) -> tuple[torch.device, dict]:
    """The device and its settings; exits with status 3 on `--device cuda` without one."""
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
        dev = torch.device("cpu")
        return dev, {"device": f"cpu ({torch.get_num_threads()} threads)",
                     "timer": "time.perf_counter around each step"}
    if not torch.cuda.is_available():
        why = ("a CPU-only build" if torch.version.cuda is None
               else f"built for CUDA {torch.version.cuda}, torch.cuda.is_available() is False")
        print(f"bench_torch.py: --device cuda: no CUDA device (torch {torch.__version__}: "
              f"{why})", file=sys.stderr)
        raise SystemExit(3)
    # Strict fp32, as pixelrnn's kernels: no TF32 in matmuls or cuDNN convolutions (on
    # Ampere and later PyTorch would otherwise run convolutions in TF32 by default).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    dev = torch.device("cuda", 0)
    torch.cuda.set_device(dev)
    props = torch.cuda.get_device_properties(dev)
    return dev, {
        "device": f"cuda:0 {props.name}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "tf32": {"matmul": bool(torch.backends.cuda.matmul.allow_tf32),
                 "cudnn": bool(torch.backends.cudnn.allow_tf32)},
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "fp32_precision": conv_fp32_precision(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "timer": "torch.cuda.Event pair around each step, device synchronized before",
    }


def run_configs(args) -> int:
    names = [n.strip() for n in args.config.split(",") if n.strip()]
    if names == ["all"]:
        names = list(BENCH_CONFIGS)
    bad = [n for n in names if n not in BENCH_CONFIGS]
    if bad:
        print(f"bench_torch.py: unknown config {', '.join(bad)} (known: "
              f"{', '.join(BENCH_CONFIGS)}, all)", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    bad = [m for m in models if m not in KINDS]
    if bad:
        print(f"bench_torch.py: unknown model {', '.join(bad)} (known: {', '.join(KINDS)})",
              file=sys.stderr)
        return 2
    device, info = setup_device(args)
    report = {"tool": "bench_torch.py", "mode": "configs", "torch": torch.__version__,
              "python": sys.version.split()[0], **info, "date": utc_now(),
              "unix_time": int(time.time()), "warmup": args.warmup, "steps": args.steps,
              "budget_s": args.budget_s, "complete": False, "rows": []}
    print(f"bench_torch.py on {info['device']}, torch {torch.__version__}, fp32"
          + (f" (TF32 off: matmul {info['tf32']['matmul']}, cuDNN {info['tf32']['cudnn']};"
             f" effective conv precision {info['fp32_precision']['conv']}),"
             f" cuDNN {info['cudnn']} benchmark={info['cudnn_benchmark']}"
             if device.type == "cuda" else "")
          + f"; {args.warmup} warm-up + median of {args.steps} steps; timer: {info['timer']}",
          flush=True)
    write_json(args.json, report)
    failed = 0
    # Configs in the given order (cheap ones first), every model of one config together.
    for name in names:
        for kind in models:
            if args.only not in f"{kind}/{name}":
                continue
            used = time.perf_counter() - T0
            if args.budget_s is not None and used > args.budget_s:
                row = {"model": kind, "config": name, "shape": shape_label(name),
                       "batch": BENCH_CONFIGS[name][6], "status": "skipped", "ms": None,
                       "note": f"over the {args.budget_s:g} s budget ({used:.0f} s used)"}
            else:
                try:
                    row = time_case(kind, name, device, args)
                except Exception as e:  # noqa: BLE001 (CUDA OOM too): one row, the rest still run
                    msg = " ".join(str(e).split())[:200]
                    row = {"model": kind, "config": name, "shape": shape_label(name),
                           "batch": BENCH_CONFIGS[name][6], "status": "error", "ms": None,
                           "note": f"{type(e).__name__}: {msg}"}
                finally:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            failed += row["status"] != "ok"
            ms = "-" if row["ms"] is None else f"{row['ms']:10.3f}"
            print(f"{kind:12} {name:12} {row['shape']:24} {ms:>10} ms  {row['status']}"
                  f"  {row['note']}", flush=True)
            report["rows"].append(row)
            write_json(args.json, report)
    report["complete"] = True
    report["seconds"] = round(time.perf_counter() - T0, 1)
    write_json(args.json, report)
    if args.json:
        print(f"rows written to {args.json}")
    return 5 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description="One training step of the PyTorch reference models: against pixelrnn on "
                    "the CPU (default), or alone at the sizes of `pixelrnn bench` (--config, "
                    "--device cuda). The module docstring has the details.")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu (default) or cuda (implies --config %s)" % DEFAULT_GPU_CONFIGS)
    ap.add_argument("--config", default=None,
                    help="sizes of `pixelrnn bench`, comma-separated (%s, all): time PyTorch "
                         "alone at them" % ", ".join(BENCH_CONFIGS))
    ap.add_argument("--model", default=",".join(KINDS),
                    help="models of the --config rows (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="PyTorch steps timed per round")
    ap.add_argument("--warmup", type=int, default=3,
                    help="untimed steps before timing (--config rows)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (--device cpu)")
    ap.add_argument("--only", default="",
                    help="substring of 'kind/bench id' (or 'kind/config') to select")
    ap.add_argument("--unfused", action="store_true", help="pixelrnn's unfused recurrence")
    ap.add_argument("--torch-only", action="store_true")
    ap.add_argument("--json", default=None, help="write the rows (and the settings) here")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="--config rows: skip the rows that would start after this many "
                         "seconds (they are listed as skipped)")
    ap.add_argument("--no-cudnn-benchmark", action="store_true",
                    help="CUDA: cuDNN's default algorithms instead of autotuned ones")
    args = ap.parse_args()
    if args.device == "cuda" and args.config is None:
        args.config = DEFAULT_GPU_CONFIGS
    if args.config is None:
        return run_alternating(args)
    return run_configs(args)


if __name__ == "__main__":
    raise SystemExit(main())
