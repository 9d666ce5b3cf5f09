//! The recurrence ops of the Row LSTM and the Diagonal BiLSTM (MODELS.md, "Row LSTM layer",
//! "Diagonal BiLSTM layer"), op by op: skew, unskew, mirror and shift by their formulas and as
//! adjoints; `row_lstm_forward` and `diag_lstm_forward` against the float64 scans of
//! tests/common/reference/lstm.rs (the Diagonal one on a MATERIALISED skew, while the backend
//! folds the skew into its indexing: agreement of the two is the point); their backwards
//! against central differences of those scans in float64. Tolerances: tests/common/recurrent.rs.
//!
//! The layers are in tests/recurrent_layers.rs, causality and receptive fields in
//! tests/recurrent_causality.rs. Run with `cargo test --release --test recurrent_ops`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{Backend, LstmState};

use common::helpers::{
    assert_grad, assert_rel, dot, f64s, finite_differences, host, nonzero, rng, t, uniform,
};
use common::recurrent::{FD_EPS, FWD_TOL, GRAD_TOL, RECS};
use common::reference::lstm::{diag_scan, row_scan, ScanStates};
use common::reference::Dims;

// ---------------------------------------------------------------------------------------------
// Skew, unskew, mirror, shift
// ---------------------------------------------------------------------------------------------

/// The skewed map `sv` (`ws` columns) of the `d`-shaped `x` is `S[r, r + j] = x[r, j]`, zero
/// elsewhere, exactly (the op only moves values).
fn assert_skew_formula(sv: &[f32], x: &[f32], d: Dims, ws: usize) {
    let ds = Dims { w: ws, ..d };
    for bb in 0..d.n {
        for row in 0..d.h {
            for col in 0..ws {
                for f in 0..d.c {
                    let want = if col >= row && col - row < d.w {
                        x[d.at(bb, row, col - row) + f]
                    } else {
                        0.0
                    };
                    assert_eq!(
                        sv[ds.at(bb, row, col) + f],
                        want,
                        "skew at ({bb},{row},{col},{f})"
                    );
                }
            }
        }
    }
}

#[test]
fn skew_unskew_mirror_shift_follow_the_spec_formulas() {
    let b = CpuBackend::new();
    let mut r = rng(1);
    let (n, h, w, c) = (2, 3, 4, 2);
    let d = Dims::new(n, h, w, c);
    let x = nonzero(&mut r, d.len(), 1.0);
    let xt = t(&b, &d.shape(), &x);
    // skew: S[r, r + j] = x[r, j], zero elsewhere (exact: it only moves values).
    let s = b.skew(&xt).unwrap();
    let ws = 2 * w - 1;
    assert_eq!(s.shape, vec![n, h, ws, c]);
    let sv = host(&b, &s);
    let ds = Dims { w: ws, ..d };
    assert_skew_formula(&sv, &x, d, ws);
    // unskew of a map that is nonzero everywhere: out[r, j] = S[r, r + j].
    let sfull = nonzero(&mut r, ds.len(), 1.0);
    let u = host(&b, &b.unskew(&t(&b, &ds.shape(), &sfull)).unwrap());
    assert_eq!(u.len(), d.len());
    for bb in 0..n {
        for row in 0..h {
            for j in 0..w {
                for f in 0..c {
                    assert_eq!(u[d.at(bb, row, j) + f], sfull[ds.at(bb, row, row + j) + f]);
                }
            }
        }
    }
    assert_eq!(host(&b, &b.unskew(&s).unwrap()), x, "unskew(skew(x)) == x");
    // mirror, shift_down, shift_up by their formulas.
    let m = host(&b, &b.mirror_width(&xt).unwrap());
    let sd = host(&b, &b.shift_down(&xt).unwrap());
    let su = host(&b, &b.shift_up(&xt).unwrap());
    for bb in 0..n {
        for row in 0..h {
            for j in 0..w {
                for f in 0..c {
                    let at = d.at(bb, row, j) + f;
                    assert_eq!(m[at], x[d.at(bb, row, w - 1 - j) + f], "mirror");
                    let down = if row == 0 {
                        0.0
                    } else {
                        x[d.at(bb, row - 1, j) + f]
                    };
                    assert_eq!(sd[at], down, "shift_down");
                    let up = if row == h - 1 {
                        0.0
                    } else {
                        x[d.at(bb, row + 1, j) + f]
                    };
                    assert_eq!(su[at], up, "shift_up");
                }
            }
        }
    }
}

