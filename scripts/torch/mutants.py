"""Mutation check of the cross-check: deliberately wrong variants of the reference must
disagree with pixelrnn, so the agreement of crosscheck.sh means something.

    bash scripts/torch/crosscheck.sh                       # leaves its runs in CROSSCHECK_DIR
    .venv-torch/bin/python scripts/torch/mutants.py CROSSCHECK_DIR

Each line prints the max relative diff of a mutant against pixelrnn (trained weights, and
random weights x1); a faithful reference stays near 1e-7, a detected mutant is far above 1e-4.
"""
import sys, io, os, contextlib, json
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
WORK = sys.argv[1]
import torch, torch.nn.functional as F
import pixelrnn_ref as R, crosscheck as X

def run(run, c, scale):
    sys.argv = ["crosscheck.py", run, "--data", f"{WORK}/data_c{c}.npy", "--json"] + (["--randomize", str(scale)] if scale else [])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        X.main()
    return json.loads(buf.getvalue())["max_rel_diff"]

orig = {k: getattr(R, k) for k in dir(R)}
def gates_ifog(pre, h):
    i, f, o, g = pre[:, :h], pre[:, h:2*h], pre[:, 2*h:3*h], pre[:, 3*h:]
    return torch.sigmoid(o), torch.sigmoid(f), torch.sigmoid(i), torch.tanh(g)
def groups_blocks(n, block, groups):
    f = torch.arange(n); return ((f % block) * groups) // block
def diag_fwd(mode):
    def forward(self, x):
        n, _, hh, w = x.shape; h = self.h
        s = R.skew(self.is_conv(x))
        t_all = torch.arange(2*w-1); r_all = torch.arange(hh)
        d = t_all[None, :] - r_all[:, None]
        valid = ((d >= 0) & (d < w)).to(x.dtype)
        if mode == "nomask": valid = torch.ones_like(valid)
        w_ss = self.ss_conv.weight[:, :, :, 0]
        h_prev = x.new_zeros(n, h, hh); c_prev = x.new_zeros(n, h, hh); cols = []
        for t in range(2*w-1):
            if mode == "below": ss = F.conv1d(F.pad(h_prev, (0, 1)), w_ss)
            elif mode == "swaptaps": ss = F.conv1d(F.pad(h_prev, (1, 0)), w_ss.flip(2))
            else: ss = F.conv1d(F.pad(h_prev, (1, 0)), w_ss)
            o, f, ig, g = R.lstm_gates(s[:, :, :, t] + ss, h)
            m = valid[:, t]
            cp = c_prev
            if mode == "cellabove": cp = F.pad(c_prev, (1, 0))[:, :, :-1]
            c_prev = (f*cp + ig*g)*m; h_prev = o*torch.tanh(c_prev)*m
            cols.append(h_prev)
        return R.unskew(torch.stack(cols, dim=3), w)
    return forward
def bi_noshift(self, x):
    hl = self.left(x); hr = torch.flip(self.right(torch.flip(x, dims=[3])), dims=[3])
    return x + self.res_conv(hl + hr)

def mask_b_as_a(cout, cin, kh, kw, mask, groups, out_block=None, in_block=None):
    return orig["conv_mask"](cout, cin, kh, kw, "A" if mask == "B" else mask, groups, out_block, in_block)
def nll_channel_major(self, logits, targets):
    n, _, hh, w = logits.shape; c = self.cfg.channels
    if self.cfg.binary: return orig_nll(self, logits, targets)
    z = logits.view(n, c, 256, hh, w).transpose(1, 2)
    return F.cross_entropy(z, targets.long(), reduction="none")
orig_nll = R.PixelModel.nll

mutants = {
  "mask B centre as mask A": ("conv_mask", mask_b_as_a, ["pixelcnn", "row-lstm", "diag-bilstm"]),
  "gate order [i,f,o,g]": ("lstm_gates", gates_ifog, ["row-lstm", "diag-bilstm"]),
  "contiguous channel groups": ("feature_groups", groups_blocks, ["pixelcnn", "row-lstm", "diag-bilstm"]),
}
cases = [("pixelcnn", "c3", 3), ("row-lstm", "c3", 3), ("diag-bilstm", "c1", 1), ("diag-bilstm", "c3", 3)]
for name, (attr, fn, kinds) in mutants.items():
    setattr(R, attr, fn)
    for k, f, c in cases:
        if k in kinds:
            print(f"{name:32s} {k:12s} {f}: trained rel {run(f'{WORK}/{k}-{f}', c, None):.2e}  randomized rel {run(f'{WORK}/{k}-{f}', c, 1):.2e}")
    setattr(R, attr, orig[attr])
R.PixelModel.nll = nll_channel_major
print(f"logits [channel, value] order    pixelcnn     c3: trained rel {run(f'{WORK}/pixelcnn-c3', 3, None):.2e}  randomized rel {run(f'{WORK}/pixelcnn-c3', 3, 1):.2e}")
R.PixelModel.nll = orig_nll
od = R.DiagDirection.forward
for mode in ["nomask", "below", "swaptaps", "cellabove"]:
    R.DiagDirection.forward = diag_fwd(mode)
    for f, c in [("c1", 1)]:
        print(f"diag {mode:27s} diag-bilstm  {f}: trained rel {run(f'{WORK}/diag-bilstm-{f}', c, None):.2e}  randomized rel {run(f'{WORK}/diag-bilstm-{f}', c, 1):.2e}")
