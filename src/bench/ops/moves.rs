//! The Diagonal BiLSTM's data movement on a `[n, H, W, h]` map: the materialised skew and
//! unskew (`Ws = skewed_width(H, W)` columns), the mirror of the right-to-left direction and
//! the one-row shift. Copies: no FLOPs.

use super::super::case::{numel, random, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let (n, hh, ww, h) = (cfg.batch, cfg.height, cfg.width, cfg.hidden);
    let img = [n, hh, ww, h];
    let skewed = [n, hh, crate::backend::skewed_width(hh, ww), h];
    let (i, s) = (numel(&img), numel(&skewed));
    vec![
        OpCase::new(
            "skew",
            "skew_fwd",
            format!("{img:?}"),
            move || Ok(vec![random(&img, 500, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.skew(&a.t[0])?)]),
        )
        // the image + the skewed map
        .bytes(i + s),
        OpCase::new(
            "unskew",
            "skew_unskew",
            format!("{skewed:?}"),
            move || Ok(vec![random(&skewed, 501, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.unskew(&a.t[0])?)]),
        )
        // the skewed map + the image
        .bytes(s + i),
        OpCase::new(
            "mirror_width",
            "mirror_shift_mirror_width",
            format!("{img:?}"),
            move || Ok(vec![random(&img, 502, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.mirror_width(&a.t[0])?)]),
        )
        .bytes(2 * i),
        OpCase::new(
            "shift_down",
            "mirror_shift_shift_down",
            format!("{img:?}"),
            move || Ok(vec![random(&img, 503, 1.0)]),
            |be: &X, a| Ok(vec![Output::T(be.shift_down(&a.t[0])?)]),
        )
        .bytes(2 * i),
    ]
}
