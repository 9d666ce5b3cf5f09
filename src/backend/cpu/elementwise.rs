//! Elementwise ops and reductions on the CPU (ReLU, residual add, sums, scaling).

use rayon::prelude::*;

/// Slices shorter than this stay on one thread.
const MIN_LEN: usize = 1 << 14;

/// A vector of `len` elements built in parallel chunks of `chunk` elements (the last may be
/// shorter). Each chunk is first set to `pattern` repeated, then handed to `fill` with its index
/// and the task's scratch value from `init` (rayon's `for_each_init`).
///
/// This replaces `vec![0.0; len]` followed by a pass that fills it: the zeroing is a separate
/// pass over the whole (often larger than cache) buffer, while here each chunk is initialised
/// right before `fill` uses it, while it is in cache.
///
/// # Panics
/// If `pattern` is empty or its length does not divide both `len` and `chunk` (an invariant of
/// the callers: a row of features).
pub fn par_build<S>(
    len: usize,
    chunk: usize,
    pattern: &[f32],
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [f32]) + Sync + Send,
) -> Vec<f32> {
    let p = pattern.len();
    assert!(
        p > 0 && len.is_multiple_of(p) && chunk.is_multiple_of(p) && chunk > 0,
        "par_build: pattern of {p} does not tile chunks of {chunk} and a length of {len}"
    );
    let mut v: Vec<f32> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each_init(init, |scratch, (i, c)| {
            for row in c.chunks_exact_mut(p) {
                for (slot, &value) in row.iter_mut().zip(pattern) {
                    slot.write(value);
                }
            }
            // SAFETY: `p` divides the chunk's length (`chunk` and `len` are multiples of it), so
            // the loop above wrote every element; `MaybeUninit<f32>` has `f32`'s layout.
            let c = unsafe { &mut *(c as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
            fill(scratch, i, c);
        });
    // SAFETY: the chunks cover `0..len` and each was initialised above (a panic in `fill`
    // propagates before this line, leaving the length at 0).
    unsafe { v.set_len(len) };
    v
}

/// `max(x, 0)`, with NaN propagated (as PyTorch's ReLU does): `f32::max` would turn a NaN
/// into 0 and hide it from the non-finite-loss check. Same expression as the kernel's
/// `elementwise_relu_fwd_v1`.
#[inline]
pub fn relu(v: f32) -> f32 {
    if v > 0.0 || v.is_nan() {
        v
    } else {
        0.0
    }
}

/// [`relu`] of every element.
pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .with_min_len(MIN_LEN)
        .map(|&v| relu(v))
        .collect()
}

/// `dy * (y > 0)`.
pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    y.par_iter()
        .zip(dy.par_iter())
        .with_min_len(MIN_LEN)
        .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
        .collect()
}

/// `a + b`.
pub fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.par_iter()
        .zip(b.par_iter())
        .with_min_len(MIN_LEN)
        .map(|(x, y)| x + y)
        .collect()
}

/// Sum in f64.
pub fn sum(x: &[f32]) -> f64 {
    x.par_iter().with_min_len(MIN_LEN).map(|&v| v as f64).sum()
}

/// Sum of squares in f64.
pub fn sum_squares(x: &[f32]) -> f64 {
    x.par_iter()
        .with_min_len(MIN_LEN)
        .map(|&v| (v as f64) * (v as f64))
        .sum()
}

/// `x *= s`.
pub fn scale_inplace(x: &mut [f32], s: f32) {
    x.par_iter_mut().with_min_len(MIN_LEN).for_each(|v| *v *= s);
}
