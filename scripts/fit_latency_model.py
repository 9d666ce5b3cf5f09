#!/usr/bin/env python3
"""Fits the three times of `pixelrnn profile`'s latency model (src/profile/latency.rs) to the
training steps the first device run measured, and prints how well the fit holds.

The measured steps are those of docs/benchmarks.md, "First device run" (an H200, 2026-12-04,
binaries of 6a07691, fp32, median step times in ms; the rows that ran). The counts come from
`pixelrnn profile --json` files of the same steps under that commit's kernel versions
(docs/kernels.md, "The latency model", has the commands). Each kernel of a profiled step is
modelled as in src/profile/latency.rs, from its per-kernel means (the Rust model works per
launch; the two agree where a kernel's launches share a shape):

    launches x (max(roofline work, load_s x rounds + shared_s x shared requests
                                   + fma_s x FMA instructions) + launch)

with rounds, shared requests and FMA instructions per warp of a full wave (warps per SM x 132
SMs). The fit minimises the squared logarithms of modelled / measured over a grid, then
leaves each config out in turn and predicts it from the others.

Usage: python3 scripts/fit_latency_model.py PROFILE.json [...] [--predict PROFILE.json ...]

The files after --predict (profiles of other kernel versions: today's defaults, say) are not
fitted; their steps are modelled with the fitted times and printed next to their roofline.
"""

import itertools
import json
import math
import sys

# The first device run's fp32 steps (ms): docs/benchmarks.md, "First device run".
MEASURED_MS = {
    ("mnist", "pixelcnn"): 2.898,
    ("mnist", "row-lstm fused"): 14.077,
    ("mnist", "row-lstm unfused"): 14.833,
    ("mnist", "row-lstm persistent"): 9.452,
    ("mnist", "diag-bilstm fused"): 42.327,
    ("mnist", "diag-bilstm unfused"): 40.430,
    ("mnist", "diag-bilstm persistent"): 26.624,
    ("cifar", "pixelcnn"): 2.360,
    ("cifar", "row-lstm fused"): 15.394,
    ("cifar", "row-lstm unfused"): 16.042,
    ("cifar", "row-lstm persistent"): 9.391,
    ("cifar", "diag-bilstm fused"): 44.649,
    ("cifar", "diag-bilstm unfused"): 41.143,
    ("cifar-large", "pixelcnn"): 9.629,
    ("cifar-large", "row-lstm fused"): 180.641,
    ("cifar-large", "row-lstm unfused"): 185.561,
    ("cifar-large", "row-lstm persistent"): 115.875,
    ("cifar-large", "diag-bilstm unfused"): 438.498,
}

SMS = 132
LOAD_NS = range(40, 402, 10)
SHARED_NS = range(0, 42, 2)
FMA_NS = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5]


def kernel_terms(step):
    """(launches, roofline work per launch, rounds, shared requests, FMA instructions per warp)."""
    launch_s = step["roofline"]["launch_s"]
    for k in step["kernels"]:
        n = k["launches"]
        work = k["estimate_s"] / n - launch_s
        warps = (k["warps_per_sm"] or 0) * SMS
        if warps == 0:
            yield n, work, 0.0, 0.0, 0.0
            continue
        yield (
            n,
            work,
            k["load_rounds"] / n / warps,
            k["shared_requests"] / n / warps,
            k["flops"] / 64 / n / warps,
        )


def modelled_ms(terms, launch_s, load_s, shared_s, fma_s):
    return 1e3 * sum(
        n * (max(work, load_s * r + shared_s * sh + fma_s * f) + launch_s)
        for n, work, r, sh, f in terms
    )


def fit(steps):
    best = None
    for g, s, f in itertools.product(LOAD_NS, SHARED_NS, FMA_NS):
        p = (g * 1e-9, s * 1e-9, f * 1e-9)
        e = sum(math.log(modelled_ms(t, ls, *p) / m) ** 2 for _, m, t, ls in steps)
        if best is None or e < best[0]:
            best = (e, p)
    return best


def profiled_steps(paths):
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        yield from doc["steps"]


def main(paths, predict):
    steps = []
    for step in profiled_steps(paths):
        key = (step["config"], step["target"])
        if key in MEASURED_MS:
            terms = list(kernel_terms(step))
            steps.append((key, MEASURED_MS[key], terms, step["roofline"]["launch_s"]))
    if not steps:
        sys.exit("no profiled step matches a measured one (see MEASURED_MS)")
    e, p = fit(steps)
    print(
        f"fit over {len(steps)} steps: load {p[0] * 1e9:.0f} ns, shared {p[1] * 1e9:.0f} ns, "
        f"FMA {p[2] * 1e9:.2f} ns per warp; rms log error {math.sqrt(e / len(steps)):.3f} "
        f"(a factor of {math.exp(math.sqrt(e / len(steps))):.2f})"
    )
    print("| config | step | measured ms | roofline ms | roofline / measured | model ms | model / measured |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (cfg, target), m, terms, ls in steps:
        roof = 1e3 * sum(n * (work + ls) for n, work, *_ in terms)
        mod = modelled_ms(terms, ls, *p)
        print(f"| {cfg} | {target} | {m:.2f} | {roof:.2f} | {roof / m:.2f} | {mod:.2f} | {mod / m:.2f} |")
    for cfg in sorted({k[0] for k, *_ in steps}):
        rest = [s for s in steps if s[0][0] != cfg]
        if not rest:
            continue
        _, q = fit(rest)
        ratios = ", ".join(
            f"{t} {modelled_ms(terms, ls, *q) / m:.2f}x"
            for (c, t), m, terms, ls in steps
            if c == cfg
        )
        print(
            f"{cfg} left out: fit load {q[0] * 1e9:.0f} / shared {q[1] * 1e9:.0f} / FMA "
            f"{q[2] * 1e9:.2f} ns; {cfg} predicted / measured: {ratios}"
        )
    if predict:
        print("| config | step | kernels | roofline ms | model ms |")
        print("|---|---|---|---:|---:|")
        for step in profiled_steps(predict):
            terms = list(kernel_terms(step))
            ls = step["roofline"]["launch_s"]
            roof = 1e3 * sum(n * (work + ls) for n, work, *_ in terms)
            top = sorted(
                ((modelled_ms([t], ls, *p), k["kernel"]) for t, k in zip(terms, step["kernels"])),
                reverse=True,
            )[:2]
            names = ", ".join(f"`{name}` {ms:.2f}" for ms, name in top)
            print(
                f"| {step['config']} | {step['target']} | {names} | {roof:.2f} | "
                f"{modelled_ms(terms, ls, *p):.2f} |"
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    cut = args.index("--predict") if "--predict" in args else len(args)
    if cut == 0:
        sys.exit(__doc__)
    main(args[:cut], args[cut + 1 :])
