//! Elementwise ops and reductions on the CPU (ReLU, residual add, sums, scaling).

use rayon::prelude::*;

/// Slices shorter than this stay on one thread.
const MIN_LEN: usize = 1 << 14;

/// `max(x, 0)`.
pub fn relu_forward(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .with_min_len(MIN_LEN)
        .map(|&v| v.max(0.0))
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
