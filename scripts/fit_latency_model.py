#!/usr/bin/env python3
"""Fits the six times of `pixelrnn profile`'s latency model (src/profile/latency.rs) to what the
first device run measured, and prints how well the fit holds.

The measurements are those of docs/benchmarks.md, "First device run" (an H200, 2026-12-04,
binaries of 6a07691, fp32): its training steps (median step times, the rows that ran) and its
persistent kernels' op rows ("Kernel versions side by side", one direction, 16 images). The
counts come from `pixelrnn profile --json` files of the same steps under that commit's kernel
versions, and of the mnist persistent steps under each persistent kernel version
(docs/kernels.md, "The latency model", has the commands). Each kernel of a profiled step is
modelled as in src/profile/latency.rs, from its chain per launch (the JSON's `chain` over its
launches: the Rust model works per launch; the two agree where a kernel's launches share a
shape):

    launches x (max(roofline work, chain . times) + launch)

where chain . times = load rounds x load_s + shared requests x shared_s + FMA instructions x
fma_s + block barriers x barrier_s + cluster barriers x cluster_s + warp operations x
warp_op_s, one warp's counts times the launch's waves.

The fit minimises the squared logarithms of modelled / measured over the steps (and, with
--with-kernels, the op rows too) by coordinate descent over a grid of each time, from several
starts; then leaves each config out in turn and predicts it from the others, and shows how the
op rows rank under the fitted times.

Usage: python3 scripts/fit_latency_model.py PROFILE.json [...] [--with-kernels]
                                            [--save FILE.json] [--predict PROFILE.json ...]

The files after --predict (profiles of other kernel versions: today's defaults, say) are not
fitted; their steps are modelled with the fitted times and printed next to their roofline.
--save writes the fitted steps and the matched op rows, cut to what the model reads and with
their measured times (`measured_ms`), to FILE.json: data/latency-profiles/first-device-run.json
is that file, which this script also reads (the stored times take precedence) and
tests/latency_fit.rs holds `H200_LATENCY` to. --save-predicted writes the --predict steps cut
the same way (data/latency-profiles/predicted.json: today's defaults and conv v5, whose
predictions docs/kernels.md lists and the test checks).
"""

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

# The first device run's persistent op rows (ms per launch: one direction, 16 images):
# docs/benchmarks.md, "Kernel versions side by side". Keyed by (config, kernel); each is
# matched to that kernel's mean launch in a profiled persistent step of the config (the mnist
# Diagonal's v3 forward is v2's kernel, so it has no row of its own).
MEASURED_KERNEL_MS = {
    ("cifar", "row_lstm_persistent_fwd_v1"): 0.341,
    ("cifar", "row_lstm_persistent_fwd_v2"): 0.359,
    ("cifar", "row_lstm_persistent_fwd_v4"): 0.805,
    ("cifar", "row_lstm_persistent_fwd_v5"): 0.294,
    ("cifar", "row_lstm_persistent_bwd_v1"): 1.561,
    ("cifar", "row_lstm_persistent_bwd_v2"): 0.476,
    ("cifar", "row_lstm_persistent_bwd_v3"): 1.343,
    ("cifar", "row_lstm_persistent_bwd_v4"): 1.668,
    ("cifar", "row_lstm_persistent_bwd_v5"): 0.964,
    ("mnist", "row_lstm_persistent_bwd_v1"): 0.948,
    ("mnist", "row_lstm_persistent_bwd_v2"): 0.344,
    ("mnist", "row_lstm_persistent_bwd_v3"): 0.774,
    ("mnist", "row_lstm_persistent_bwd_v4"): 0.806,
    ("mnist", "row_lstm_persistent_bwd_v5"): 0.628,
    ("mnist", "diag_lstm_persistent_fwd_v1"): 0.129,
    ("mnist", "diag_lstm_persistent_fwd_v2"): 0.501,
    ("mnist", "diag_lstm_persistent_fwd_v4"): 0.736,
    ("mnist", "diag_lstm_persistent_fwd_v5"): 0.481,
    ("mnist", "diag_lstm_persistent_bwd_v1"): 1.099,
    ("mnist", "diag_lstm_persistent_bwd_v2"): 0.533,
    ("mnist", "diag_lstm_persistent_bwd_v3"): 1.103,
    ("mnist", "diag_lstm_persistent_bwd_v4"): 1.326,
    ("mnist", "diag_lstm_persistent_bwd_v5"): 1.187,
}

# The chain's counts (the JSON's `chain` keys) and the grid of each one's time, ns. An
# instruction takes at least one issue cycle of its warp (0.5 ns at the H200's 1.98 GHz), so
# the shared requests', FMAs' and warp operations' grids start there.
ISSUE_NS = 0.5
TERMS = [
    ("load_rounds", "load", [x * 5 for x in range(0, 81)]),
    ("shared_requests", "shared", [ISSUE_NS] + list(range(1, 61))),
    ("fma_instructions", "FMA", [x * 0.05 for x in range(10, 101)]),
    ("barriers", "barrier", [x * 10 for x in range(0, 301)]),
    ("cluster_barriers", "cluster barrier", [x * 50 for x in range(0, 301)]),
    ("warp_ops", "warp op", [ISSUE_NS] + list(range(1, 81))),
]
# Where the descent starts (ns): the three-time fit of docs/kernels.md with the new times at
# zero, at typical latencies, and at the grids' middles.
STARTS = [
    (150, 18, 1.0, 0, 0, ISSUE_NS),
    (150, 18, 1.0, 40, 500, 15),
    (200, 30, 2.5, 300, 2500, 40),
]


