//! `logistic_mixture` on the CPU: the discretized logistic mixture likelihood of PixelCNN++
//! (NLL fused with its gradient) and the draw of a pixel from it. CPU twin of
//! `kernels/logistic_mixture.cu` (`logistic_mixture_fwd_bwd_v1`, `logistic_mixture_sample_v1`);
//! the formulas and every decision are in docs/logistic-mixture.md.
//!
//! Layout of one position's `P = K (1 + 2C + C(C-1)/2)` head outputs (component `k`, channel
//! `c`): `[0, K)` mixture logits; `K + c K + k` means; `K + C K + c K + k` log-scales;
//! (C = 3) `K + 2 C K + j K + k` the coefficients `j = 0, 1, 2` before their tanh.
//!
//! The arithmetic is the kernel's, in the same order per component; the log-sum-exps over the
//! components add in component order here and by a warp butterfly there, so the two agree to
//! a few ulp (the parity tests' `FP32_REL_TOL`).

use rayon::prelude::*;

use crate::backend::geometry::Targets;

/// Log-scales are clamped below at this value (PixelCNN++'s `-7`): a component may not get
/// narrower than `e^-7` (a quarter of a bin) in [-1, 1] units; the clamp passes no gradient.
pub const LOG_SCALE_MIN: f32 = -7.0;

/// Half a bin in the [-1, 1] scale of the network input: the bins of 0..255 have centres
/// `v / 127.5 - 1` and edges at `+-1/255` around them.
const HALF_BIN: f32 = 1.0 / 255.0;

/// Positions per rayon task.
const MIN_ROWS: usize = 64;

/// `log(1 + e^x)` without overflow (as `pixelrnn_softplus` in kernels/common.cuh).
#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-x)` without overflow (as `pixelrnn_sigmoid`).
#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 - e^-d)` for `d > 0`, accurate at both ends (Maechler's `log1mexp`).
#[inline]
fn log1mexp(d: f32) -> f32 {
    if d <= std::f32::consts::LN_2 {
        (-(-d).exp_m1()).ln()
    } else {
        (-(-d).exp()).ln_1p()
    }
}

/// The log-probability of bin `v` under one logistic component and its derivatives.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bin {
    /// `log P(v | mean m, log-scale ls)`.
    pub logp: f32,
    /// d logp / d m.
    pub dmean: f32,
    /// d logp / d ls_raw (0 where the clamp is active).
    pub dlog_scale: f32,
}

/// Bin `v` (0..=255; its centre `x = v / 127.5 - 1`) under the logistic of mean `m` and
/// log-scale `max(ls_raw, LOG_SCALE_MIN)`. With `a`, `b` the standardised upper and lower bin
/// edges and `d = a - b = 2 / (255 s)`: `log sigmoid(a)` at 0, `log(1 - sigmoid(b))` at 255,
/// and in between `log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) +
/// log(1 - e^-d)`, an identity that is exact and stable everywhere (no underflow fallback).
#[inline]
pub fn bin(v: f32, x: f32, m: f32, ls_raw: f32) -> Bin {
    let clamped = ls_raw < LOG_SCALE_MIN;
    let ls = if clamped { LOG_SCALE_MIN } else { ls_raw };
    let inv_s = (-ls).exp();
    let mid = inv_s * (x - m);
    let half = inv_s * HALF_BIN;
    let (a, b, d) = (mid + half, mid - half, half + half);
    let (logp, ga, gb, gdd) = if v == 0.0 {
        (-softplus(-a), sigmoid(-a), 0.0, 0.0)
    } else if v == 255.0 {
        (-softplus(b), 0.0, -sigmoid(b), 0.0)
    } else {
        // d * d/dd log(1 - e^-d) = d / (e^d - 1), which tends to 1 as d -> 0.
        let gdd = if d > 0.0 { d / d.exp_m1() } else { 1.0 };
        (
            -softplus(-a) - softplus(b) + log1mexp(d),
            sigmoid(-a),
            -sigmoid(b),
            gdd,
        )
    };
    Bin {
        logp,
        dmean: -inv_s * (ga + gb),
        // a, b and d are all proportional to 1/s = e^-ls: d/dls of each is minus itself.
        dlog_scale: if clamped {
            0.0
        } else {
            -(a * ga + b * gb + gdd)
        },
    }
}

