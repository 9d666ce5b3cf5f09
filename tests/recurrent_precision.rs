//! The precision semantics of the CPU recurrences (issue 18 item 2; src/backend/cpu/lstm.rs):
//! at tf32/bf16 the state-to-state GEMMs round their operands and accumulate in fp32, and
//! nothing else is rounded.
//!
//! The float64 reference is fed the twin's own fp32 states (h, c, gates, d_pre of the earlier
//! or later positions), rounded where the twin rounds them: each position is then computed
//! exactly from the same operands, so the only differences left are the twin's fp32
//! accumulation and its polynomial tanh (a few ulp) — a rounding flip of an operand cannot
//! happen, and the tolerances are tight: `TOL_ABS + TOL_REL * |want|` per element for the
//! states and d_is, and `TOL_SUM * sum |terms|` for the weight gradient (an fp32 sum of up to
//! a few hundred products). Each check also proves it can fail: the fp32 twin's result is
//! outside the tolerance of the rounded reference (the rounding is 2^-11 / 2^-8 relative per
//! operand, one to two orders above the tolerance). Also: causality by perturbation, exact at
//! every precision, for Row LSTM and Diagonal BiLSTM models; a bf16 Row LSTM learns the
//! embedded binarized MNIST within 1 % of fp32.

mod common;

use pixelrnn::backend::cpu::lstm::{backward_precision, forward_precision, Geometry, Scan};
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Precision;
use pixelrnn::models::{ModelConfig, ModelKind};
use rand::SeedableRng;
use rand_pcg::Pcg64;

use common::helpers::uniform;
use common::models::assert_causal_at;
use common::precision::{assert_bf16_within_one_percent, mnist_nll_at};
use common::reference::lstm::cell;

/// States and d_is: fp32 accumulation of `taps * h` products (~1e-6 absolute on a
/// pre-activation of magnitude ~1) and the fast tanh (5e-7 relative), with margin.
const TOL_ABS: f64 = 5e-6;
const TOL_REL: f64 = 3e-5;
/// Weight gradient: an fp32 sum of up to a few hundred products, relative to the sum of their
/// magnitudes (sqrt(k) * 2^-24 typical, k * 2^-24 worst; here a few times the typical).
const TOL_SUM: f64 = 1e-5;

/// Worst `|got - want| / tol` over the elements (> 1: outside the tolerance).
fn worst(got: &[f32], want: &[f64], tol: &dyn Fn(usize, f64) -> f64) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| (g as f64 - w).abs() / tol(i, w))
        .fold(0.0, f64::max)
}

fn elementwise(_: usize, w: f64) -> f64 {
    TOL_ABS + TOL_REL * w.abs()
}

