//! Class bias (class conditioning) on a Row LSTM's `[n, H, W, 4h]` input-to-state map with 10
//! classes: the forward adds each image's table row at every position, the backward sums each
//! class's images and positions. Additions only: no GEMM FLOPs.

use super::super::case::{numel, random, HostTensor, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// Classes of the benched table (MNIST's and CIFAR-10's).
const CLASSES: usize = 10;

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let (n, hh, ww, f) = (cfg.batch, cfg.height, cfg.width, 4 * cfg.hidden);
    let map = [n, hh, ww, f];
    let table = [CLASSES, f];
    // Image b of class b mod 10: every row of the table is used once n >= 10.
    let labels = move || HostTensor {
        shape: vec![n],
        data: (0..n).map(|b| (b % CLASSES) as f32).collect(),
    };
    let (m, t) = (numel(&map), numel(&table));
    vec![
        OpCase::new(
            "class_bias fwd",
            "class_bias_fwd",
            format!("{map:?} + [{CLASSES}, {f}]"),
            move || {
                Ok(vec![
                    random(&map, 520, 1.0),
                    random(&table, 521, 1.0),
                    labels(),
                ])
            },
            |be: &X, a| {
                Ok(vec![Output::T(
                    be.class_bias_forward(&a.t[0], &a.t[1], &a.t[2])?,
                )])
            },
        )
        // map, table and labels read; the map written
        .bytes(2 * m + t + n),
        OpCase::new(
            "class_bias bwd",
            "class_bias_bwd",
            format!("{map:?} -> [{CLASSES}, {f}]"),
            move || Ok(vec![random(&map, 522, 1.0), labels()]),
            |be: &X, a| {
                Ok(vec![Output::T(
                    be.class_bias_backward(&a.t[0], &a.t[1], CLASSES)?,
                )])
            },
        )
        // the gradient map and the labels read; the table gradient written
        .bytes(m + n + t),
    ]
}
