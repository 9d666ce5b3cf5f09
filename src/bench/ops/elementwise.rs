//! The elementwise ops of a residual block on its `[n, H, W, 2h]` map: ReLU forward and
//! backward, and the residual `add`.

use super::super::case::{numel, random, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let map = [cfg.batch, cfg.height, cfg.width, 2 * cfg.hidden];
    let e = numel(&map);
    let on = format!("{map:?}");
    vec![
        OpCase::new(
            "relu fwd",
            "elementwise_relu_fwd",
            on.clone(),
            move || Ok(vec![random(&map, 200, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.relu_forward(&a.t[0])?)]),
        )
        // x + y
        .bytes(2 * e),
        OpCase::new(
            "relu bwd",
            "elementwise_relu_bwd",
            on.clone(),
            move || Ok(vec![random(&map, 201, 1.0), random(&map, 202, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.relu_backward(&a.t[0], &a.t[1])?)]),
        )
        // y + dy + dx
        .bytes(3 * e),
        OpCase::new(
            "add",
            "elementwise_add_fwd",
            on,
            move || Ok(vec![random(&map, 203, 1.0), random(&map, 204, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.add(&a.t[0], &a.t[1])?)]),
        )
        .flops(e as f64)
        // a + b + sum
        .bytes(3 * e),
    ]
}
