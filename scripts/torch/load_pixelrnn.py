"""Builds the PyTorch reference model from a pixelrnn checkpoint (docs/CHECKPOINTS.md): any
kind, PixelCNN, Row LSTM, Diagonal BiLSTM or Multi-Scale (both stages, `stage1.*`, `stage2.*`).

    python scripts/torch/load_pixelrnn.py runs/x            # prints the config and tensors

`load(path)` accepts a run folder or a checkpoint.safetensors file and returns
`(model, config, metadata)`. Optimizer tensors (`optim.*`) are skipped; every other tensor must
match a parameter of the reference by name and shape, and every parameter must be present.
Weights under a mask are taken times the mask, as pixelrnn does when it loads (its masked taps
are structural); how many of them were non-zero in the file is reported in `metadata`.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors import safe_open

from pixelrnn_ref import Config, MaskedConv2d, build

OPTIM_PREFIX = "optim."
FORMAT = "pixelrnn-checkpoint-1"


def resolve(path: str) -> str:
    return os.path.join(path, "checkpoint.safetensors") if os.path.isdir(path) else path


def load(path: str, dtype=torch.float64):
    """Returns (model in eval mode, Config, metadata dict) for a run folder or checkpoint file."""
    file = resolve(path)
    with safe_open(file, "pt") as f:
        meta = dict(f.metadata() or {})
        if meta.get("format") != FORMAT:
            raise ValueError(f"{file}: not a pixelrnn checkpoint (format {meta.get('format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(OPTIM_PREFIX)}
    cfg = Config.from_json(json.loads(meta["model_config"]))
    model = build(cfg)
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{file}: missing {missing}, unexpected {extra}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise ValueError(f"{file}: {name} is {list(t.shape)}, the reference has "
                             f"{list(own[name].shape)}")
    model.load_state_dict(tensors, strict=True)
    nonzero_masked = zero_live = 0
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, MaskedConv2d):
                nonzero_masked += int(((mod.weight != 0) & (mod.mask == 0)).sum())
                zero_live += int(((mod.weight == 0) & (mod.mask != 0)).sum())
                mod.weight.mul_(mod.mask)
    # Non-zero weights where the spec's mask is zero: the file's masks are more permissive
    # than the spec's. Exact zeros where the spec's mask is one (random init makes them
    # vanishingly rare): the file's masks are stricter than the spec's.
    meta["nonzero_masked_weights"] = nonzero_masked
    meta["zero_live_weights"] = zero_live
    model = model.to(dtype).eval()
    return model, cfg, meta


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="run folder or checkpoint.safetensors")
    a = ap.parse_args()
    m, c, meta = load(a.checkpoint)
    print(c)
    print(f"step {meta.get('step')}, non-zero masked weights in the file: "
          f"{meta['nonzero_masked_weights']}, zero live weights: {meta['zero_live_weights']}")
    for n, p in m.named_parameters():
        print(f"  {n:32s} {list(p.shape)}")
