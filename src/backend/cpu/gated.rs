//! `gated` on the CPU: the gated activation of Gated PixelCNN, `tanh(f) * sigmoid(g)`, where
//! each position's `2F` pre-activation holds the filter block `f` (features `0..F`) and the
//! gate block `g` (`F..2F`). CUDA: kernels/gated.cu. The plain per-element formulas are the
//! reference (tests/gated.rs writes them again in float64).

use rayon::prelude::*;

use crate::backend::geometry::GatedGeom;

/// Positions per rayon task: small maps stay on one thread.
const MIN_ROWS: usize = 256;

/// `1 / (1 + exp(-g))`: exact 0 and 1 in the tails (no NaN from `inf / inf`), NaN kept.
#[inline]
pub fn sigmoid(g: f32) -> f32 {
    1.0 / (1.0 + (-g).exp())
}

/// `y[r, u] = tanh(pre[r, u]) * sigmoid(pre[r, F + u])`.
pub fn forward(pre: &[f32], g: GatedGeom) -> Vec<f32> {
    let f = g.features;
    let mut y = vec![0.0f32; g.outputs()];
    y.par_chunks_mut(f)
        .zip(pre.par_chunks(2 * f))
        .with_min_len(MIN_ROWS)
        .for_each(|(y, p)| {
            let (a, b) = p.split_at(f);
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = a.tanh() * sigmoid(b);
            }
        });
    y
}

/// The pre-activation's gradient: with `t = tanh(f)`, `s = sigmoid(g)`,
/// `df = dy * s * (1 - t^2)` and `dg = dy * t * s * (1 - s)`.
pub fn backward(pre: &[f32], dy: &[f32], g: GatedGeom) -> Vec<f32> {
    let f = g.features;
    let mut dpre = vec![0.0f32; 2 * g.outputs()];
    dpre.par_chunks_mut(2 * f)
        .zip(pre.par_chunks(2 * f))
        .zip(dy.par_chunks(f))
        .with_min_len(MIN_ROWS)
        .for_each(|((d, p), dy)| {
            let (a, b) = p.split_at(f);
            let (da, db) = d.split_at_mut(f);
            for u in 0..f {
                let t = a[u].tanh();
                let s = sigmoid(b[u]);
                da[u] = dy[u] * s * (1.0 - t * t);
                db[u] = dy[u] * t * (s * (1.0 - s));
            }
        });
    dpre
}
