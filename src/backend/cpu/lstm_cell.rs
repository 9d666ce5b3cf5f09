//! The LSTM cell on the CPU: gates, cell and hidden state of one position from its 4h
//! pre-activation ([`cell_forward`]), and its backward ([`cell_backward`]), for every
//! recurrence of `cpu/lstm.rs` and the one-position step of `cpu/lstm_at.rs`. CPU twin of
//! `pixelrnn_lstm_cell_fwd` / `_bwd` in `kernels/common.cuh`.

use super::softmax_nll::exp_neg;
/// Logistic sigmoid, through the polynomial `exp` of `softmax_nll` (within 2 ulp; a third of
/// the cost of libm's `expf`) on `-|x|`, so that the exponential never overflows.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// `tanh(x)` within a few ulp, branch-free so that the gate loops vectorise (libm's `tanhf`
/// is a scalar call; with `expm1f` it was about a sixth of a Row LSTM training step). Cephes'
/// `tanhf`: an odd polynomial for `|x| < 0.625`, where `1 - e` would cancel, else
/// `(1 - e) / (1 + e)` with `e = exp(-2|x|)` from [`exp_neg`] (which never overflows); both
/// on `|x|`, with the sign put back, so that `tanh(-0) = -0`. NaN takes the polynomial branch
/// and stays NaN.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let ax = x.abs();
    let z = x * x;
    let mut p = -5.704_988_7e-3f32;
    p = p * z + 2.063_909e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328e-1;
    let small = (p * z * ax + ax).copysign(x);
    let e = exp_neg(-2.0 * ax);
    let big = ((1.0 - e) / (1.0 + e)).copysign(x);
    if ax >= 0.625 {
        big
    } else {
        small
    }
}

/// Gates, cell and hidden state of one position from its pre-activation `pre` `[4h]`
/// (blocks o, f, i, g). Compiled for the baseline target and with AVX2, picked at run time:
/// the same operations in the same order either way (Rust never contracts `a * b + c`), so the
/// numbers do not depend on the machine.
#[inline]
pub fn cell_forward(
    pre: &[f32],
    c_prev: Option<&[f32]>,
    gates: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() {
            // SAFETY: the CPU has AVX2 (checked at run time).
            unsafe { cell_forward_avx2(pre, c_prev, gates, c, h) };
            return;
        }
    }
    cell_forward_body(pre, c_prev, gates, c, h);
}

/// Whether this CPU has AVX2 (detected once).
#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cell_forward_avx2(
    pre: &[f32],
    c_prev: Option<&[f32]>,
    gates: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    cell_forward_body(pre, c_prev, gates, c, h);
}

/// Units per block of the gate loops: eight lanes in fixed-size arrays, so that the loop
/// bodies vectorise (per-unit indexing into four gate blocks and an optional previous cell
/// kept them scalar: a fifth of a Diagonal BiLSTM step). A partial last block is padded; every
/// unit gets the same operations wherever it sits.
pub(super) const LANES: usize = 8;

/// Copies up to [`LANES`] values into a zero-padded block (full blocks with a fixed-size copy,
/// which compiles to one load instead of a `memmove` call).
#[inline(always)]
pub(super) fn block(src: &[f32]) -> [f32; LANES] {
    match <[f32; LANES]>::try_from(src) {
        Ok(b) => b,
        Err(_) => {
            let mut b = [0.0f32; LANES];
            b[..src.len()].copy_from_slice(src);
            b
        }
    }
}

/// Stores the first `dst.len()` (at most [`LANES`]) values of a block.
#[inline(always)]
pub(super) fn unblock(dst: &mut [f32], b: &[f32; LANES]) {
    match <&mut [f32; LANES]>::try_from(&mut *dst) {
        Ok(d) => *d = *b,
        Err(_) => {
            let w = dst.len();
            dst.copy_from_slice(&b[..w]);
        }
    }
}