/// The backward of a linear op is its adjoint: `<A x, y> == <x, A^T y>`.
#[test]
fn skew_unskew_mirror_shift_adjoints() {
    let b = CpuBackend::new();
    let mut r = rng(2);
    // Skew only where MODELS.md defines it (H <= W, see the next test); the rest on any shape.
    for (n, h, w, c) in [
        (2, 3, 4, 2),
        (1, 3, 3, 3),
        (1, 1, 1, 1),
        (1, 5, 3, 3),
        (2, 4, 1, 2),
    ] {
        let d = Dims::new(n, h, w, c);
        let x = uniform(&mut r, d.len(), -1.0, 1.0);
        let y = uniform(&mut r, d.len(), -1.0, 1.0);
        let (xt, yt) = (t(&b, &d.shape(), &x), t(&b, &d.shape(), &y));
        let ip = |a: &[f32], c: &[f32]| dot(&f64s(a), &f64s(c));
        // The ops only move values, so both sides are the same products summed in a different
        // order: 1e-12 relative.
        let close = |what: &str, l: f64, rr: f64| {
            assert!(
                (l - rr).abs() <= 1e-12 * l.abs().max(rr.abs()).max(1.0),
                "{what} ({n},{h},{w},{c}): {l} vs {rr}"
            );
        };
        if h <= w {
            let ds = Dims { w: 2 * w - 1, ..d };
            let ys = uniform(&mut r, ds.len(), -1.0, 1.0);
            let sx = host(&b, &b.skew(&xt).unwrap());
            let uy = host(&b, &b.unskew(&t(&b, &ds.shape(), &ys)).unwrap());
            close("<skew x, y> = <x, unskew y>", ip(&sx, &ys), ip(&x, &uy));
        }
        let mx = host(&b, &b.mirror_width(&xt).unwrap());
        let my = host(&b, &b.mirror_width(&yt).unwrap());
        close("<mirror x, y> = <x, mirror y>", ip(&mx, &y), ip(&x, &my));
        assert_eq!(
            host(&b, &b.mirror_width(&t(&b, &d.shape(), &mx)).unwrap()),
            x
        );
        let dx = host(&b, &b.shift_down(&xt).unwrap());
        let uy = host(&b, &b.shift_up(&yt).unwrap());
        close(
            "<shift_down x, y> = <x, shift_up y>",
            ip(&dx, &y),
            ip(&x, &uy),
        );
    }
}

/// MODELS.md's skewed map is H x (2W - 1), written with the paper's square images in mind. For
/// H > W that width cannot hold `S[r, r + j]` (row H - 1 reaches column H + W - 2 > 2W - 2). The
/// op must then return an error, or a map wide enough that `S[r, r + j] = x[r, j]` with unskew
/// its inverse: never panic on a well-formed tensor (STYLE.md, "Errors"). The Diagonal BiLSTM
/// layer itself works on tall images (its scan folds the skew; see `layer_cases`).
#[test]
fn skew_of_a_tall_image_is_an_error_or_exact_never_a_panic() {
    let b = CpuBackend::new();
    let mut r = rng(3);
    for (n, h, w, c) in [(1, 5, 3, 3), (2, 4, 1, 2), (1, 2, 1, 1)] {
        let d = Dims::new(n, h, w, c);
        let x = nonzero(&mut r, d.len(), 1.0);
        let xt = t(&b, &d.shape(), &x);
        let got = catch_unwind(AssertUnwindSafe(|| b.skew(&xt)))
            .unwrap_or_else(|_| panic!("skew panicked on a {h}x{w} image (H > W)"));
        if let Ok(s) = got {
            let [_, sh, ws, sc] = s.nhwc("test").unwrap();
            assert!(
                sh == h && sc == c && ws >= h + w - 1,
                "skew {h}x{w} -> {:?}",
                s.shape
            );
            assert_skew_formula(&host(&b, &s), &x, d, ws);
            let back = catch_unwind(AssertUnwindSafe(|| b.unskew(&s)))
                .unwrap_or_else(|_| panic!("unskew panicked on skew's own {h}x{w} output"));
            assert_eq!(host(&b, &back.unwrap()), x, "unskew(skew(x)) for {h}x{w}");
        }
        let s = t(
            &b,
            &[n, h, 2 * w - 1, c],
            &vec![1.0; n * h * (2 * w - 1) * c],
        );
        let _ = catch_unwind(AssertUnwindSafe(|| b.unskew(&s)))
            .unwrap_or_else(|_| panic!("unskew panicked on a [{n}, {h}, {}, {c}] map", 2 * w - 1));
    }
}

// ---------------------------------------------------------------------------------------------
// The recurrence ops
// ---------------------------------------------------------------------------------------------

fn state_vecs(b: &CpuBackend, s: &LstmState<CpuBackend>) -> [Vec<f32>; 3] {
    [host(b, &s.h), host(b, &s.c), host(b, &s.gates)]
}

/// Random pre-activations `[n, H, W, 4h]` and state weight of `w_shape`, in a range where the
/// gates are neither saturated nor linear.
fn lstm_inputs(d: Dims, w_shape: &[usize], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let is = uniform(&mut r, d.len(), -1.5, 1.5);
    let w = nonzero(&mut r, w_shape.iter().product(), 0.8);
    (is, w)
}