def kernel_terms(step):
    """Per kernel: (launches, roofline work per launch, chain per launch: one count a term)."""
    launch_s = step["roofline"]["launch_s"]
    for k in step["kernels"]:
        n = k["launches"]
        work = k["estimate_s"] / n - launch_s
        chain = k["chain"]
        counts = tuple(chain[key] / n for key, _, _ in TERMS) if chain else (0.0,) * len(TERMS)
        yield n, work, counts


def modelled_ms(terms, launch_s, times):
    return 1e3 * sum(
        n * (max(work, sum(c * t for c, t in zip(counts, times))) + launch_s)
        for n, work, counts in terms
    )


def error(points, times):
    return sum(math.log(modelled_ms(t, ls, times) / m) ** 2 for _, m, t, ls in points)


def fit(points):
    """(squared log error, times in seconds) of the best coordinate descent over the grids."""
    best = None
    for start in STARTS:
        times = [x * 1e-9 for x in start]
        e = error(points, times)
        improved = True
        while improved:
            improved = False
            for i, (_, _, grid) in enumerate(TERMS):
                for ns in grid:
                    trial = times[:i] + [ns * 1e-9] + times[i + 1 :]
                    te = error(points, trial)
                    if te < e - 1e-12:
                        e, times, improved = te, trial, True
        if best is None or e < best[0]:
            best = (e, times)
    return best


def describe(times):
    return ", ".join(f"{name} {t * 1e9:.3g} ns" for (_, name, _), t in zip(TERMS, times))


def profiled_steps(paths):
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        yield from doc["steps"]


def kernel_points(steps):
    """The op rows matched to profiled persistent kernels: (key, measured ms, terms, launch)."""
    seen = {}
    for step in steps:
        ls = step["roofline"]["launch_s"]
        for term, k in zip(kernel_terms(step), step["kernels"]):
            key = (step["config"], k["kernel"])
            stored = step.get("measured_kernel_ms", {}).get(k["kernel"])
            measured = stored if stored is not None else MEASURED_KERNEL_MS.get(key)
            if measured is not None and key not in seen:
                n, work, counts = term
                seen[key] = (key, measured, [(1, work, counts)], ls)
    return [seen[k] for k in MEASURED_KERNEL_MS if k in seen]


def slim(step, measured_ms=None, rows=None):
    """`step` cut to what the model reads (and its measured times, for --save)."""
    keep = ["kernel", "launches", "estimate_s", "chain"]
    out = {
        "config": step["config"],
        "target": step["target"],
        "roofline": {"launch_s": step["roofline"]["launch_s"]},
        "kernels": [{f: k[f] for f in keep} for k in step["kernels"]],
    }
    if measured_ms is not None:
        out["measured_ms"] = measured_ms
    if rows:
        out["measured_kernel_ms"] = rows
    return out


def save(path, fitted, steps, all_steps, kernels):
    """Writes the fitted steps (with their measured times) and the steps that hold a matched
    op row (with those rows' times) to `path`."""
    by_step = {}
    for (cfg, kernel), m, _, _ in kernels:
        for step in all_steps:
            if step["config"] == cfg and any(k["kernel"] == kernel for k in step["kernels"]):
                by_step.setdefault(id(step), (step, {}))[1][kernel] = m
                break
    out = [
        slim(st, m, by_step.get(id(st), (None, None))[1])
        for st, (_, m, _, _) in zip(fitted, steps)
    ]
    out += [slim(st, rows=rows) for st, rows in by_step.values() if st not in fitted]
    write_steps(path, "--save", out)


def write_steps(path, flag, steps):
    """Writes `steps` (cut by `slim`) to `path`, as `flag` of this script does."""
    with open(path, "w") as fh:
        json.dump({"source": f"scripts/fit_latency_model.py {flag}", "steps": steps}, fh, indent=1)
        fh.write("\n")