#[inline(always)]
fn cell_forward_body(
    pre: &[f32],
    c_prev: Option<&[f32]>,
    gates: &mut [f32],
    c: &mut [f32],
    h: &mut [f32],
) {
    let hd = h.len();
    let mut u0 = 0;
    while u0 < hd {
        let w = (hd - u0).min(LANES);
        let po = block(&pre[u0..u0 + w]);
        let pf = block(&pre[hd + u0..hd + u0 + w]);
        let pi = block(&pre[2 * hd + u0..2 * hd + u0 + w]);
        let pg = block(&pre[3 * hd + u0..3 * hd + u0 + w]);
        let cp = c_prev.map_or([0.0; LANES], |cp| block(&cp[u0..u0 + w]));
        let (mut o, mut f, mut i, mut g) =
            ([0.0f32; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
        let (mut cn, mut hn) = ([0.0f32; LANES], [0.0f32; LANES]);
        for l in 0..LANES {
            o[l] = sigmoid(po[l]);
            f[l] = sigmoid(pf[l]);
            i[l] = sigmoid(pi[l]);
            g[l] = tanh(pg[l]);
            cn[l] = f[l] * cp[l] + i[l] * g[l];
            hn[l] = o[l] * tanh(cn[l]);
        }
        unblock(&mut gates[u0..u0 + w], &o);
        unblock(&mut gates[hd + u0..hd + u0 + w], &f);
        unblock(&mut gates[2 * hd + u0..2 * hd + u0 + w], &i);
        unblock(&mut gates[3 * hd + u0..3 * hd + u0 + w], &g);
        unblock(&mut c[u0..u0 + w], &cn);
        unblock(&mut h[u0..u0 + w], &hn);
        u0 += w;
    }
}

/// Backward of [`cell_forward`]: from the total `dh` and the cell gradient `dc_in` arriving from
/// the next step, writes `d_pre` `[4h]` and the gradient for the previous cell `dc_prev`.
/// Multiversioned like [`cell_forward`].
#[inline]
pub fn cell_backward(
    gates: &[f32],
    c: &[f32],
    c_prev: Option<&[f32]>,
    dh: &[f32],
    dc_in: &[f32],
    d_pre: &mut [f32],
    dc_prev: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_available() {
            // SAFETY: the CPU has AVX2 (checked at run time).
            unsafe { cell_backward_avx2(gates, c, c_prev, dh, dc_in, d_pre, dc_prev) };
            return;
        }
    }
    cell_backward_body(gates, c, c_prev, dh, dc_in, d_pre, dc_prev);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cell_backward_avx2(
    gates: &[f32],
    c: &[f32],
    c_prev: Option<&[f32]>,
    dh: &[f32],
    dc_in: &[f32],
    d_pre: &mut [f32],
    dc_prev: &mut [f32],
) {
    cell_backward_body(gates, c, c_prev, dh, dc_in, d_pre, dc_prev);
}

#[inline(always)]
fn cell_backward_body(
    gates: &[f32],
    c: &[f32],
    c_prev: Option<&[f32]>,
    dh: &[f32],
    dc_in: &[f32],
    d_pre: &mut [f32],
    dc_prev: &mut [f32],
) {
    let hd = c.len();
    let mut u0 = 0;
    while u0 < hd {
        let w = (hd - u0).min(LANES);
        let o = block(&gates[u0..u0 + w]);
        let f = block(&gates[hd + u0..hd + u0 + w]);
        let i = block(&gates[2 * hd + u0..2 * hd + u0 + w]);
        let g = block(&gates[3 * hd + u0..3 * hd + u0 + w]);
        let cu = block(&c[u0..u0 + w]);
        let dhv = block(&dh[u0..u0 + w]);
        let dci = block(&dc_in[u0..u0 + w]);
        let cp = c_prev.map_or([0.0; LANES], |cp| block(&cp[u0..u0 + w]));
        let (mut d_o, mut d_f, mut d_i, mut d_g) =
            ([0.0f32; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
        let mut dcp = [0.0f32; LANES];
        for l in 0..LANES {
            let tc = tanh(cu[l]);
            let dc = dci[l] + dhv[l] * o[l] * (1.0 - tc * tc);
            d_o[l] = dhv[l] * tc * o[l] * (1.0 - o[l]);
            d_f[l] = dc * cp[l] * f[l] * (1.0 - f[l]);
            d_i[l] = dc * g[l] * i[l] * (1.0 - i[l]);
            d_g[l] = dc * i[l] * (1.0 - g[l] * g[l]);
            dcp[l] = dc * f[l];
        }
        unblock(&mut d_pre[u0..u0 + w], &d_o);
        unblock(&mut d_pre[hd + u0..hd + u0 + w], &d_f);
        unblock(&mut d_pre[2 * hd + u0..2 * hd + u0 + w], &d_i);
        unblock(&mut d_pre[3 * hd + u0..3 * hd + u0 + w], &d_g);
        unblock(&mut dc_prev[u0..u0 + w], &dcp);
        u0 += w;
    }
}
