"""Issue 8's comparison harness: one training step (forward, mean NLL, backward, RMSProp;
batch 16) of the PyTorch reference models (pixelrnn_ref.py, eager, fp32) and of pixelrnn's
criterion bench `train_step`, on the same machine, in one run, alternating, median of rounds.

    .venv-torch/bin/python scripts/torch/bench_torch.py                  # all configs, both
    .venv-torch/bin/python scripts/torch/bench_torch.py --only pixelcnn --rounds 3
    .venv-torch/bin/python scripts/torch/bench_torch.py --torch-only

pixelrnn is timed through `cargo bench --bench train_step -- <id>` (its fused recurrence;
`--unfused` for the other), so build it first (`cargo bench --bench train_step --no-run`).
PyTorch runs with `--threads` threads (default 2, like the rayon pool on this machine).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixelrnn_ref import Config, PixelModel  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="PyTorch steps timed per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="", help="substring of 'kind/bench id' to select")
    ap.add_argument("--unfused", action="store_true", help="pixelrnn's unfused recurrence")
    ap.add_argument("--torch-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = [c for c in CASES if args.only in f"{c[0]}/{c[1]}"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
          f"{args.rounds} rounds (medians)")
    for case in cases:
        tt, pp = [], []
        for _ in range(args.rounds):
            tt.append(torch_step_ms(case, args.steps))
            if not args.torch_only:
                pp.append(pixelrnn_step_ms(case, args.unfused))
        t = statistics.median(tt)
        line = f"{case[0]:12} {case[1]:28} torch {t:9.1f} ms"
        if pp:
            p = statistics.median(pp)
            line += f"   pixelrnn {p:9.1f} ms   torch/pixelrnn {t / p:5.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