/// The forward of every position computed in float64 from the twin's earlier states `h_t`,
/// `c_t`, rounded as GEMM operands at `pr` (the state weight too): `(h, c)`.
fn forward_ref(
    is: &[f32],
    w: &[f32],
    h_t: &[f32],
    c_t: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> (Vec<f64>, Vec<f64>) {
    let (hd, plane, taps) = (geo.hidden, geo.height * geo.width, geo.taps());
    let g = 4 * hd;
    let r = |x: f32| pr.round(x) as f64;
    let mut h = vec![0.0f64; n * plane * hd];
    let mut c = vec![0.0f64; n * plane * hd];
    let mut gates = vec![0.0f64; g];
    for b in 0..n {
        let base = b * plane;
        for row in 0..geo.height {
            for j in 0..geo.width {
                let p = base + row * geo.width + j;
                let mut pre: Vec<f64> = (0..g).map(|o| is[p * g + o] as f64).collect();
                for t in 0..taps {
                    if let Some(src) = geo.neighbour(row, j, t) {
                        for (o, a) in pre.iter_mut().enumerate() {
                            for u in 0..hd {
                                *a += r(w[(o * hd + u) * taps + t]) * r(h_t[(base + src) * hd + u]);
                            }
                        }
                    }
                }
                let c_prev: Vec<f64> = (0..hd)
                    .map(|u| {
                        geo.cell_prev(row, j)
                            .map_or(0.0, |q| c_t[(base + q) * hd + u] as f64)
                    })
                    .collect();
                cell(
                    &pre,
                    &c_prev,
                    &mut gates,
                    &mut c[p * hd..(p + 1) * hd],
                    &mut h[p * hd..(p + 1) * hd],
                );
            }
        }
    }
    (h, c)
}

/// The backward in float64, reverse raster order, from the twin's forward (`h_t`, `c_t`,
/// `gates_t`) and its own d_pre (`dis_t`) of the later positions, rounded as GEMM operands at
/// `pr`: `(d_is, d_w, sum of |terms| of each d_w element)`.
#[allow(clippy::too_many_arguments)]
fn backward_ref(
    w: &[f32],
    h_t: &[f32],
    c_t: &[f32],
    gates_t: &[f32],
    dis_t: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (hd, plane, taps) = (geo.hidden, geo.height * geo.width, geo.taps());
    let g = 4 * hd;
    let r = |x: f32| pr.round(x) as f64;
    let mut d_is = vec![0.0f64; n * plane * g];
    let mut d_w = vec![0.0f64; w.len()];
    let mut d_w_abs = vec![0.0f64; w.len()];
    for b in 0..n {
        let base = b * plane;
        let mut dh_carry = vec![0.0f64; plane * hd];
        let mut dc_carry = vec![0.0f64; plane * hd];
        for row in (0..geo.height).rev() {
            for j in (0..geo.width).rev() {
                let l = row * geo.width + j;
                let p = base + l;
                let cp = geo.cell_prev(row, j);
                for u in 0..hd {
                    let gp = &gates_t[p * g..(p + 1) * g];
                    let (o, f, i, gg) = (
                        gp[u] as f64,
                        gp[hd + u] as f64,
                        gp[2 * hd + u] as f64,
                        gp[3 * hd + u] as f64,
                    );
                    let tc = (c_t[p * hd + u] as f64).tanh();
                    let dht = dh[p * hd + u] as f64 + dh_carry[l * hd + u];
                    let dc = dc_carry[l * hd + u] + dht * o * (1.0 - tc * tc);
                    let cprev = cp.map_or(0.0, |q| c_t[(base + q) * hd + u] as f64);
                    d_is[p * g + u] = dht * tc * o * (1.0 - o);
                    d_is[p * g + hd + u] = dc * cprev * f * (1.0 - f);
                    d_is[p * g + 2 * hd + u] = dc * gg * i * (1.0 - i);
                    d_is[p * g + 3 * hd + u] = dc * i * (1.0 - gg * gg);
                    if let Some(q) = cp {
                        dc_carry[q * hd + u] = dc * f;
                    }
                }
                for t in 0..taps {
                    if let Some(src) = geo.neighbour(row, j, t) {
                        for u in 0..hd {
                            for o in 0..g {
                                let k = (o * hd + u) * taps + t;
                                let dp = r(dis_t[p * g + o]);
                                dh_carry[src * hd + u] += r(w[k]) * dp;
                                let term = r(h_t[(base + src) * hd + u]) * dp;
                                d_w[k] += term;
                                d_w_abs[k] += term.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (d_is, d_w, d_w_abs)
}

/// (scan, batch, height, width, hidden).
fn cases() -> Vec<(Scan, usize, usize, usize, usize)> {
    let mut v = Vec::new();
    for scan in [Scan::Row { k: 3 }, Scan::Diagonal] {
        for &(n, h, w, hd) in &[(2, 5, 6, 16), (1, 4, 7, 5), (3, 3, 3, 9)] {
            v.push((scan, n, h, w, hd));
        }
    }
    v
}

#[test]
fn rounded_recurrences_match_a_float64_recurrence_of_the_rounded_operands() {
    let mut rng = Pcg64::seed_from_u64(17);
    for (scan, n, height, width, hd) in cases() {
        let geo = Geometry {
            scan,
            height,
            width,
            hidden: hd,
        };
        let plane = height * width;
        let is = uniform(&mut rng, n * plane * 4 * hd, -1.0, 1.0);
        let w = uniform(&mut rng, geo.weight_shape().iter().product(), -0.5, 0.5);
        let dh = uniform(&mut rng, n * plane * hd, -1.0, 1.0);
        for fused in [true, false] {
            let (h32, c32, g32) = forward_precision(&is, &w, n, &geo, fused, Precision::Fp32);
            let (dis32, dw32) =
                backward_precision(&h32, &c32, &g32, &w, &dh, n, &geo, fused, Precision::Fp32);
            for pr in Precision::ALL {
                let what = format!("{scan:?} n {n} {height}x{width} h {hd} fused {fused} {pr}");
                let (h, c, gates) = forward_precision(&is, &w, n, &geo, fused, pr);
                let (h64, c64) = forward_ref(&is, &w, &h, &c, n, &geo, pr);
                let eh = worst(&h, &h64, &elementwise);
                let ec = worst(&c, &c64, &elementwise);
                assert!(
                    eh <= 1.0 && ec <= 1.0,
                    "{what}: forward h {eh:.2}, c {ec:.2} x tolerance"
                );

                let (d_is, d_w) = backward_precision(&h, &c, &gates, &w, &dh, n, &geo, fused, pr);
                let (dis64, dw64, dw_abs) =
                    backward_ref(&w, &h, &c, &gates, &d_is, &dh, n, &geo, pr);
                let sum_tol = |i: usize, _: f64| 1e-7 + TOL_SUM * dw_abs[i];
                let ed = worst(&d_is, &dis64, &elementwise);
                let ew = worst(&d_w, &dw64, &sum_tol);
                assert!(ed <= 1.0, "{what}: d_is {ed:.2} x tolerance");
                assert!(ew <= 1.0, "{what}: d_w {ew:.2} x tolerance");
                if pr == Precision::Fp32 || hd < 9 {
                    continue;
                }
                // The checks can fail: the unrounded (fp32) arithmetic on the same states is
                // outside the rounded reference's tolerance.
                let (h64, _) = forward_ref(&is, &w, &h32, &c32, n, &geo, pr);
                let (dis64, dw64, dw_abs) =
                    backward_ref(&w, &h32, &c32, &g32, &dis32, &dh, n, &geo, pr);
                let sum_tol = |i: usize, _: f64| 1e-7 + TOL_SUM * dw_abs[i];
                let miss_h = worst(&h32, &h64, &elementwise);
                let miss_d = worst(&dis32, &dis64, &elementwise);
                let miss_w = worst(&dw32, &dw64, &sum_tol);
                assert!(
                    miss_h > 1.0 && miss_d > 1.0 && miss_w > 1.0,
                    "{what}: fp32 arithmetic passes the {pr} check (h {miss_h:.2}, d_is \
                     {miss_d:.2}, d_w {miss_w:.2} x tolerance): the check cannot tell"
                );
            }
        }
    }
}

/// The perturbation probe ([`assert_causal_at`]) for `kind` at `precision` on the CPU, on a
/// small model of 4 x 5 RGB images.
fn assert_causal(kind: ModelKind, precision: Precision) {
    let cfg = ModelConfig::plain(kind, (4, 5, 3), false, (1, 4, 8));
    assert_causal_at(&CpuBackend::new(), &cfg, precision, &format!("{kind:?}"));
}

#[test]
fn row_lstm_and_diag_bilstm_are_causal_at_every_precision() {
    for kind in [ModelKind::RowLstm, ModelKind::DiagBiLstm] {
        for p in Precision::ALL {
            assert_causal(kind, p);
        }
    }
}

#[test]
fn bf16_row_lstm_learns_binarized_mnist_within_one_percent_of_fp32() {
    let steps = 40;
    let cfg = ModelConfig::plain(ModelKind::RowLstm, (28, 28, 1), true, (1, 8, 16));
    let fp32 = mnist_nll_at(&cfg, Precision::Fp32, steps);
    let bf16 = mnist_nll_at(&cfg, Precision::Bf16, steps);
    assert_bf16_within_one_percent("Row LSTM", steps, fp32, bf16);
}
