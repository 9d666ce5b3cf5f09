//! The CPU recurrences' tiled kernels (src/backend/cpu/lstm_tile.rs and the fused sweep of
//! src/backend/cpu/lstm.rs) against a plain float64 recurrence written position by position in
//! raster order, on sizes that exercise every edge of the tiles: h not a multiple of 8, one
//! column, one row, batch 1, Row LSTM kernels 1, 3 and 5. Also: the sampler's `forward_at`
//! reproduces the training forward bit for bit on the same sizes.

mod common;

use pixelrnn::backend::cpu::lstm::{backward, forward, forward_precision, Geometry, Scan};
use pixelrnn::backend::cpu::lstm_at::{forward_at, forward_at_precision};
use pixelrnn::backend::Precision;
use rand::SeedableRng;
use rand_pcg::Pcg64;

use common::helpers::uniform;
use common::reference::lstm::cell;

/// Float64 forward and backward, one position at a time in raster order (reverse for the
/// backward); the forward's gates and cell are the spec's (tests/common/reference/lstm.rs). Returns `(h, c, d_is, d_w)`; `w` in `[4h, h, kh, kw]` layout.
fn reference(
    is: &[f32],
    w: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (hd, plane, taps) = (geo.hidden, geo.height * geo.width, geo.taps());
    let g = 4 * hd;
    let wv = |o: usize, u: usize, t: usize| w[(o * hd + u) * taps + t] as f64;
    let mut h = vec![0.0f64; n * plane * hd];
    let mut c = vec![0.0f64; n * plane * hd];
    let mut gates = vec![0.0f64; n * plane * g];
    let mut d_is = vec![0.0f64; n * plane * g];
    let mut d_w = vec![0.0f64; w.len()];
    for b in 0..n {
        let base = b * plane;
        for r in 0..geo.height {
            for j in 0..geo.width {
                let p = base + r * geo.width + j;
                let mut pre: Vec<f64> = (0..g).map(|o| is[p * g + o] as f64).collect();
                for t in 0..taps {
                    if let Some(src) = geo.neighbour(r, j, t) {
                        for (o, a) in pre.iter_mut().enumerate() {
                            for u in 0..hd {
                                *a += wv(o, u, t) * h[(base + src) * hd + u];
                            }
                        }
                    }
                }
                let cp = geo.cell_prev(r, j);
                let c_prev: Vec<f64> = (0..hd)
                    .map(|u| cp.map_or(0.0, |q| c[(base + q) * hd + u]))
                    .collect();
                cell(
                    &pre,
                    &c_prev,
                    &mut gates[p * g..(p + 1) * g],
                    &mut c[p * hd..(p + 1) * hd],
                    &mut h[p * hd..(p + 1) * hd],
                );
            }
        }
        let mut dh_carry = vec![0.0f64; plane * hd];
        let mut dc_carry = vec![0.0f64; plane * hd];
        for r in (0..geo.height).rev() {
            for j in (0..geo.width).rev() {
                let l = r * geo.width + j;
                let p = base + l;
                let cp = geo.cell_prev(r, j);
                let mut d_pre = vec![0.0f64; g];
                for u in 0..hd {
                    let gp = &gates[p * g..(p + 1) * g];
                    let (o, f, i, gg) = (gp[u], gp[hd + u], gp[2 * hd + u], gp[3 * hd + u]);
                    let tc = c[p * hd + u].tanh();
                    let dht = dh[p * hd + u] as f64 + dh_carry[l * hd + u];
                    let dc = dc_carry[l * hd + u] + dht * o * (1.0 - tc * tc);
                    let cprev = cp.map_or(0.0, |q| c[(base + q) * hd + u]);
                    d_pre[u] = dht * tc * o * (1.0 - o);
                    d_pre[hd + u] = dc * cprev * f * (1.0 - f);
                    d_pre[2 * hd + u] = dc * gg * i * (1.0 - i);
                    d_pre[3 * hd + u] = dc * i * (1.0 - gg * gg);
                    if let Some(q) = cp {
                        dc_carry[q * hd + u] = dc * f;
                    }
                }
                for t in 0..taps {
                    if let Some(src) = geo.neighbour(r, j, t) {
                        for u in 0..hd {
                            for (o, &dp) in d_pre.iter().enumerate() {
                                dh_carry[src * hd + u] += wv(o, u, t) * dp;
                                d_w[(o * hd + u) * taps + t] += h[(base + src) * hd + u] * dp;
                            }
                        }
                    }
                }
                d_is[p * g..(p + 1) * g].copy_from_slice(&d_pre);
            }
        }
    }
    (h, c, d_is, d_w)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 2e-5 + 2e-4 * w.abs();
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}[{i}]: {g} vs {w} (tolerance {tol:e})"
        );
    }
}

/// Every scan and odd size: (scan, batch, height, width, hidden).
fn cases() -> Vec<(Scan, usize, usize, usize, usize)> {
    let mut v = Vec::new();
    for scan in [
        Scan::Row { k: 3 },
        Scan::Row { k: 1 },
        Scan::Row { k: 5 },
        Scan::Diagonal,
    ] {
        for &(n, h, w, hd) in &[
            (1, 1, 1, 1),
            (1, 4, 1, 3),
            (2, 1, 7, 5),
            (1, 5, 9, 3),
            (3, 7, 6, 9),
            (2, 9, 4, 17),
            (1, 6, 13, 8),
            (2, 5, 5, 16),
        ] {
            v.push((scan, n, h, w, hd));
        }
    }
    v
}

fn geometry(scan: Scan, height: usize, width: usize, hidden: usize) -> Geometry {
    Geometry {
        scan,
        height,
        width,
        hidden,
    }
}

