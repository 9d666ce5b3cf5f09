//! `sample_logits` on the CPU: values drawn from the output head's logits by inverting the
//! CDF with given uniforms. CPU twin of `kernels/sample_logits.cu` (`sample_logits_fwd_v1`,
//! `sample_logits_binary_v1`); the semantics are documented on
//! [`crate::backend::Backend::sample_logits`].
//!
//! The arithmetic is the kernel's (f32 weights `exp(l - max)`, running sums, `u * total`
//! against each running sum), summed in value order here and by a warp scan there, so the two
//! agree except where `u` lies within rounding of a CDF boundary.

use rayon::prelude::*;

use crate::backend::geometry::head::LEVELS;

/// Rows per rayon task (sampling draws few rows; the pool only pays off for large batches).
const MIN_ROWS: usize = 64;

/// One sub-pixel: the smallest `k` with `u * W_255 < W_k`, `W_k` the running sums of
/// `exp(l_k - max)` over `k` in value order, where `logit(k)` is value `k`'s logit; 255 if
/// none qualifies.
#[inline]
pub fn draw_softmax(logit: impl Fn(usize) -> f32, u: f32) -> usize {
    // f32::max ignores NaN, like the kernel's fmaxf.
    let max = (0..LEVELS).fold(-f32::MAX, |m, k| m.max(logit(k)));
    let mut cum = [0.0f32; LEVELS];
    let mut running = 0.0f32;
    for (k, c) in cum.iter_mut().enumerate() {
        running += (logit(k) - max).exp();
        *c = running;
    }
    let target = u * running;
    cum.iter().position(|&c| target < c).unwrap_or(LEVELS - 1)
}

/// 1 if `u < sigmoid(l)`, else 0 (sigmoid evaluated without overflow, as in the kernel); NaN
/// if `l` is NaN or infinite (see [`crate::backend::Backend::sample_logits`]).
#[inline]
pub fn draw_binary(l: f32, u: f32) -> f32 {
    if !l.is_finite() {
        return f32::NAN;
    }
    let p = if l >= 0.0 {
        1.0 / (1.0 + (-l).exp())
    } else {
        let e = l.exp();
        e / (1.0 + e)
    };
    if u < p {
        1.0
    } else {
        0.0
    }
}

/// 256-way: `logits` `[rows, 256 * channels]` (value `k` of channel `c` at
/// `k * channels + c`), `uniforms` `[rows, channels]` -> drawn values `[rows, channels]`; NaN
/// where one of that channel's 256 logits is NaN or infinite.
pub fn sample_softmax(logits: &[f32], uniforms: &[f32], channels: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; uniforms.len()];
    out.par_chunks_mut(channels)
        .zip(uniforms.par_chunks(channels))
        .zip(logits.par_chunks(LEVELS * channels))
        .with_min_len(MIN_ROWS)
        .for_each(|((out, u), l)| {
            for (c, (o, &u)) in out.iter_mut().zip(u).enumerate() {
                let logit = |k: usize| l[k * channels + c];
                *o = if (0..LEVELS).all(|k| logit(k).is_finite()) {
                    draw_softmax(logit, u) as f32
                } else {
                    f32::NAN
                };
            }
        });
    out
}

/// Binary: `logits` and `uniforms` of the same length -> 0/1 values.
pub fn sample_binary(logits: &[f32], uniforms: &[f32]) -> Vec<f32> {
    logits
        .iter()
        .zip(uniforms)
        .map(|(&l, &u)| draw_binary(l, u))
        .collect()
}
