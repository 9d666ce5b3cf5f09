//! The CPU masked convolution on maps large enough that a thread walks several row blocks (the
//! backward pass's blocks hold about a thousand rows; a 1x1 convolution's thread share is split
//! into blocks of at most 4096 rows), against a float64 reference written tap by tap: forward,
//! input, weight and bias gradients (tests/common/reference/conv.rs). `tests/ops_reference.rs`
//! covers the small maps.

mod common;

use pixelrnn::backend::cpu::masked_conv2d::{backward, forward, ConvGeom};
use pixelrnn::backend::{ConvSpec, Mask};

use common::helpers::f64s;
use common::reference::conv::ConvCase;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The float64 forward and gradients of `sum(dy * conv(x))`, each with the sum of the absolute
/// values of its terms (the scale of its rounding error): the reference of
/// tests/common/reference/conv.rs on the values, and on their absolute values.
struct Reference {
    y: Vec<(f64, f64)>,
    dx: Vec<(f64, f64)>,
    dw: Vec<(f64, f64)>,
    db: Vec<(f64, f64)>,
}

fn reference(x: &[f32], w: &[f32], b: &[f32], dy: &[f32], g: ConvGeom, s: &ConvSpec) -> Reference {
    let case = ConvCase {
        in_block: s.in_block,
        out_block: s.out_block,
        ..ConvCase::new(
            "",
            (s.kh, s.kw),
            s.mask,
            s.groups,
            (g.cin, g.cout),
            (g.n, g.h, g.w),
        )
    };
    let abs = |v: &[f64]| -> Vec<f64> { v.iter().map(|a| a.abs()).collect() };
    let (x, w, b, dy) = (f64s(x), f64s(w), f64s(b), f64s(dy));
    let (ax, aw, ab, ady) = (abs(&x), abs(&w), abs(&b), abs(&dy));
    let pair =
        |v: Vec<f64>, scale: Vec<f64>| -> Vec<(f64, f64)> { v.into_iter().zip(scale).collect() };
    let (dx, dw, db) = case.backward(&x, &w, &dy);
    let (sdx, sdw, sdb) = case.backward(&ax, &aw, &ady);
    Reference {
        y: pair(case.forward(&x, &w, &b), case.forward(&ax, &aw, &ab)),
        dx: pair(dx, sdx),
        dw: pair(dw, sdw),
        db: pair(db, sdb),
    }
}

/// Every element within `1e-5` of its terms' absolute sum (f32 sums of a few thousand terms).
fn check(case: &str, what: &str, got: &[f32], want: &[(f64, f64)]) {
    assert_eq!(got.len(), want.len(), "{case}: {what} length");
    for (k, (&g, &(v, scale))) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * (scale + 1e-3);
        assert!(
            (g as f64 - v).abs() <= tol,
            "{case}: {what}[{k}] = {g}, want {v} (tolerance {tol:e})"
        );
    }
}

fn run(case: &str, g: ConvGeom, spec: ConvSpec) {
    let rows = g.n * g.h * g.w;
    let x = values(rows * g.cin, 1);
    let w = values(g.cout * g.cin * spec.kh * spec.kw, 2);
    let b = values(g.cout, 3);
    let dy = values(rows * g.cout, 4);
    let want = reference(&x, &w, &b, &dy, g, &spec);
    check(case, "y", &forward(&x, &w, &b, g, &spec), &want.y);
    let (dx, dw, db) = backward(&x, &w, &dy, g, &spec, true);
    check(case, "dx", &dx.expect("dx wanted"), &want.dx);
    check(case, "dw", &dw, &want.dw);
    check(case, "db", &db, &want.db);
    // Without the input gradient: the same weight and bias gradients, bit for bit.
    let (none, dw2, db2) = backward(&x, &w, &dy, g, &spec, false);
    assert!(none.is_none(), "{case}: dx not wanted");
    assert_eq!(dw, dw2, "{case}: dw depends on need_dx");
    assert_eq!(db, db2, "{case}: db depends on need_dx");
}

#[test]
fn row_lstm_input_to_state_with_several_blocks_per_image() {
    // 1x3 mask B, 3 groups over gate blocks of 32 (h = 32): 1600 rows per image, blocks of
    // 1024.
    let g = ConvGeom {
        n: 2,
        h: 40,
        w: 40,
        cin: 64,
        cout: 128,
    };
    let spec = ConvSpec {
        out_block: 32,
        ..ConvSpec::new(1, 3, Mask::B, 3, 64, 128)
    };
    run("1x3 mask B 64->128", g, spec);
}

#[test]
fn input_layer_7x7_mask_a_with_several_blocks_per_image() {
    // 75 gathered columns: blocks of ~2500 rows, 3136 rows per image.
    let g = ConvGeom {
        n: 1,
        h: 56,
        w: 56,
        cin: 3,
        cout: 8,
    };
    run("7x7 mask A 3->8", g, ConvSpec::new(7, 7, Mask::A, 3, 3, 8));
}

#[test]
fn pointwise_with_several_blocks_per_thread() {
    // 1x1: blocks of at most 4096 rows; 18432 rows are several blocks for any thread count
    // up to 4, and uneven shares (18432 is not a multiple of 16 * 7) for 7 threads.
    let g = ConvGeom {
        n: 4,
        h: 48,
        w: 96,
        cin: 3,
        cout: 6,
    };
    run("1x1 mask B 3->6", g, ConvSpec::new(1, 1, Mask::B, 3, 3, 6));
}