#[test]
fn fused_and_unfused_match_float64_recurrence() {
    let mut rng = Pcg64::seed_from_u64(7);
    for (scan, n, height, width, hd) in cases() {
        let geo = geometry(scan, height, width, hd);
        let plane = height * width;
        let is = uniform(&mut rng, n * plane * 4 * hd, -1.0, 1.0);
        let w = uniform(&mut rng, geo.weight_shape().iter().product(), -0.5, 0.5);
        let dh = uniform(&mut rng, n * plane * hd, -1.0, 1.0);
        let (h64, c64, dis64, dw64) = reference(&is, &w, &dh, n, &geo);
        for fused in [true, false] {
            let what = format!("{scan:?} n {n} {height}x{width} h {hd} fused {fused}");
            let (h, c, gates) = forward(&is, &w, n, &geo, fused);
            assert_close(&format!("{what}: h"), &h, &h64);
            assert_close(&format!("{what}: c"), &c, &c64);
            let (d_is, d_w) = backward(&h, &c, &gates, &w, &dh, n, &geo, fused);
            assert_close(&format!("{what}: d_is"), &d_is, &dis64);
            assert_close(&format!("{what}: d_w"), &d_w, &dw64);
        }
    }
}

#[test]
fn forward_at_is_bit_identical_to_the_fused_forward() {
    let mut rng = Pcg64::seed_from_u64(11);
    for (scan, n, height, width, hd) in cases() {
        let geo = geometry(scan, height, width, hd);
        let plane = height * width;
        let g = 4 * hd;
        let is = uniform(&mut rng, n * plane * g, -1.0, 1.0);
        let w = uniform(&mut rng, geo.weight_shape().iter().product(), -0.5, 0.5);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let mut fp32_h = Vec::new();
        let reads_a_state = (0..height)
            .any(|r| (0..width).any(|j| (0..geo.taps()).any(|t| geo.neighbour(r, j, t).is_some())));
        // At every precision: the sampler rounds the same operands the same way.
        for pr in Precision::ALL {
            let (h, c, _) = forward_precision(&is, &w, n, &geo, true, pr);
            let mut hm = vec![0.0f32; n * plane * hd];
            let mut cm = vec![0.0f32; n * plane * hd];
            for i in 0..height {
                for j in 0..width {
                    let p = i * width + j;
                    let is_p: Vec<f32> = (0..n)
                        .flat_map(|b| is[(b * plane + p) * g..(b * plane + p + 1) * g].to_vec())
                        .collect();
                    if pr == Precision::Fp32 {
                        forward_at(&is_p, &w, &mut hm, &mut cm, n, &geo, i, j);
                    } else {
                        forward_at_precision(&is_p, &w, &mut hm, &mut cm, n, &geo, i, j, pr);
                    }
                }
            }
            let what = format!("{scan:?} n {n} {height}x{width} h {hd} at {pr}");
            assert_eq!(bits(&hm), bits(&h), "{what}: hidden states");
            assert_eq!(bits(&cm), bits(&c), "{what}: cell states");
            if pr == Precision::Fp32 {
                assert_eq!(bits(&h), bits(&forward(&is, &w, n, &geo, true).0));
                fp32_h = h;
            } else if reads_a_state {
                // The rounding was applied (a single position reads no earlier state).
                assert_ne!(bits(&h), bits(&fp32_h), "{what}: no rounding applied");
            }
        }
    }
}

/// The gates' polynomial `tanh` against float64 over the whole range, both branches and the
/// switch between them: within 4 ulp (relative 5e-7), odd, saturating, NaN stays NaN.
#[test]
fn fast_tanh_is_within_a_few_ulp() {
    use pixelrnn::backend::cpu::lstm::tanh;
    let mut worst = 0.0f64;
    let mut x = 1e-30f32;
    while x < 100.0 {
        for v in [x, -x] {
            let (got, want) = (tanh(v) as f64, (v as f64).tanh());
            let rel = (got - want).abs() / want.abs();
            worst = worst.max(rel);
            assert!(
                rel <= 5e-7,
                "tanh({v}) = {got}, want {want} (relative {rel:e})"
            );
        }
        x *= 1.001;
    }
    for v in [0.624_999_9f32, 0.625, 0.625_000_1] {
        let rel = (tanh(v) as f64 - (v as f64).tanh()).abs() / (v as f64).tanh();
        assert!(
            rel <= 5e-7,
            "tanh({v}) at the branch switch: relative {rel:e}"
        );
    }
    assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
    assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(tanh(1e4), 1.0);
    assert_eq!(tanh(-1e4), -1.0);
    assert_eq!(tanh(f32::INFINITY), 1.0);
    assert!(tanh(f32::NAN).is_nan());
    eprintln!("fast tanh: worst relative error {worst:e}");
}

/// `step_span` / `step_position` (the sweeps' allocation-free step walk) list the same
/// positions in the same order as `step_positions`, and every position once.
#[test]
fn step_spans_cover_every_position_once() {
    for (scan, _, height, width, hd) in cases() {
        let geo = geometry(scan, height, width, hd);
        let mut seen = vec![0usize; height * width];
        for s in 0..geo.steps() {
            let (p0, m, stride) = geo.step_span(s);
            let want = geo.step_positions(s);
            assert_eq!(m, want.len(), "{scan:?} {height}x{width} step {s}");
            assert!(m <= geo.max_step_len());
            for (q, &(r, j)) in want.iter().enumerate() {
                assert_eq!(geo.step_position(s, q), (r, j));
                assert_eq!(p0 + q * stride, r * width + j);
                seen[r * width + j] += 1;
            }
        }
        assert!(seen.iter().all(|&k| k == 1), "{scan:?} {height}x{width}");
    }
}
