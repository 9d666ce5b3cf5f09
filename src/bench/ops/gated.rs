//! Gated PixelCNN's gated activation on a `[n, H, W, 4h]` pre-activation (a stack's `4h`
//! gate pre-activation to its `2h` output): forward and backward.

use super::super::case::{numel, random, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let pre = [cfg.batch, cfg.height, cfg.width, 4 * cfg.hidden];
    let out = [cfg.batch, cfg.height, cfg.width, 2 * cfg.hidden];
    let e = numel(&out);
    let on = format!("{pre:?}");
    vec![
        OpCase::new(
            "gated fwd",
            "gated_fwd",
            on.clone(),
            move || Ok(vec![random(&pre, 220, 2.0)]),
            |be: &X, a| Ok(vec![Output::T(be.gated_forward(&a.t[0])?)]),
        )
        // pre (2 per output) + y
        .bytes(3 * e),
        OpCase::new(
            "gated bwd",
            "gated_bwd",
            on,
            move || Ok(vec![random(&pre, 221, 2.0), random(&out, 222, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.gated_backward(&a.t[0], &a.t[1])?)]),
        )
        // pre + dy + dpre
        .bytes(5 * e),
    ]
}