/// `log sum exp` of `z`, max first.
#[inline]
fn lse(z: &[f32]) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
    max + sum.ln()
}

/// Most components a position can have (the kernels' one lane per component).
const MAX_K: usize = crate::models::MAX_MIXTURES;

/// One position: params `p` `[P]`, targets `t` `[C]` -> per-channel NLL (the chain-rule
/// split `-log p(x_c | x_<c)` under the mixture) into `nll`, the scaled gradient into `dp`.
/// False if a target is not an integer in 0..=255.
fn position(
    p: &[f32],
    t: &[f32],
    k: usize,
    grad_scale: f32,
    nll: &mut [f32],
    dp: &mut [f32],
) -> bool {
    let c = t.len();
    if !t.iter().all(|&v| Targets::Levels.admits(v)) {
        return false;
    }
    let x: Vec<f32> = t.iter().map(|&v| v / 127.5 - 1.0).collect();
    let (mean, scale, coef) = (k, k + c * k, k + 2 * c * k);
    // z[c][j]: log pi_j (unnormalised) plus the log-probabilities of channels before c.
    let mut z = [[0.0f32; MAX_K]; 4];
    let mut bins = [[Bin::default(); MAX_K]; 3];
    let mut tanh = [[0.0f32; MAX_K]; 3];
    for j in 0..k {
        z[0][j] = p[j];
        if c == 3 {
            for (q, th) in tanh.iter_mut().enumerate() {
                th[j] = p[coef + q * k + j].tanh();
            }
        }
        for ch in 0..c {
            let mut m = p[mean + ch * k + j];
            if ch == 1 {
                m += tanh[0][j] * x[0];
            } else if ch == 2 {
                m += tanh[1][j] * x[0] + tanh[2][j] * x[1];
            }
            bins[ch][j] = bin(t[ch], x[ch], m, p[scale + ch * k + j]);
            z[ch + 1][j] = z[ch][j] + bins[ch][j].logp;
        }
    }
    let a: Vec<f32> = (0..=c).map(|q| lse(&z[q][..k])).collect();
    for ch in 0..c {
        nll[ch] = a[ch] - a[ch + 1];
    }
    for j in 0..k {
        let q = (z[0][j] - a[0]).exp();
        let r = (z[c][j] - a[c]).exp();
        dp[j] = (q - r) * grad_scale;
        for ch in 0..c {
            dp[mean + ch * k + j] = -r * bins[ch][j].dmean * grad_scale;
            dp[scale + ch * k + j] = -r * bins[ch][j].dlog_scale * grad_scale;
        }
        if c == 3 {
            let (dm1, dm2) = (dp[mean + k + j], dp[mean + 2 * k + j]);
            dp[coef + j] = dm1 * x[0] * (1.0 - tanh[0][j] * tanh[0][j]);
            dp[coef + k + j] = dm2 * x[0] * (1.0 - tanh[1][j] * tanh[1][j]);
            dp[coef + 2 * k + j] = dm2 * x[1] * (1.0 - tanh[2][j] * tanh[2][j]);
        }
    }
    true
}

/// `params` `[positions, P]`, `targets` `[positions, C]` (0..255) -> `nll` `[positions, C]`
/// (nats; channel c holds `-log p(x_c | x_<c, earlier pixels)`, so a pixel's channels sum to
/// its NLL) and `dparams` (the gradient of the summed NLL times `grad_scale`). False if a
/// target is invalid.
pub fn logistic_mixture_nll(
    params: &[f32],
    targets: &[f32],
    channels: usize,
    k: usize,
    grad_scale: f32,
    nll: &mut [f32],
    dparams: &mut [f32],
) -> bool {
    if targets.is_empty() {
        return true;
    }
    let per = params.len() / (targets.len() / channels);
    params
        .par_chunks(per)
        .zip(targets.par_chunks(channels))
        .zip(nll.par_chunks_mut(channels))
        .zip(dparams.par_chunks_mut(per))
        .with_min_len(MIN_ROWS)
        .map(|(((p, t), n), d)| position(p, t, k, grad_scale, n, d))
        .reduce(|| true, |x, y| x && y)
}

