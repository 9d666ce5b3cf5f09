//! Global-norm gradient clipping's two ops (src/optim.rs), on a logits-sized vector: the sum
//! of squares and the in-place scale.

use super::super::case::{numel, random, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let logits = [cfg.batch, cfg.height, cfg.width, 256 * cfg.channels];
    let l = numel(&logits);
    vec![
        OpCase::new(
            "sum_squares",
            "reduce_sum_squares_fwd",
            format!("{logits:?}"),
            move || Ok(vec![random(&logits, 504, 1.0)]),
            |be: &X, a| Ok(vec![Output::S(be.sum_squares(&a.t[0])?)]),
        )
        // a multiply and an add per element
        .flops(2.0 * l as f64)
        // x + the scalar
        .bytes(l + 1),
        // By -1: exact, so repeated calls do not drift.
        OpCase::new(
            "scale_inplace",
            "elementwise_scale_fwd",
            format!("{logits:?}"),
            move || Ok(vec![random(&logits, 505, 1.0)]),
            |be: &X, a| {
                be.scale_inplace(&mut a.t[0], -1.0)?;
                Ok(Vec::new())
            },
        )
        .updates(&[0])
        .flops(l as f64)
        // x read, x written
        .bytes(2 * l),
    ]
}
