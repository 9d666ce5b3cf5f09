//! `softmax_nll` on the CPU: 256-way softmax, NLL and its gradient in one pass per sub-pixel.
//! CPU twin of `kernels/softmax_nll.cu` (`softmax_nll_fwd_bwd_v1`).
//!
//! Fast path: each sub-pixel's 256 logits are copied to a contiguous stack buffer (a no-op
//! gather for C = 1), and the exponentials use [`exp_neg`], a branch-free polynomial that the
//! compiler vectorises (libm's `expf` is a scalar call: 3.2 M of them per PixelCNN step at
//! 28x28, batch 16, were about a fifth of the loss's time budget). The kernel is compiled twice,
//! for the baseline target and with AVX2 enabled, and picked at run time; both compute the same
//! operations in the same order (Rust never contracts `a * b + c` into an FMA), so results do
//! not depend on the machine. The plain `f32::exp` version is the reference in the tests
//! (`tests/ops_reference.rs` checks against f64).

use rayon::prelude::*;

use crate::backend::geometry::head::{Targets, LEVELS};

/// `exp(x)` for `x <= 0` (arguments below -87 give about 1.6e-38 instead of a denormal or 0),
/// within 2 ulp of the true value: Cephes' `expf` range reduction (`x = n ln2 + r`, `|r| <=
/// ln2 / 2`, ln2 split in two for an exact `n ln2`) and its degree-7 polynomial, with the
/// rounding of `x / ln2` done by the 1.5 * 2^23 trick so that no rounding instruction is
/// needed. Branch-free, so loops over it vectorise. NaN gives NaN (as libm's `expf`, the
/// kernels' exponential), so neither the loss nor the LSTM gates hide a NaN input.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Not `x.max(-87.0)`: f32::max would turn NaN into -87, a finite 1.6e-38.
    let x = if x < -87.0 { -87.0 } else { x };
    let shifted = x * LOG2E + MAGIC;
    // The low mantissa bits of `shifted` hold `n` (|n| <= 126) as a two's-complement integer.
    let n_int = shifted.to_bits().wrapping_sub(MAGIC.to_bits());
    let n = shifted - MAGIC;
    let r = x - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    e * scale
}

/// One sub-pixel: `buf` holds its 256 logits; on return it holds the scaled gradient
/// `(softmax - onehot(target)) * grad_scale`; returns the NLL.
#[inline(always)]
fn one(buf: &mut [f32; LEVELS], target: usize, grad_scale: f32) -> f32 {
    // Eight running maxima / sums so that the reductions vectorise.
    let mut m8 = [f32::NEG_INFINITY; 8];
    for ch in buf.chunks_exact(8) {
        for (m, &v) in m8.iter_mut().zip(ch) {
            *m = m.max(v);
        }
    }
    let max = m8.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let l_t = buf[target];
    let mut s8 = [0.0f32; 8];
    for ch in buf.chunks_exact_mut(8) {
        for (s, v) in s8.iter_mut().zip(ch) {
            *v = exp_neg(*v - max);
            *s += *v;
        }
    }
    let sum: f32 = s8.iter().sum();
    let inv = grad_scale / sum;
    for v in buf.iter_mut() {
        *v *= inv;
    }
    buf[target] -= grad_scale;
    // `(max - l_t) + ln(sum)`, not `max + ln(sum) - l_t`: with logits of large magnitude
    // (|max| ~ 1e12, ulp 65536) `max + ln(sum)` rounds back to `max` and the NLL of equal
    // logits came out 0 instead of ln 256. `max - l_t` is exact when the two are within a
    // factor 2 (Sterbenz) and 0 when they are equal, so the NLL keeps f32's relative precision
    // whatever the logits' magnitude (README, "Errors": what the f32 loss can represent).
    (max - l_t) + sum.ln()
}

/// The per-row kernel: every channel of one position.
#[inline(always)]
fn row_kernel(l: &[f32], dl: &mut [f32], t: &[f32], out: &mut [f32], grad_scale: f32) -> bool {
    let channels = t.len();
    let mut ok = true;
    let mut buf = [0.0f32; LEVELS];
    for c in 0..channels {
        let target = t[c];
        if !Targets::Levels.admits(target) {
            ok = false;
            continue;
        }
        if channels == 1 {
            buf.copy_from_slice(l);
        } else {
            for (k, b) in buf.iter_mut().enumerate() {
                *b = l[k * channels + c];
            }
        }
        out[c] = one(&mut buf, target as usize, grad_scale);
        if channels == 1 {
            dl.copy_from_slice(&buf);
        } else {
            for (k, &b) in buf.iter().enumerate() {
                dl[k * channels + c] = b;
            }
        }
    }
    ok
}

/// [`row_kernel`] compiled with AVX2 (same operations, wider vectors).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_kernel_avx2(
    l: &[f32],
    dl: &mut [f32],
    t: &[f32],
    out: &mut [f32],
    grad_scale: f32,
) -> bool {
    row_kernel(l, dl, t, out, grad_scale)
}

/// `logits`: `[positions, 256 * channels]` (value `k` of channel `c` at `k * channels + c`);
/// `targets`: `[positions, channels]` integers 0..255. Fills `nll` `[positions, channels]` and
/// `dlogits` (same shape as logits) with `(softmax - onehot) * grad_scale`.
/// Returns false if a target is not an integer in 0..=255 ([`Targets::admits`]).
pub fn softmax_nll(
    logits: &[f32],
    targets: &[f32],
    channels: usize,
    grad_scale: f32,
    nll: &mut [f32],
    dlogits: &mut [f32],
) -> bool {
    let row = LEVELS * channels;
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let bad = std::sync::atomic::AtomicBool::new(false);
    logits
        .par_chunks(row)
        .zip(dlogits.par_chunks_mut(row))
        .zip(
            targets
                .par_chunks(channels)
                .zip(nll.par_chunks_mut(channels)),
        )
        .with_min_len(256)
        .for_each(|((l, dl), (t, out))| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 support was detected above.
            let ok = if avx2 {
                unsafe { row_kernel_avx2(l, dl, t, out, grad_scale) }
            } else {
                row_kernel(l, dl, t, out, grad_scale)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let ok = row_kernel(l, dl, t, out, grad_scale);
            if !ok {
                bad.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
    !bad.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_matches_libm() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            let got = exp_neg(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        // 2 ulp of fp32 is 2.4e-7.
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert!(exp_neg(f32::NEG_INFINITY) > 0.0 && exp_neg(-1e30) < 1e-37);
    }

    #[test]
    fn exp_neg_of_nan_is_nan() {
        assert!(exp_neg(f32::NAN).is_nan());
        assert!(exp_neg(-f32::NAN).is_nan());
    }
}