/// The component of one position: temperature 0 the first most likely; else, with
/// `l_j = logit_j / T` and running sums `W_j` of `exp(l_j - max l)`, the smallest `j` with
/// `u W_{K-1} < W_j` (`K - 1` if none: `u >= 1`), as `sample_logits` draws a value.
fn component(logits: &[f32], u: f32, inv_t: f32, greedy: bool) -> usize {
    if greedy {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        return logits.iter().position(|&l| l == max).unwrap_or(0);
    }
    let scaled: Vec<f32> = logits.iter().map(|&l| l * inv_t).collect();
    let max = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut running = 0.0f32;
    let cum: Vec<f32> = scaled
        .iter()
        .map(|&l| {
            running += (l - max).exp();
            running
        })
        .collect();
    let target = u * running;
    cum.iter()
        .position(|&w| target < w)
        .unwrap_or(logits.len() - 1)
}

/// One pixel drawn from one position's params `p` with uniforms `u` `[C + 1]` into `out`
/// `[C]` (see [`crate::backend::Backend::logistic_mixture_sample`]).
fn draw_pixel(p: &[f32], u: &[f32], k: usize, temperature: f32, out: &mut [f32]) {
    let c = out.len();
    if !p.iter().all(|v| v.is_finite()) {
        out.fill(f32::NAN);
        return;
    }
    let greedy = temperature == 0.0;
    let j = component(&p[..k], u[0], 1.0 / temperature, greedy);
    let (mean, scale, coef) = (k, k + c * k, k + 2 * c * k);
    let mut x = [0.0f32; 3];
    for ch in 0..c {
        let mut m = p[mean + ch * k + j];
        if ch == 1 {
            m += p[coef + j].tanh() * x[0];
        } else if ch == 2 {
            m += p[coef + k + j].tanh() * x[0] + p[coef + 2 * k + j].tanh() * x[1];
        }
        let y = if greedy {
            m
        } else {
            let ls = p[scale + ch * k + j].max(LOG_SCALE_MIN);
            let uc = u[1 + ch];
            // The logistic's inverse CDF at u: m + s log(u / (1 - u)).
            m + temperature * ls.exp() * (uc.ln() - (-uc).ln_1p())
        };
        // The bin whose edges enclose y. max/min, not clamp: like the kernel's fmaxf/fminf they
        // return the other operand for NaN (an infinite scale times a zero logit), where clamp
        // would return NaN, which the sampler reads as non-finite parameters.
        #[allow(clippy::manual_clamp)]
        let v = ((y + 1.0) * 127.5).round_ties_even().max(0.0).min(255.0);
        out[ch] = v;
        x[ch] = v / 127.5 - 1.0;
    }
}

/// `params` `[rows, P]`, `uniforms` `[rows, C + 1]` -> drawn pixels `[rows, C]` (0..255 as
/// floats; NaN for a row with a non-finite parameter).
pub fn logistic_mixture_sample(
    params: &[f32],
    uniforms: &[f32],
    channels: usize,
    k: usize,
    temperature: f32,
) -> Vec<f32> {
    let rows = uniforms.len() / (channels + 1);
    let mut out = vec![0.0f32; rows * channels];
    if rows == 0 {
        return out;
    }
    let per = params.len() / rows;
    out.par_chunks_mut(channels)
        .zip(uniforms.par_chunks(channels + 1))
        .zip(params.par_chunks(per))
        .with_min_len(MIN_ROWS)
        .for_each(|((o, u), p)| draw_pixel(p, u, k, temperature, o));
    out
}
