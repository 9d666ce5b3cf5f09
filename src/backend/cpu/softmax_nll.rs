//! `softmax_nll` on the CPU: 256-way softmax, NLL and its gradient in one pass per sub-pixel.
//! CPU twin of `kernels/softmax_nll.cu` (`softmax_nll_fwd_bwd_v1`).

use rayon::prelude::*;

/// Number of values a sub-pixel can take.
pub const LEVELS: usize = 256;

/// `logits`: `[positions, 256 * channels]` (value `k` of channel `c` at `k * channels + c`);
/// `targets`: `[positions, channels]` integers 0..255. Fills `nll` `[positions, channels]` and
/// `dlogits` (same shape as logits) with `(softmax - onehot) * grad_scale`.
/// Returns false if a target is not an integer in 0..=255.
pub fn softmax_nll(
    logits: &[f32],
    targets: &[f32],
    channels: usize,
    grad_scale: f32,
    nll: &mut [f32],
    dlogits: &mut [f32],
) -> bool {
    let row = LEVELS * channels;
    let bad = std::sync::atomic::AtomicBool::new(false);
    logits
        .par_chunks(row)
        .zip(dlogits.par_chunks_mut(row))
        .zip(
            targets
                .par_chunks(channels)
                .zip(nll.par_chunks_mut(channels)),
        )
        .with_min_len(64)
        .for_each(|((l, dl), (t, out))| {
            for c in 0..channels {
                let target = t[c];
                if !(0.0..=255.0).contains(&target) || target.fract() != 0.0 {
                    bad.store(true, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                let max = (0..LEVELS)
                    .map(|k| l[k * channels + c])
                    .fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for k in 0..LEVELS {
                    let e = (l[k * channels + c] - max).exp();
                    dl[k * channels + c] = e;
                    sum += e;
                }
                let lse = max + sum.ln();
                let k_t = target as usize;
                out[c] = lse - l[k_t * channels + c];
                let inv = grad_scale / sum;
                for k in 0..LEVELS {
                    dl[k * channels + c] *= inv;
                }
                dl[k_t * channels + c] -= grad_scale;
            }
        });
    !bad.into_inner()
}
