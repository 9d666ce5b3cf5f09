"""Cross-checks pixelrnn's per-sub-pixel NLL against the PyTorch reference, same weights.

    .venv-torch/bin/python scripts/torch/crosscheck.py RUN_DIR [--data FILE] [--tol 1e-4]

Runs `target/release/pixelrnn eval --checkpoint RUN_DIR --data FILE --dump-nll OUT.npy`
(building the binary with `cargo build --release` only when it is missing), loads the same
checkpoint into scripts/torch/pixelrnn_ref.py (float64 by default), scores the same test images
and compares the two N x H x W x C arrays of NLL (nats). Prints max abs and max relative diff
(|a - b| / max(|b|, 1e-3), b = reference) and exits 1 when the relative diff exceeds --tol.

Data: a .npy of uint8 images (N x H x W x C or N x H x W; the test split is the last
max(1, N // 10) images, as pixelrnn splits a single array), a .npz with `train`/`test`
(or `x_train`/`x_test`), or `mnist` / `binarized-mnist` (the embedded data/mnist.npz).
Default: the data the run was trained on. Binary models see the data thresholded at 128
(`v >= 128`), unless it is all 0/1 already.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.dont_write_bytecode = True  # no __pycache__ in scripts/torch/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_pixelrnn import load  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def pixelrnn_binary(path: str | None) -> str:
    exe = path or os.path.join(ROOT, "target", "release", "pixelrnn")
    if os.path.exists(exe):
        return exe
    print(f"crosscheck: {exe} missing, running cargo build --release", file=sys.stderr)
    r = subprocess.run(["cargo", "build", "--release"], cwd=ROOT)
    if r.returncode != 0 or not os.path.exists(exe):
        sys.exit("crosscheck: cargo build --release failed (the tree may be mid-edit); "
                 "build the binary once it compiles, or pass --pixelrnn PATH")
    return exe


def as_nhwc(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise SystemExit(f"crosscheck: images must be uint8, got {a.dtype}")
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise SystemExit(f"crosscheck: images must be N x H x W (x C), got {a.shape}")
    return a


def test_images(spec: str, split: str) -> np.ndarray:
    """The images pixelrnn scores for `--data spec --split split`, before binarizing."""
    if spec == "binarized-mnist-stochastic":
        raise SystemExit("crosscheck: binarized-mnist-stochastic is drawn by pixelrnn's own "
                         "generator (PCG64), which numpy does not reproduce: pass --data "
                         "binarized-mnist (the same digits thresholded) or a .npy of 0/1 images")
    if spec in ("mnist", "binarized-mnist"):
        spec = os.path.join(ROOT, "data", "mnist.npz")
    if spec.endswith(".npz"):
        z = np.load(spec)
        for tr, te in (("train", "test"), ("x_train", "x_test")):
            if tr in z.files and te in z.files:
                return as_nhwc(z[te] if split == "test" else z[tr])
        if len(z.files) != 1:
            raise SystemExit(f"crosscheck: {spec}: expected train/test arrays or exactly one")
        a = as_nhwc(z[z.files[0]])
    elif spec.endswith(".npy"):
        a = as_nhwc(np.load(spec))
    else:
        raise SystemExit(f"crosscheck: only .npy/.npz/mnist data here, got {spec}")
    n_test = max(1, a.shape[0] // 10)
    return a[a.shape[0] - n_test:] if split == "test" else a[:a.shape[0] - n_test]


def test_labels(spec: str, split: str) -> np.ndarray | None:
    """The classes of `test_images(spec, split)` (an .npz with `train_labels`/`test_labels` or
    `y_train`/`y_test`, or the embedded MNIST's), None when the data has none."""
    if spec in ("mnist", "binarized-mnist"):
        spec = os.path.join(ROOT, "data", "mnist.npz")
    if not spec.endswith(".npz"):
        return None
    z = np.load(spec)
    for tr, te in (("train_labels", "test_labels"), ("y_train", "y_test")):
        if tr in z.files and te in z.files:
            return np.asarray(z[te] if split == "test" else z[tr]).astype(np.int64).reshape(-1)
    return None


def binarize(a: np.ndarray) -> np.ndarray:
    return a if np.isin(a, (0, 1)).all() else (a >= 128).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run folder or checkpoint.safetensors")
    ap.add_argument("--data", help="dataset (default: the run's training data)")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--limit", type=int, help="score only the first N images")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative diff (default 1e-4)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="reference precision (default float64)")
    ap.add_argument("--pixelrnn", help="pixelrnn binary (default target/release/pixelrnn)")
    ap.add_argument("--threads", type=int, help="torch threads")
    ap.add_argument("--randomize", type=float, metavar="SCALE",
                    help="first replace every weight and bias of the checkpoint (masked taps "
                         "too) by random values, weights ~ N(0, SCALE^2 / fan_in), biases ~ "
                         "N(0, (SCALE/2)^2), and check that copy: saturated gates, live "
                         "recurrences, and pixelrnn must ignore the masked taps on load")
    ap.add_argument("--seed", type=int, default=0, help="seed of --randomize")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp_ck:
        if args.randomize is not None:
            args.run = randomized_copy(args.run, tmp_ck, args.randomize, args.seed)
        return compare(args)


def randomized_copy(run: str, folder: str, scale: float, seed: int) -> str:
    """A copy of the checkpoint (metadata kept, optimizer state dropped) with random weights."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from load_pixelrnn import OPTIM_PREFIX, resolve
    g = torch.Generator().manual_seed(seed)
    with safe_open(resolve(run), "pt") as f:
        meta = f.metadata()
        out = {}
        for k in sorted(f.keys()):
            if k.startswith(OPTIM_PREFIX):
                continue
            t = f.get_tensor(k)
            if t.ndim == 4:
                std = scale / (t.shape[1] * t.shape[2] * t.shape[3]) ** 0.5
            else:
                std = scale / 2
            out[k] = (torch.randn(t.shape, generator=g) * std).to(torch.float32).contiguous()
    path = os.path.join(folder, "checkpoint.safetensors")
    save_file(out, path, metadata=meta)
    return path


def compare(args) -> int:
    dtype = getattr(torch, args.dtype)
    model, cfg, meta = load(args.run, dtype)
    train_cfg = json.loads(meta.get("train_config", "{}"))
    spec = args.data or train_cfg.get("data")
    if not spec:
        sys.exit("crosscheck: the checkpoint names no dataset; pass --data")
    test_images(spec, args.split)  # refuses data the reference cannot read, before the eval

    exe = pixelrnn_binary(args.pixelrnn)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "nll.npy")
        cmd = [exe, "eval", "--checkpoint", args.run, "--data", spec, "--split", args.split,
               "--dump-nll", out, "--json"]
        if cfg.binary:
            cmd.append("--binarize")
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        t_rust = time.time() - t0
        if r.returncode != 0:
            sys.exit(f"crosscheck: {' '.join(cmd)} failed:\n{r.stderr}")
        ours = np.load(out)
        rust_report = json.loads(r.stdout.strip().splitlines()[-1])

    imgs = test_images(spec, args.split)
    if args.limit:
        imgs = imgs[:args.limit]
    if cfg.binary:
        imgs = binarize(imgs)
    labels = None
    if cfg.classes:
        labels = test_labels(spec, args.split)
        if labels is None:
            sys.exit(f"crosscheck: the model is class-conditional but {spec} has no labels")
        labels = labels[:len(imgs)]
    if imgs.shape[1:] != (cfg.height, cfg.width, cfg.channels):
        sys.exit(f"crosscheck: data is {imgs.shape[1:]}, the model "
                 f"{(cfg.height, cfg.width, cfg.channels)}")
    t0 = time.time()
    with torch.no_grad():
        ref = torch.cat([model.nll_images(
            torch.from_numpy(imgs[i:i + 64]),
            *(() if labels is None else (torch.from_numpy(labels[i:i + 64]),)))
            for i in range(0, len(imgs), 64)]).numpy()
    t_torch = time.time() - t0
    if ours.shape != ref.shape:
        sys.exit(f"crosscheck: pixelrnn dumped {ours.shape}, reference {ref.shape}")

    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    rel = diff / np.maximum(np.abs(ref), 1e-3)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    res = {
        "model": cfg.kind if cfg.multiscale is None
        else f"{cfg.kind}({cfg.multiscale['base']}, scale {cfg.multiscale['scale']})",
        "format": f"{cfg.height}x{cfg.width}x{cfg.channels}" + (" binary" if cfg.binary else "")
                  + (f" mixture K{cfg.mixtures}" if cfg.mixtures else "")
                  + (f" class K{cfg.classes}" if cfg.classes else ""),
        "layers": cfg.layers, "hidden": cfg.hidden, "head": cfg.head,
        "step": int(meta.get("step", 0)),
        "images": int(ref.shape[0]),
        "nll_pixelrnn": float(ours.astype(np.float64).sum() / ref.shape[0]),
        "nll_torch": float(ref.sum() / ref.shape[0]),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "worst_nhwc": [int(v) for v in worst],
        "nonzero_masked_weights": meta["nonzero_masked_weights"],
        "zero_live_weights": meta["zero_live_weights"],
        "randomized": args.randomize,
        "pixelrnn_eval_nll": rust_report.get(f"{args.split}_nll_nats"
                                             if args.split == "test" else "train_nll"),
        "seconds_pixelrnn": round(t_rust, 3), "seconds_torch": round(t_torch, 3),
        "ok": bool(rel.max() <= args.tol),
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['model']:12s} {res['format']:14s} {res['images']} images: "
              f"NLL pixelrnn {res['nll_pixelrnn']:.6f} torch {res['nll_torch']:.6f} nats/image; "
              f"max abs diff {res['max_abs_diff']:.3e}, max rel diff {res['max_rel_diff']:.3e} "
              f"(worst at n,h,w,c = {tuple(res['worst_nhwc'])}) "
              f"{'OK' if res['ok'] else 'MISMATCH'}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
