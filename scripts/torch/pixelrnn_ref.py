"""An independent PyTorch reference of PixelCNN, Row LSTM, Diagonal BiLSTM, Multi-Scale and
Gated PixelCNN (the last written from docs/gated-pixelcnn.md).

Written from the project's spec (shared/spec/MODELS.md), not from the Rust code: only the
parameter names and shapes follow pixelrnn's checkpoint format (docs/CHECKPOINTS.md) so that a
checkpoint loads with `load_state_dict`. Activations are NCHW; weights are `[out, in, kh, kw]`.
Plain, eager PyTorch on purpose: it is the cross-check of pixelrnn's numbers and the "what a
user would write instead" speed reference of issue 8.

    python scripts/torch/pixelrnn_ref.py --selftest     # causality / receptive-field checks
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

KINDS = ("pixelcnn", "row-lstm", "diag-bilstm", "gated-pixelcnn")


# --------------------------------------------------------------------------------------------
# Channel groups and masks (MODELS.md, "Channel groups and masks")
# --------------------------------------------------------------------------------------------

def feature_groups(n: int, block: int, groups: int) -> torch.Tensor:
    """Group of each of `n` features: (f % block) % groups. `block` is the map's width, or h
    for a 4h gate pre-activation (unit u of every gate block is in group u mod C)."""
    f = torch.arange(n)
    return (f % block) % groups


def conv_mask(cout: int, cin: int, kh: int, kw: int, mask: str, groups: int,
              out_block: int | None = None, in_block: int | None = None) -> torch.Tensor:
    """The 0/1 mask `[cout, cin, kh, kw]` of a convolution. `mask` is "A", "B", "none" or
    "vertical" (Gated PixelCNN's vertical stack: the rows above the centre and the whole
    centre row, every feature pair)."""
    m = torch.ones(cout, cin, kh, kw)
    if mask == "none":
        return m
    if mask == "vertical":
        m[:, :, kh // 2 + 1:, :] = 0
        return m
    assert kh % 2 == 1 and kw % 2 == 1, "masked kernels are odd"
    cy, cx = kh // 2, kw // 2
    m[:, :, cy, cx + 1:] = 0  # same row, right of the centre
    m[:, :, cy + 1:, :] = 0  # rows below
    go = feature_groups(cout, out_block or cout, groups)[:, None]
    gi = feature_groups(cin, in_block or cin, groups)[None, :]
    centre = (go > gi) if mask == "A" else (go >= gi)
    m[:, :, cy, cx] = centre.to(m.dtype)
    return m


class MaskedConv2d(nn.Module):
    """`conv(x, weight * mask) + bias`, "same" zero padding. Parameters `weight`, `bias`."""

    def __init__(self, cin, cout, kh, kw, mask, groups, out_block=None, in_block=None,
                 bias=True):
        super().__init__()
        self.padding = (kh // 2, kw // 2)
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.register_buffer(
            "mask", conv_mask(cout, cin, kh, kw, mask, groups, out_block, in_block),
            persistent=False)
        fan_in = self.mask.sum(dim=(1, 2, 3)).clamp(min=1)  # live taps per output feature
        a = torch.sqrt(3.0 / fan_in)[:, None, None, None]
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0).mul_(a).mul_(self.mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class StateConv(nn.Module):
    """An unmasked state-to-state weight (no bias): `[4h, h, kh, kw]`."""

    def __init__(self, h, kh, kw):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(4 * h, h, kh, kw))
        a = math.sqrt(3.0 / (h * kh * kw))
        with torch.no_grad():
            self.weight.uniform_(-a, a)


def lstm_gates(pre, h):
    """[o, f, i, g] = [sigmoid, sigmoid, sigmoid, tanh] of the 4h pre-activation (dim 1)."""
    o, f, i, g = pre[:, :h], pre[:, h:2 * h], pre[:, 2 * h:3 * h], pre[:, 3 * h:]
    return torch.sigmoid(o), torch.sigmoid(f), torch.sigmoid(i), torch.tanh(g)


def input_to_state(cin, h, kw, groups):
    """Input-to-state convolution 1 x kw, mask B, 2h -> 4h, unit u of each gate in group u mod C;
    forget-gate bias +1 at init."""
    conv = MaskedConv2d(cin, 4 * h, 1, kw, "B", groups, out_block=h, in_block=cin)
    with torch.no_grad():
        conv.bias[h:2 * h] = 1.0
    return conv


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------

def add_class(module, pre):
    """`pre + class_bias[labels]` (NCHW; the row of each image's class at every position) for a
    module with a class table (class-conditional models, docs/CHECKPOINTS.md; the model's
    forward sets `module.labels`), else `pre`."""
    table = getattr(module, "class_bias", None)
    return pre if table is None else pre + table[module.labels][:, :, None, None]


def class_table(k, f):
    return nn.Parameter(torch.zeros(k, f))


class ResidualBlock(nn.Module):
    """PixelCNN: ReLU -> 1x1 B 2h->h -> ReLU -> 3x3 B h->h -> ReLU -> 1x1 B h->2h, + input."""

    def __init__(self, h, groups):
        super().__init__()
        self.conv_in = MaskedConv2d(2 * h, h, 1, 1, "B", groups)
        self.conv_mid = MaskedConv2d(h, h, 3, 3, "B", groups)
        self.conv_out = MaskedConv2d(h, 2 * h, 1, 1, "B", groups)

    def forward(self, x, m=None):
        y = self.conv_in(F.relu(x))
        y = self.conv_mid(F.relu(y))
        if m is not None:  # multi-scale stage 2: the conditioning bias on the 3x3's output
            y = y + self.cond(m)
        y = add_class(self, y)
        y = self.conv_out(F.relu(y))
        return x + y


class RowLstm(nn.Module):
    """Row LSTM: 1xk mask-B input-to-state (bias), row recurrence with a 1xk unmasked
    state-to-state convolution over the previous row's h, residual 1x1 B h->2h."""

    def __init__(self, h, groups, k=3):
        super().__init__()
        self.h, self.k = h, k
        self.is_conv = input_to_state(2 * h, h, k, groups)
        self.ss_conv = StateConv(h, 1, k)
        self.res_conv = MaskedConv2d(h, 2 * h, 1, 1, "B", groups)

    def recurrence(self, pre):
        """`pre`: [N, 4h, H, W] input-to-state pre-activations -> hidden states [N, h, H, W]."""
        n, _, hh, w = pre.shape
        h = self.h
        h_prev = pre.new_zeros(n, h, 1, w)  # row -1: h = c = 0
        c_prev = pre.new_zeros(n, h, 1, w)
        out = []
        for i in range(hh):
            s = pre[:, :, i:i + 1, :] + F.conv2d(h_prev, self.ss_conv.weight,
                                                 padding=(0, self.k // 2))
            o, f, ig, g = lstm_gates(s, h)
            c_prev = f * c_prev + ig * g
            h_prev = o * torch.tanh(c_prev)
            out.append(h_prev)
        return torch.cat(out, dim=2)

    def forward(self, x, m=None):
        pre = self.is_conv(x)
        if m is not None:  # multi-scale stage 2: conditioning bias on the pre-activations
            pre = pre + self.cond(m)
        pre = add_class(self, pre)
        return x + self.res_conv(self.recurrence(pre))


def skew(x):
    """S[r, r + j] = X[r, j]: [N, F, H, W] -> [N, F, H, max(2W - 1, H + W - 1)], zero
    elsewhere (an image taller than wide reaches column H + W - 2 in its last row)."""
    n, f, hh, w = x.shape
    s = x.new_zeros(n, f, hh, max(2 * w - 1, hh + w - 1))
    for r in range(hh):
        s[:, :, r, r:r + w] = x[:, :, r]
    return s


def unskew(s, w):
    """out[r, j] = S[r, r + j]: [N, F, H, Ws] -> [N, F, H, W]."""
    return torch.stack([s[:, :, r, r:r + w] for r in range(s.shape[2])], dim=2)


class DiagDirection(nn.Module):
    """One direction of the Diagonal BiLSTM: 1x1 mask-B input-to-state (bias) and the column
    scan of the skewed map with the 2x1 state-to-state convolution `[4h, h, 2, 1]` over rows
    r-1 (tap 0, zero above row 0) and r (tap 1) of the previous column."""

    def __init__(self, h, groups):
        super().__init__()
        self.h = h
        self.is_conv = input_to_state(2 * h, h, 1, groups)
        self.ss_conv = StateConv(h, 2, 1)

    def forward(self, x, m=None):
        """x: [N, 2h, H, W] -> hidden states [N, h, H, W] (image coordinates). `m`: the
        conditioning map in the same coordinates as x (the right direction gets it mirrored)."""
        n, _, hh, w = x.shape
        h = self.h
        pre = self.is_conv(x)
        if m is not None:
            pre = pre + self.cond(m)
        pre = add_class(self, pre)  # the same at every position: mirroring leaves it as it is
        s = skew(pre)  # [N, 4h, H, 2W-1]
        t_all = torch.arange(2 * w - 1, device=x.device)
        r_all = torch.arange(hh, device=x.device)
        # valid[r, t]: the skewed position holds an image pixel (0 <= t - r < W)
        valid = ((t_all[None, :] - r_all[:, None]) >= 0) & ((t_all[None, :] - r_all[:, None]) < w)
        valid = valid.to(x.dtype)
        w_ss = self.ss_conv.weight[:, :, :, 0]  # [4h, h, 2]: tap 0 row r-1, tap 1 row r
        h_prev = x.new_zeros(n, h, hh)
        c_prev = x.new_zeros(n, h, hh)
        cols = []
        for t in range(2 * w - 1):
            # out[r] = W0 h_prev[r-1] + W1 h_prev[r]  (zero row above row 0)
            ss = F.conv1d(F.pad(h_prev, (1, 0)), w_ss)
            pre = s[:, :, :, t] + ss
            o, f, ig, g = lstm_gates(pre, h)
            m = valid[:, t]
            c_prev = (f * c_prev + ig * g) * m  # cell from the same skewed row: pixel on the left
            h_prev = o * torch.tanh(c_prev) * m  # the skew's padding holds h = c = 0
            cols.append(h_prev)
        return unskew(torch.stack(cols, dim=3), w)


class DiagBiLstm(nn.Module):
    """Diagonal BiLSTM: left direction on x, right direction on mirror(x) (own weights),
    mirrored back and shifted down one row, summed; residual 1x1 B h->2h added to x."""

    def __init__(self, h, groups):
        super().__init__()
        self.left = DiagDirection(h, groups)
        self.right = DiagDirection(h, groups)
        self.res_conv = MaskedConv2d(h, 2 * h, 1, 1, "B", groups)

    def forward(self, x, m=None):
        # Unconditioned calls keep the one-argument form (scripts/torch/mutants.py swaps in
        # one-argument forwards).
        if m is None:
            hl = self.left(x)
            hr = torch.flip(self.right(torch.flip(x, dims=[3])), dims=[3])
        else:
            hl = self.left(x, m)
            hr = torch.flip(self.right(torch.flip(x, dims=[3]), torch.flip(m, dims=[3])),
                            dims=[3])
        hr = F.pad(hr, (0, 0, 1, 0))[:, :, :-1]  # shift down: row 0 zero, row r <- row r-1
        return x + self.res_conv(hl + hr)


class OutputHead(nn.Module):
    """ReLU -> 1x1 B 2h->D -> ReLU -> 1x1 B D->256C (or C for binary)."""

    def __init__(self, cin, d, outputs, groups):
        super().__init__()
        self.hidden = MaskedConv2d(cin, d, 1, 1, "B", groups)
        self.logits = MaskedConv2d(d, outputs, 1, 1, "B", groups)

    def forward(self, x):
        return self.logits(F.relu(self.hidden(F.relu(x))))


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

def mixtures_of(likelihood) -> int | None:
    """K of a model_config's `likelihood` ("softmax" or {"logistic-mixture": {"mixtures": K}})."""
    if likelihood == "softmax":
        return None
    return int(likelihood["logistic-mixture"]["mixtures"])


def logistic_mixture_nll(params, targets, k: int):
    """Discretized logistic mixture (PixelCNN++), written from its formula: params
    [N, P, H, W] (P = K(1 + 2C + C(C-1)/2): K logits, C x K means, C x K log-scales clamped
    below at -7, for C = 3 the 3K coefficients before tanh: mean_G += c0 x_R, mean_B += c1 x_R +
    c2 x_G), targets [N, C, H, W] in 0..255 -> [N, C, H, W] conditional NLLs
    -log p(x_c | x_<c) (they sum to the pixel's NLL), as pixelrnn's --dump-nll writes them.
    Bin v: log sigmoid(a) at 0, log sigmoid(-b) at 255, else log(sigmoid(a) - sigmoid(b))
    computed as log sigmoid(a) + log sigmoid(-b) + log(1 - exp(-(a - b))), a and b the
    standardised upper and lower bin edges."""
    n, _, hh, w = params.shape
    c = targets.shape[1]
    x = targets.to(params.dtype) / 127.5 - 1.0  # [N, C, H, W]
    logits = params[:, :k]  # [N, K, H, W]
    mu = params[:, k:k + c * k].view(n, c, k, hh, w)
    log_s = params[:, k + c * k:k + 2 * c * k].view(n, c, k, hh, w).clamp(min=-7.0)
    xs = x[:, :, None]  # [N, C, 1, H, W]
    means = [mu[:, 0]]
    if c == 3:
        co = torch.tanh(params[:, k + 2 * c * k:].view(n, 3, k, hh, w))
        means.append(mu[:, 1] + co[:, 0] * xs[:, 0])
        means.append(mu[:, 2] + co[:, 1] * xs[:, 0] + co[:, 2] * xs[:, 1])
    m = torch.stack(means, 1)  # [N, C, K, H, W]
    inv_s = torch.exp(-log_s)
    a = inv_s * (xs - m + 1.0 / 255.0)
    b = inv_s * (xs - m - 1.0 / 255.0)
    d = inv_s * (2.0 / 255.0)
    interior = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(-d))
    v = targets[:, :, None].expand_as(a)
    logp = torch.where(v == 0, F.logsigmoid(a), torch.where(v == 255, F.logsigmoid(-b), interior))
    z = [torch.log_softmax(logits, 1)]
    for ch in range(c):
        z.append(z[-1] + logp[:, ch])
    lse = [torch.logsumexp(zz, 1) for zz in z]  # each [N, H, W]
    return torch.stack([lse[ch] - lse[ch + 1] for ch in range(c)], 1)


@dataclass
class Config:
    kind: str
    height: int
    width: int
    channels: int
    binary: bool
    layers: int
    hidden: int
    head: int
    row_kernel: int = 3
    # Multi-scale: {"base": kind, "scale": s, "cond_features": F}; with kind "multiscale" the
    # two-stage model, with a base kind that model conditioned on the s x s image (stage 2).
    multiscale: dict | None = None
    # Logistic mixture components K (docs/logistic-mixture.md), None for the 256-way softmax.
    mixtures: int | None = None
    # Class conditioning (`--condition class`): the number of classes K, None: unconditional.
    classes: int | None = None

    @property
    def groups(self) -> int:
        """Channel groups of the masks: C, or 1 for the mixture (it predicts whole pixels)."""
        return 1 if self.mixtures else self.channels

    @property
    def outputs(self) -> int:
        """Head outputs per position."""
        c = self.channels
        if self.mixtures:
            return self.mixtures * (1 + 2 * c + c * (c - 1) // 2)
        return c if self.binary else 256 * c

    @staticmethod
    def from_json(d: dict) -> "Config":
        return Config(kind=d["kind"], height=d["height"], width=d["width"],
                      channels=d["channels"], binary=d["binary"], layers=d["layers"],
                      hidden=d["hidden"], head=d["head"], row_kernel=d.get("row_kernel", 3),
                      multiscale=d.get("multiscale"),
                      mixtures=mixtures_of(d.get("likelihood", "softmax")),
                      classes=d.get("classes"))

    def stage(self, k: int) -> "Config":
        """Stage 1 (the base model of the s x s image) or 2 (the conditioned full model)."""
        ms = self.multiscale
        if k == 1:
            return Config(ms["base"], ms["scale"], ms["scale"], self.channels, self.binary,
                          self.layers, self.hidden, self.head, self.row_kernel, None,
                          self.mixtures, self.classes)
        return Config(ms["base"], self.height, self.width, self.channels, self.binary,
                      self.layers, self.hidden, self.head, self.row_kernel, dict(ms),
                      self.mixtures, self.classes)


class PixelModel(nn.Module):
    """Input 7x7 mask A C->2h, `layers` hidden layers, output head. With `cfg.multiscale`
    (a multi-scale stage 2): conditioned on the small image x_s = x[::r, ::r] (r = n/s), which
    goes through `upsample`, a ConvTranspose2d(C, F, 3r, stride=r, padding=r), to an n x n map
    of F features; every layer adds an unmasked 1x1 convolution of that map (`cond`) to its
    input-to-state pre-activations (the 7x7's output, a Row LSTM's or each Diagonal BiLSTM
    direction's is_conv output, a PixelCNN block's 3x3 output)."""

    def __init__(self, cfg: Config):
        super().__init__()
        if cfg.kind not in KINDS:
            raise ValueError(f"unknown model kind {cfg.kind!r}")
        self.cfg = cfg
        c, h, g = cfg.channels, cfg.hidden, cfg.groups
        self.input = MaskedConv2d(c, 2 * h, 7, 7, "A", g)
        if cfg.kind == "pixelcnn":
            layers = [ResidualBlock(h, g) for _ in range(cfg.layers)]
        elif cfg.kind == "row-lstm":
            layers = [RowLstm(h, g, cfg.row_kernel) for _ in range(cfg.layers)]
        else:
            layers = [DiagBiLstm(h, g) for _ in range(cfg.layers)]
        self.layers = nn.ModuleList(layers)
        self.head = OutputHead(2 * h, cfg.head, cfg.outputs, g)
        self.stride = None
        if cfg.multiscale is not None:
            f = cfg.multiscale["cond_features"]
            r = self.stride = cfg.height // cfg.multiscale["scale"]
            # Weight [C, F, 3r, 3r] (ConvTranspose2d's [in, out, kh, kw]) and bias [F].
            self.upsample = nn.ConvTranspose2d(c, f, 3 * r, stride=r, padding=r)
            # Named as pixelrnn names them: input.cond.*, layers.{l}.cond.*,
            # layers.{l}.{left,right}.cond.*
            self.input.cond = MaskedConv2d(f, 2 * h, 1, 1, "none", c)
            for layer in self.layers:
                if cfg.kind == "diag-bilstm":
                    layer.left.cond = MaskedConv2d(f, 4 * h, 1, 1, "none", c)
                    layer.right.cond = MaskedConv2d(f, 4 * h, 1, 1, "none", c)
                else:
                    width = h if cfg.kind == "pixelcnn" else 4 * h
                    layer.cond = MaskedConv2d(f, width, 1, 1, "none", c)
        if cfg.classes:
            # Class tables (docs/CHECKPOINTS.md): input.class_bias [K, 2h], layers.{l}.class_bias
            # (PixelCNN [K, h] on the 3x3's output, Row LSTM [K, 4h] on is_conv's),
            # layers.{l}.{left,right}.class_bias [K, 4h]; each after the multi-scale bias.
            k = cfg.classes
            self.input.class_bias = class_table(k, 2 * h)
            for layer in self.layers:
                if cfg.kind == "diag-bilstm":
                    layer.left.class_bias = class_table(k, 4 * h)
                    layer.right.class_bias = class_table(k, 4 * h)
                else:
                    layer.class_bias = class_table(k, h if cfg.kind == "pixelcnn" else 4 * h)

    def set_labels(self, labels):
        """Hands each image's class [N] (long) to every module with a class table."""
        if self.cfg.classes and labels is None:
            raise ValueError("a class-conditional model needs each image's class")
        for mod in self.modules():
            if getattr(mod, "class_bias", None) is not None:
                mod.labels = labels.to(mod.class_bias.device).long()

    def network_input(self, x_uint8):
        """[N, H, W, C] values (uint8 or 0/1) -> [N, C, H, W] network input, on the model's
        device (the images may be on the host)."""
        w = self.input.weight
        x = x_uint8.to(w.device).permute(0, 3, 1, 2).to(w.dtype)
        return x if self.cfg.binary else x / 127.5 - 1.0

    def forward(self, x, xs=None, labels=None):
        """Network input [N, C, H, W] -> logits [N, 256C or C, H, W] (logit k of channel c is
        feature k*C + c). A conditioned model also takes the small image `xs` [N, C, s, s],
        scaled like the input; a class-conditional one each image's class `labels` [N]."""
        self.set_labels(labels)
        m = None if self.stride is None else self.upsample(xs)
        a = self.input(x)
        if m is not None:
            a = a + self.input.cond(m)
        a = add_class(self.input, a)
        for layer in self.layers:
            a = layer(a) if m is None else layer(a, m)
        return self.head(a)

    def nll(self, logits, targets):
        """Per-sub-pixel NLL in nats [N, C, H, W]; `targets` [N, C, H, W] raw values."""
        n, _, hh, w = logits.shape
        c = self.cfg.channels
        targets = targets.to(logits.device)
        if self.cfg.mixtures:
            return logistic_mixture_nll(logits, targets, self.cfg.mixtures)
        if self.cfg.binary:
            return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype),
                                                      reduction="none")
        z = logits.view(n, 256, c, hh, w)
        return F.cross_entropy(z, targets.long(), reduction="none")

    def nll_images(self, images, labels=None):
        """Per-sub-pixel NLL in nats, NHWC like pixelrnn's `--dump-nll`, for uint8 images
        [N, H, W, C] (binary models: 0/1 values) of classes `labels` [N] (class-conditional)."""
        x = self.network_input(images)
        t = images.permute(0, 3, 1, 2)
        return self.nll(self(x, labels=labels), t).permute(0, 2, 3, 1)


class MultiScaleModel(nn.Module):
    """Multi-Scale PixelRNN (docs/multiscale.md): `stage1` models x_s = x[::r, ::r], `stage2`
    models x given x_s. NLL(x) = NLL_1(x_s) + NLL_2(x | x_s), where stage 2 does not score the
    sub-pixels of x_s (they are given); the per-sub-pixel dump holds stage 1's NLL at the
    positions of x_s and stage 2's elsewhere, as pixelrnn's `--dump-nll` does."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.stage1 = PixelModel(cfg.stage(1))
        self.stage2 = PixelModel(cfg.stage(2))
        self.stride = self.stage2.stride

    def nll_images(self, images, labels=None):
        r = self.stride
        small = images[:, ::r, ::r]
        n1 = self.stage1.nll_images(small, labels)  # [N, s, s, C]
        x = self.stage2.network_input(images)
        xs = self.stage2.network_input(small)
        t = images.permute(0, 3, 1, 2)
        n2 = self.stage2.nll(self.stage2(x, xs, labels), t).permute(0, 2, 3, 1).clone()
        n2[:, ::r, ::r] = n1
        return n2


def gate(p):
    """Gated activation: tanh of the first half of the features, times sigmoid of the second."""
    f, g = p.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


def shift_down(t):
    """Row i takes row i - 1; row 0 is zero (NCHW)."""
    return F.pad(t, (0, 0, 1, 0))[:, :, :-1, :]


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer (docs/gated-pixelcnn.md): vertical k x k (rows above and the
    centre row), horizontal 1 x k (mask A first, B after), both -> 4h with out_block 2h; the
    link, an unmasked 1x1 4h -> 4h of the vertical pre-activation shifted down one row;
    gates; residual (not in layer 0) and skip 1x1 mask B 2h -> 2h; the last layer has no
    residual projection."""

    def __init__(self, cin, h, k, groups, first, last):
        super().__init__()
        self.first, self.last = first, last
        self.v_conv = MaskedConv2d(cin, 4 * h, k, k, "vertical", groups, out_block=2 * h)
        self.h_conv = MaskedConv2d(cin, 4 * h, 1, k, "A" if first else "B", groups,
                                   out_block=2 * h)
        self.link = MaskedConv2d(4 * h, 4 * h, 1, 1, "none", groups)
        if not last:
            self.res_conv = MaskedConv2d(2 * h, 2 * h, 1, 1, "B", groups)
        self.skip_conv = MaskedConv2d(2 * h, 2 * h, 1, 1, "B", groups)

    def forward(self, v, x_h):
        # Class-conditional: the paper's V^T h, one row per class, on both stacks'
        # pre-activations (docs/gated-pixelcnn.md, "Class conditioning"); the vertical one
        # before the shift.
        vp = add_class(self, self.v_conv(v))
        hp = add_class(self, self.h_conv(x_h) + self.link(shift_down(vp)))
        u = gate(hp)
        skip = self.skip_conv(u)
        if self.last:
            return None, None, skip
        r = self.res_conv(u)
        return gate(vp), (r if self.first else x_h + r), skip


class GatedPixelModel(PixelModel):
    """Gated PixelCNN: no input layer; `layers` gated layers (7x7 first, 3x3 after); the head
    reads the sum of the skip projections. Same interface as PixelModel."""

    def __init__(self, cfg: Config):
        nn.Module.__init__(self)
        if cfg.multiscale is not None:
            raise ValueError("a Gated PixelCNN has no multi-scale form")
        self.cfg = cfg
        # Channel groups and head outputs as every model's: the logistic mixture predicts
        # whole pixels (one group, K (1 + 2C + C(C-1)/2) outputs; docs/logistic-mixture.md).
        c, h, g = cfg.channels, cfg.hidden, cfg.groups
        self.layers = nn.ModuleList([
            GatedLayer(c if l == 0 else 2 * h, h, 7 if l == 0 else 3, g, l == 0,
                       l + 1 == cfg.layers)
            for l in range(cfg.layers)])
        self.head = OutputHead(2 * h, cfg.head, cfg.outputs, g)
        self.stride = None
        if cfg.classes:  # layers.{l}.class_bias [K, 4h]; no input layer, no input table
            for layer in self.layers:
                layer.class_bias = class_table(cfg.classes, 4 * h)

    def network_input(self, x_uint8):
        w = self.head.hidden.weight
        x = x_uint8.to(w.device).permute(0, 3, 1, 2).to(w.dtype)
        return x if self.cfg.binary else x / 127.5 - 1.0

    def forward(self, x, xs=None, labels=None):
        self.set_labels(labels)
        v, x_h, total = x, x, 0
        for layer in self.layers:
            v, x_h, skip = layer(v, x_h)
            total = total + skip
        return self.head(total)


def build(cfg: Config) -> nn.Module:
    """The reference model of a checkpoint's `model_config`."""
    if cfg.kind == "gated-pixelcnn":
        return GatedPixelModel(cfg)
    return MultiScaleModel(cfg) if cfg.kind == "multiscale" else PixelModel(cfg)


# --------------------------------------------------------------------------------------------
# Self-test: the spec's causality and receptive-field statements, checked on this reference
# --------------------------------------------------------------------------------------------

def _randomize(model, seed=0):
    """Fills every weight (masked taps too: the mask must do the work) with random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


def selftest(verbose=True):
    torch.manual_seed(0)
    dt = torch.float64
    failures = 0
    for kind in KINDS:
        for c in (1, 3):
            cfg = Config(kind, 6, 7, c, False, 2, 3, 5)
            m = build(cfg).to(dt)
            _randomize(m)
            hh, w = cfg.height, cfg.width
            x = torch.randn(1, c, hh, w, dtype=dt)
            base = m(x).view(1, 256, c, hh, w)
            # Causality: perturb sub-pixel p; outputs of sub-pixels at or before p unchanged.
            bad = 0
            for p in range(hh * w * c):
                i, j, ch = p // (w * c), (p // c) % w, p % c
                x2 = x.clone()
                x2[0, ch, i, j] += 1.0
                diff = (m(x2).view(1, 256, c, hh, w) - base).abs().amax(dim=1)[0]  # [C, H, W]
                order = (torch.arange(hh)[:, None, None] * w + torch.arange(w)[None, :, None]) * c \
                    + torch.arange(c)[None, None, :]  # [H, W, C] raster index
                before = order.permute(2, 0, 1) <= p
                bad += int((diff[before] > 0).sum())
            ok = bad == 0
            failures += not ok
            if verbose:
                print(f"selftest causality {kind:12s} C={c}: {'ok' if ok else f'{bad} leaks'}")
    # Receptive fields of one output w.r.t. the input (C = 1), 8x8 image, output pixel (4, 3).
    hh, w, oi, oj = 8, 8, 4, 3
    for kind in KINDS:
        # Gated PixelCNN: 5 layers cover the 8x8 image (no blind spot).
        layers = 5 if kind == "gated-pixelcnn" else 3
        m = build(Config(kind, hh, w, 1, False, layers, 3, 5)).to(dt)
        _randomize(m, seed=1)
        x = torch.randn(1, 1, hh, w, dtype=dt, requires_grad=True)
        m(x)[0, :, oi, oj].sum().backward()
        seen = (x.grad[0, 0].abs() > 0)
        past = torch.zeros(hh, w, dtype=torch.bool)
        past[:oi] = True
        past[oi, :oj] = True
        missing = [(int(a), int(b)) for a, b in (past & ~seen).nonzero()]
        future = int((seen & ~past).sum())
        if kind == "diag-bilstm":
            ok = missing == [(oi - 1, w - 1)] and future == 0
        elif kind == "gated-pixelcnn":
            ok = missing == [] and future == 0
        elif kind == "pixelcnn":
            ok = len(missing) > 0 and future == 0  # the blind spot
        else:
            ok = future == 0
        failures += not ok
        if verbose:
            print(f"selftest receptive field {kind:12s}: misses {missing} "
                  f"{'ok' if ok else 'FAIL'}")
    # A zero last layer gives exactly 8 bits/dim.
    m = PixelModel(Config("diag-bilstm", 4, 5, 3, False, 1, 2, 4)).to(dt)
    with torch.no_grad():
        m.head.logits.weight.zero_()
        m.head.logits.bias.zero_()
    imgs = torch.randint(0, 256, (2, 4, 5, 3), dtype=torch.uint8)
    with torch.no_grad():
        bpd = float(m.nll_images(imgs).mean() / math.log(2))
    ok = abs(bpd - 8.0) < 1e-12
    failures += not ok
    if verbose:
        print(f"selftest zero head: {bpd:.12f} bits/dim {'ok' if ok else 'FAIL'}")
    return failures


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--selftest", action="store_true", help="run the spec checks on the reference")
    args = ap.parse_args()
    if args.selftest:
        raise SystemExit(1 if selftest() else 0)
    ap.print_help()