def main(paths, predict, with_kernels, save_to=None, save_predicted=None):
    all_steps = list(profiled_steps(paths))
    steps = []
    fitted = []
    for step in all_steps:
        key = (step["config"], step["target"])
        if "measured_ms" in step or (key in MEASURED_MS and not step_uses_other_versions(step)):
            measured = step.get("measured_ms", MEASURED_MS.get(key))
            steps.append((key, measured, list(kernel_terms(step)), step["roofline"]["launch_s"]))
            fitted.append(step)
    if not steps:
        sys.exit("no profiled step matches a measured one (see MEASURED_MS)")
    kernels = kernel_points(all_steps)
    if save_to:
        save(save_to, fitted, steps, all_steps, kernels)
    points = steps + (kernels if with_kernels else [])
    e, p = fit(points)
    what = f"{len(steps)} steps" + (f" and {len(kernels)} op rows" if with_kernels else "")
    print(
        f"fit over {what}: {describe(p)}; rms log error {math.sqrt(e / len(points)):.3f} "
        f"(a factor of {math.exp(math.sqrt(e / len(points))):.2f})"
    )
    es = error(steps, p)
    print(f"over the steps alone: rms log error {math.sqrt(es / len(steps)):.3f} "
          f"(a factor of {math.exp(math.sqrt(es / len(steps))):.2f})")
    print("| config | step | measured ms | roofline ms | roofline / measured | model ms | model / measured |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (cfg, target), m, terms, ls in steps:
        roof = 1e3 * sum(n * (work + ls) for n, work, _ in terms)
        mod = modelled_ms(terms, ls, p)
        print(f"| {cfg} | {target} | {m:.2f} | {roof:.2f} | {roof / m:.2f} | {mod:.2f} | {mod / m:.2f} |")
    for cfg in sorted({k[0] for k, *_ in steps}):
        rest = [s for s in points if s[0][0] != cfg]
        if not rest:
            continue
        _, q = fit(rest)
        ratios = ", ".join(
            f"{t} {modelled_ms(terms, ls, q) / m:.2f}x"
            for (c, t), m, terms, ls in steps
            if c == cfg
        )
        print(f"{cfg} left out: fit {describe(q)}; {cfg} predicted / measured: {ratios}")
    if kernels:
        print("| config | kernel | measured ms | model ms | model / measured |")
        print("|---|---|---:|---:|---:|")
        for (cfg, kernel), m, terms, ls in kernels:
            mod = modelled_ms(terms, ls, p)
            print(f"| {cfg} | `{kernel}` | {m:.3f} | {mod:.3f} | {mod / m:.2f} |")
        ranking(kernels, p)
    if save_predicted:
        write_steps(save_predicted, "--save-predicted", [slim(st) for st in profiled_steps(predict)])
    if predict:
        print("| config | step | top kernels (model ms) | roofline ms | model ms |")
        print("|---|---|---|---:|---:|")
        for step in profiled_steps(predict):
            terms = list(kernel_terms(step))
            ls = step["roofline"]["launch_s"]
            roof = 1e3 * sum(n * (work + ls) for n, work, _ in terms)
            top = sorted(
                ((modelled_ms([t], ls, p), k["kernel"]) for t, k in zip(terms, step["kernels"])),
                reverse=True,
            )[:2]
            names = ", ".join(f"`{name}` {ms:.2f}" for ms, name in top)
            print(
                f"| {step['config']} | {step['target']} | {names} | {roof:.2f} | "
                f"{modelled_ms(terms, ls, p):.2f} |"
            )


def ranking(kernels, p):
    """Per op row group (config, kernel without its version), the fastest measured and
    modelled versions and how many version pairs the model orders as measured."""
    groups = {}
    for (cfg, kernel), m, terms, ls in kernels:
        base, version = kernel.rsplit("_v", 1)
        groups.setdefault((cfg, base), []).append((version, m, modelled_ms(terms, ls, p)))
    for (cfg, base), rows in groups.items():
        fastest_m = min(rows, key=lambda r: r[1])[0]
        fastest_p = min(rows, key=lambda r: r[2])[0]
        pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1 :]]
        agree = sum((a[1] < b[1]) == (a[2] < b[2]) for a, b in pairs)
        print(
            f"{cfg} {base}: fastest measured v{fastest_m}, modelled v{fastest_p}; "
            f"{agree} of {len(pairs)} pairs ordered as measured"
        )


# The kernel versions of the first device run (`--kernels masked_conv2d=3,masked_conv2d_weight=2,
# row_lstm=3,diag_lstm=3,lstm_weight_fp32=2`), by the name each puts in a profile: a step with
# another version of one of these kernels (a rank profile) is not a measured step.
FIRST_RUN_VERSIONS = {
    "masked_conv2d_fwd_v": "3",
    "masked_conv2d_bwd_weight_v": "2",
    "lstm_step_bwd_v": "3",
    "lstm_persistent_bwd_v": "3",
    "lstm_ss_bwd_weight_v": "2",
}


def step_uses_other_versions(step):
    for k in step["kernels"]:
        for stem, version in FIRST_RUN_VERSIONS.items():
            name = k["kernel"]
            at = name.find(stem)
            if at >= 0 and name[at + len(stem) :] != version:
                return True
    return False


if __name__ == "__main__":
    args = sys.argv[1:]
    with_kernels = "--with-kernels" in args
    args = [a for a in args if a != "--with-kernels"]
    saves = {}
    for flag in ("--save", "--save-predicted"):
        if flag in args:
            at = args.index(flag)
            if at + 1 >= len(args):
                sys.exit(f"{flag} needs a file")
            saves[flag] = args[at + 1]
            del args[at : at + 2]
    cut = args.index("--predict") if "--predict" in args else len(args)
    if cut == 0:
        sys.exit(__doc__)
    main(args[:cut], args[cut + 1 :], with_kernels, saves.get("--save"), saves.get("--save-predicted"))