R.DiagDirection.forward = diag_fwd("ok")
print(f"diag {'(faithful copy)':27s} diag-bilstm  c1: randomized rel {run(f'{WORK}/diag-bilstm-c1', 1, 1):.2e}")
R.DiagDirection.forward = od
ob = R.DiagBiLstm.forward; R.DiagBiLstm.forward = bi_noshift
print(f"diag no shift-down               diag-bilstm  c1: trained rel {run(f'{WORK}/diag-bilstm-c1', 1, None):.2e}  randomized rel {run(f'{WORK}/diag-bilstm-c1', 1, 1):.2e}")
R.DiagBiLstm.forward = ob

# The paper's formulation: the 1x1 input-to-state conv applied on the skewed map puts its bias
# on the padding too; then the h = c = 0 rule at the padding matters.
def paper(masked):
    def forward(self, x):
        n, _, hh, w = x.shape; h = self.h
        b = self.is_conv.bias[None, :, None, None]
        s = R.skew(self.is_conv(x) - b) + b  # 1x1 conv applied on the skewed map: bias everywhere
        d = torch.arange(2*w-1)[None, :] - torch.arange(hh)[:, None]
        valid = ((d >= 0) & (d < w)).to(x.dtype)
        if not masked: valid = torch.ones_like(valid)
        w_ss = self.ss_conv.weight[:, :, :, 0]
        h_prev = x.new_zeros(n, h, hh); c_prev = x.new_zeros(n, h, hh); cols = []
        for t in range(2*w-1):
            o, f, ig, g = R.lstm_gates(s[:, :, :, t] + F.conv1d(F.pad(h_prev, (1, 0)), w_ss), h)
            m = valid[:, t]; c_prev = (f*c_prev + ig*g)*m; h_prev = o*torch.tanh(c_prev)*m
            cols.append(h_prev)
        return R.unskew(torch.stack(cols, dim=3), w)
    return forward
for masked in (True, False):
    R.DiagDirection.forward = paper(masked)
    print(f"diag bias on padding, h=c=0 mask={masked}: trained rel {run(f'{WORK}/diag-bilstm-c1', 1, None):.2e} randomized {run(f'{WORK}/diag-bilstm-c1', 1, 1):.2e}")
R.DiagDirection.forward = od

# Multi-scale (issue 20): mistakes in the conditioning and the split of the NLL must show too.
def run_ms(run, c, scale):
    sys.argv = ["crosscheck.py", run, "--data", f"{WORK}/square_c{c}.npy", "--json"] + (["--randomize", str(scale)] if scale else [])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        X.main()
    return json.loads(buf.getvalue())["max_rel_diff"]
def bi_right_cond_unmirrored(self, x, m=None):
    if m is None: return ob(self, x)
    hl = self.left(x, m)
    hr = torch.flip(self.right(torch.flip(x, dims=[3]), m), dims=[3])  # mistake: m not mirrored
    hr = F.pad(hr, (0, 0, 1, 0))[:, :, :-1]
    return x + self.res_conv(hl + hr)
def ms_scores_small_twice(self, images):
    r = self.stride
    x = self.stage2.network_input(images); xs = self.stage2.network_input(images[:, ::r, ::r])
    n2 = self.stage2.nll(self.stage2(x, xs), images.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return n2  # mistake: stage 2's own NLL at the pixels of x_s instead of stage 1's
orig_ms_nll = R.MultiScaleModel.nll_images
def ms_small_from_top_left_blocks(self, images):
    # mistake: x_s taken as the block's last pixel instead of x[::r, ::r]
    r = self.stride
    small = images[:, r - 1::r, r - 1::r]
    n1 = self.stage1.nll_images(small)
    x = self.stage2.network_input(images); xs = self.stage2.network_input(small)
    n2 = self.stage2.nll(self.stage2(x, xs), images.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).clone()
    n2[:, ::r, ::r] = n1
    return n2
R.DiagBiLstm.forward = bi_right_cond_unmirrored
print(f"ms right cond not mirrored       ms-diag      c1: trained rel {run_ms(f'{WORK}/ms-diag-bilstm-c1', 1, None):.2e}  randomized rel {run_ms(f'{WORK}/ms-diag-bilstm-c1', 1, 1):.2e}")
R.DiagBiLstm.forward = ob
for label, fn in [("ms stage 2 scores x_s", ms_scores_small_twice), ("ms x_s = x[r-1::r, r-1::r]", ms_small_from_top_left_blocks)]:
    R.MultiScaleModel.nll_images = fn
    print(f"{label:32s} ms-row-lstm  c1: trained rel {run_ms(f'{WORK}/ms-row-lstm-c1', 1, None):.2e}  randomized rel {run_ms(f'{WORK}/ms-row-lstm-c1', 1, 1):.2e}")
    R.MultiScaleModel.nll_images = orig_ms_nll