#[test]
fn row_lstm_forward_matches_f64_reference() {
    let b = CpuBackend::new();
    for (k, (h, w, hd)) in [
        (3, (4, 5, 3)),
        (5, (3, 6, 2)),
        (1, (3, 2, 2)),
        (3, (1, 1, 2)),
    ] {
        let d = Dims::new(2, h, w, 4 * hd);
        let ws = [4 * hd, hd, 1, k];
        let (is, wv) = lstm_inputs(d, &ws, 10 + k as u64);
        let want = row_scan(&f64s(&is), d, &f64s(&wv), k);
        for rec in RECS {
            let s = b
                .row_lstm_forward(&t(&b, &d.shape(), &is), &t(&b, &ws, &wv), rec)
                .unwrap();
            let [hh, cc, gg] = state_vecs(&b, &s);
            let what = format!("row_lstm_forward k={k} {h}x{w} h={hd} {rec:?}");
            assert_rel(&format!("{what}: h"), &hh, &want.h, FWD_TOL);
            assert_rel(&format!("{what}: c"), &cc, &want.c, FWD_TOL);
            assert_rel(&format!("{what}: gates"), &gg, &want.gates, FWD_TOL);
        }
    }
}

#[test]
fn diag_lstm_forward_matches_materialised_skew_scan() {
    let b = CpuBackend::new();
    // Wide, tall, square, one row, one column.
    for (h, w, hd) in [(4, 6, 3), (5, 3, 2), (3, 3, 2), (1, 4, 2), (4, 1, 2)] {
        let d = Dims::new(2, h, w, 4 * hd);
        let ws = [4 * hd, hd, 2, 1];
        let (is, wv) = lstm_inputs(d, &ws, 20 + (h * w) as u64);
        let want = diag_scan(&f64s(&is), d, &f64s(&wv));
        for rec in RECS {
            let s = b
                .diag_lstm_forward(&t(&b, &d.shape(), &is), &t(&b, &ws, &wv), rec)
                .unwrap();
            let [hh, cc, gg] = state_vecs(&b, &s);
            let what = format!("diag_lstm_forward {h}x{w} h={hd} {rec:?}");
            assert_rel(&format!("{what}: h"), &hh, &want.h, FWD_TOL);
            assert_rel(&format!("{what}: c"), &cc, &want.c, FWD_TOL);
            assert_rel(&format!("{what}: gates"), &gg, &want.gates, FWD_TOL);
        }
    }
}

/// `(d_is, d_w_ss)` of an LSTM op for the loss `sum(h * r)`, against central differences of the
/// float64 scan `scan(is, w)`.
fn check_lstm_backward(
    what: &str,
    d: Dims,
    w_shape: [usize; 4],
    seed: u64,
    diagonal: bool,
    scan: &dyn Fn(&[f64], &[f64]) -> ScanStates,
) {
    let b = CpuBackend::new();
    let (is, wv) = lstm_inputs(d, &w_shape, seed);
    let mut r = rng(seed + 1);
    let dh = uniform(&mut r, d.with_c(d.c / 4).len(), -1.0, 1.0);
    let dh64 = f64s(&dh);
    let fd = finite_differences(&[f64s(&is), f64s(&wv)], FD_EPS, &|v| {
        dot(&scan(&v[0], &v[1]).h, &dh64)
    });
    let (ist, wt, dht) = (
        t(&b, &d.shape(), &is),
        t(&b, &w_shape, &wv),
        t(&b, &d.with_c(d.c / 4).shape(), &dh),
    );
    for rec in RECS {
        let (d_is, d_w) = if diagonal {
            let s = b.diag_lstm_forward(&ist, &wt, rec).unwrap();
            b.diag_lstm_backward(&s, &wt, &dht, rec).unwrap()
        } else {
            let s = b.row_lstm_forward(&ist, &wt, rec).unwrap();
            b.row_lstm_backward(&s, &wt, &dht, rec).unwrap()
        };
        assert_grad(
            &format!("{what} {rec:?}: d_is"),
            &host(&b, &d_is),
            &fd[0],
            GRAD_TOL,
        );
        assert_grad(
            &format!("{what} {rec:?}: d_w_ss"),
            &host(&b, &d_w),
            &fd[1],
            GRAD_TOL,
        );
    }
}

#[test]
fn row_lstm_backward_matches_finite_differences() {
    for (k, (h, w, hd)) in [(3, (4, 5, 3)), (5, (3, 6, 2)), (1, (3, 3, 2))] {
        let d = Dims::new(2, h, w, 4 * hd);
        check_lstm_backward(
            &format!("row_lstm_backward k={k} {h}x{w}"),
            d,
            [4 * hd, hd, 1, k],
            30 + k as u64,
            false,
            &|is, w| row_scan(is, d, w, k),
        );
    }
}

#[test]
fn diag_lstm_backward_matches_finite_differences() {
    for (h, w, hd) in [(4, 6, 3), (5, 3, 2), (1, 3, 2), (3, 1, 2)] {
        let d = Dims::new(2, h, w, 4 * hd);
        check_lstm_backward(
            &format!("diag_lstm_backward {h}x{w}"),
            d,
            [4 * hd, hd, 2, 1],
            40 + (h * w) as u64,
            true,
            &|is, w| diag_scan(is, d, w),
        );
    }
}
