//! The discretized logistic mixture likelihood (`--likelihood logistic-mixture`,
//! docs/logistic-mixture.md): the op against the float64 reference written from PixelCNN++'s
//! formula (tests/common/reference/logistic_mixture.rs), the probabilities of each sub-pixel's
//! 256 values summing to 1, gradients against finite differences, the analytically known NLL
//! of a zero head, and the draw against the exact bin masses.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::data::Images;
use pixelrnn::models::{Likelihood, Model, ModelConfig, ModelKind};
use rand::Rng;

use common::helpers::{assert_rel, f64s, finite_differences, host, rng, t, uniform};
use common::models::zero_output_layer;
use common::reference::logistic_mixture as reference;

/// Head outputs per position.
fn per(k: usize, c: usize) -> usize {
    Likelihood::mixture_params(k, c)
}

/// Random parameters of `positions` positions: logits in [-2, 2), means in [-1.1, 1.1),
/// raw log-scales in [-4, 0.5) (narrow to wide, none clamped), raw coefficients in [-1.5, 1.5).
fn params(positions: usize, k: usize, c: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut p = Vec::with_capacity(positions * per(k, c));
    for _ in 0..positions {
        p.extend(uniform(&mut r, k, -2.0, 2.0));
        p.extend(uniform(&mut r, c * k, -1.1, 1.1));
        p.extend(uniform(&mut r, c * k, -4.0, 0.5));
        if c == 3 {
            p.extend(uniform(&mut r, 3 * k, -1.5, 1.5));
        }
    }
    p
}

/// Random targets, with the edge values 0 and 255 (and their neighbours) forced in.
fn targets(positions: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut t: Vec<u8> = (0..positions * c)
        .map(|_| r.random_range(0..=255))
        .collect();
    let len = t.len();
    for (i, v) in [0u8, 255, 1, 254, 128, 127].iter().enumerate() {
        if i < len {
            t[i * 7 % len] = *v;
        }
    }
    t
}

fn floats(t: &[u8]) -> Vec<f32> {
    t.iter().map(|&v| v as f32).collect()
}

/// The CPU op's (nll, dparams) for flat params and targets.
fn op(p: &[f32], tg: &[u8], k: usize, c: usize, grad_scale: f32) -> (Vec<f32>, Vec<f32>) {
    let b = CpuBackend::new();
    let n = tg.len() / c;
    let (nll, d) = b
        .logistic_mixture_nll(
            &t(&b, &[n, per(k, c)], p),
            &t(&b, &[n, c], &floats(tg)),
            k,
            grad_scale,
        )
        .unwrap();
    (host(&b, &nll), host(&b, &d))
}

/// Every sub-pixel's NLL against the float64 formula (f32 log-sum-exps and their differences:
/// a few ulp of NLLs of up to ~15 nats).
#[test]
fn nll_matches_the_float64_formula() {
    for (c, k, seed) in [(1, 1, 1), (1, 5, 2), (3, 1, 3), (3, 10, 4), (3, 32, 5)] {
        let positions = 97;
        let p = params(positions, k, c, seed);
        let tg = targets(positions, c, seed + 100);
        let (got, _) = op(&p, &tg, k, c, 1.0);
        let want = reference::nll(&f64s(&p), &tg, c, k);
        assert_rel(&format!("nll C={c} K={k}"), &got, &want, 2e-5);
    }
}

/// Log-scales below -7 are clamped to -7 (PixelCNN++): the NLL is that of -7 exactly, and the
/// clamped log-scale gets no gradient.
#[test]
fn narrow_components_are_clamped() {
    let (k, c, positions) = (2, 3, 20);
    let mut p = params(positions, k, c, 7);
    let tg = targets(positions, c, 8);
    let row = per(k, c);
    for (pos, chunk) in p.chunks_mut(row).enumerate() {
        for ch in 0..c {
            for j in 0..k {
                // Means within a few scales of the target, so the bins keep some mass.
                let x = tg[pos * c + ch] as f32 / 127.5 - 1.0;
                chunk[k + ch * k + j] = x + 0.002 * (j as f32 - 0.5);
                chunk[k + c * k + ch * k + j] = if j == 0 { -9.0 } else { -7.0 };
            }
            // No coefficients: the means stay where they were put.
            for q in 0..3 {
                for j in 0..k {
                    chunk[k + 2 * c * k + q * k + j] = 0.0;
                }
            }
        }
    }
    let (got, d) = op(&p, &tg, k, c, 1.0);
    let mut at_seven = p.clone();
    for chunk in at_seven.chunks_mut(row) {
        for v in &mut chunk[k + c * k..k + 2 * c * k] {
            *v = v.max(-7.0);
        }
    }
    let want = reference::nll(&f64s(&at_seven), &tg, c, k);
    // Bins that hold nearly all the mass: NLLs of ~0.04 nats with f32's absolute error of the
    // log-sum-exps (~1e-6, terms of magnitude ~1), hence 1e-4 relative to the largest.
    assert_rel("clamped nll", &got, &want, 1e-4);
    assert_eq!(
        op(&at_seven, &tg, k, c, 1.0).0,
        got,
        "clamped: not the NLL of -7"
    );
    for (pos, chunk) in d.chunks(row).enumerate() {
        for ch in 0..c {
            assert_eq!(
                chunk[k + c * k + ch * k],
                0.0,
                "position {pos}: clamped log-scale's gradient"
            );
        }
    }
}

/// The 256 probabilities of each sub-pixel, given the pixel's earlier channels, sum to 1:
/// float64 (the formula) within 1e-6, and the f32 op within 2e-5 (each conditional NLL is a
/// difference of f32 log-sum-exps, ~1e-6 absolute, over 256 values).
#[test]
fn probabilities_of_each_sub_pixel_sum_to_one() {
    for (c, k, seed) in [(1, 4, 11), (3, 3, 12), (3, 10, 13)] {
        let positions = 6;
        let mut p = params(positions, k, c, seed);
        // Position 0: a very wide and a very narrow component (log-scales 3 and -7).
        for ch in 0..c {
            p[k + c * k + ch * k] = 3.0;
            p[k + c * k + ch * k + 1] = -7.0;
        }
        let base = targets(positions, c, seed + 1);
        for pos in 0..positions {
            let pp = &p[pos * per(k, c)..(pos + 1) * per(k, c)];
            for ch in 0..c {
                let mut tg: Vec<u8> = Vec::with_capacity(256 * c);
                for v in 0..=255u8 {
                    let mut px = base[pos * c..(pos + 1) * c].to_vec();
                    px[ch] = v;
                    tg.extend(px);
                }
                let rows: Vec<f32> = (0..256).flat_map(|_| pp.iter().copied()).collect();
                let (got, _) = op(&rows, &tg, k, c, 1.0);
                let f32_sum: f64 = (0..256).map(|v| (-(got[v * c + ch] as f64)).exp()).sum();
                let f64_sum: f64 = (0..256)
                    .map(|v| {
                        let nll = reference::position_nll(&f64s(pp), &tg[v * c..(v + 1) * c], k);
                        (-nll[ch]).exp()
                    })
                    .sum();
                let what = format!("C={c} K={k} position {pos} channel {ch}");
                assert!(
                    (f64_sum - 1.0).abs() < 1e-6,
                    "{what}: float64 sum {f64_sum}"
                );
                assert!((f32_sum - 1.0).abs() < 2e-5, "{what}: op sum {f32_sum}");
            }
        }
    }
}

/// The gradient of the summed NLL against central differences of the float64 formula, and
/// exactly zero for the clamped log-scale (the formula does not depend on it).
#[test]
fn gradients_match_finite_differences() {
    for (c, k, seed) in [(1, 3, 21), (3, 3, 22), (3, 1, 23)] {
        let positions = 9;
        let mut p = params(positions, k, c, seed);
        let tg = targets(positions, c, seed + 1);
        // Clamped (exactly zero gradient), its mean within a bin of the target so that the
        // narrow component keeps some mass.
        p[k + c * k] = -7.5;
        p[k] = tg[0] as f32 / 127.5 - 1.0 + 0.001;
        let (_, d) = op(&p, &tg, k, c, 1.0);
        let total = |v: &[Vec<f64>]| reference::nll(&v[0], &tg, c, k).iter().sum::<f64>();
        let fd = finite_differences(&[f64s(&p)], 1e-5, &total);
        assert_rel(&format!("dparams C={c} K={k}"), &d, &fd[0], 2e-4);
        assert_eq!(
            (d[k + c * k], fd[0][k + c * k]),
            (0.0, 0.0),
            "clamped log-scale"
        );
        // grad_scale scales the gradient and nothing else.
        let (_, half) = op(&p, &tg, k, c, 0.5);
        let scaled: Vec<f64> = d.iter().map(|&g| 0.5 * g as f64).collect();
        assert_rel("grad_scale 0.5", &half, &scaled, 1e-6);
    }
}

/// A target that is not an integer in 0..=255 is refused, as by the softmax.
#[test]
fn invalid_targets_are_refused() {
    let b = CpuBackend::new();
    let p = params(2, 2, 1, 31);
    for bad in [256.0f32, -1.0, 3.5, f32::NAN] {
        let err = b
            .logistic_mixture_nll(&t(&b, &[2, 6], &p), &t(&b, &[2, 1], &[1.0, bad]), 2, 1.0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("targets must be integers in 0..=255"),
            "{bad}: {err}"
        );
    }
    let err = b
        .logistic_mixture_nll(
            &t(&b, &[2, 7], &[0.0; 14]),
            &t(&b, &[2, 1], &[1.0, 2.0]),
            2,
            1.0,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not match"), "{err}");
}

fn mixture_config(kind: ModelKind, c: usize, k: usize) -> ModelConfig {
    ModelConfig {
        likelihood: Likelihood::LogisticMixture { mixtures: k },
        ..ModelConfig::plain(kind, (5, 4, c), false, (2, 4, 8))
    }
}

/// With the output layer all zero, every component is the logistic of mean 0 and scale 1 in
/// the [-1, 1] scale (pi uniform, log-scale 0, coefficients tanh(0) = 0), so each sub-pixel's
/// probability is that of one logistic(0, 1), whatever K and C:
/// - v = 128 (centre x = 1/255): `P = sigmoid(2/255) - sigmoid(0) = tanh(1/255) / 2`, so
///   `NLL = ln 2 - ln tanh(1/255) = 6.234415851933477` nats;
/// - v = 0 (x = -1, lower edge at -infinity): `P = sigmoid(-1 + 1/255)`, so
///   `NLL = ln(1 + e^(254/255)) = 1.3103963038623585` nats; v = 255 the same by symmetry.
#[test]
fn a_zero_head_gives_the_analytic_nll() {
    let b = CpuBackend::new();
    for (kind, c, k) in [(ModelKind::PixelCnn, 1, 5), (ModelKind::RowLstm, 3, 10)] {
        let cfg = mixture_config(kind, c, k);
        let mut model = Model::new(&b, cfg.clone(), 3).unwrap();
        zero_output_layer(&mut model);
        let dims = cfg.dims();
        for (v, per_sub_pixel) in [
            (128u8, 6.234415851933477),
            (0, 1.3103963038623585),
            (255, 1.3103963038623585),
        ] {
            let imgs = Images::new(2, cfg.height, cfg.width, c, false, vec![v; 2 * dims]).unwrap();
            let got = model.score(&b, &imgs, &[0, 1], true).unwrap();
            let want = 2.0 * dims as f64 * per_sub_pixel;
            assert!(
                (got.total - want).abs() < 1e-5 * want,
                "{kind:?} C={c}: all {v}: {} nats, want {want}",
                got.total
            );
            for &s in got.per_subpixel.as_ref().unwrap() {
                assert!(
                    (s as f64 - per_sub_pixel).abs() < 1e-5,
                    "{v}: sub-pixel NLL {s}"
                );
            }
        }
    }
}

/// The draw inverts each channel's CDF: with one component and the channel's uniforms on a
/// fine stratified grid, the frequency of every value matches its bin mass (float64 formula)
/// to within the grid's resolution, G's and B's means following the values drawn before them.
#[test]
fn draws_follow_the_bin_masses() {
    let b = CpuBackend::new();
    let (k, c) = (1, 3);
    // mean, raw log-scale per channel; coefficients 0.4, -0.3, 0.8 (before tanh).
    let p = [0.0, 0.1, -0.2, 0.3, -3.0, -2.5, -4.0, 0.4, -0.3, 0.8];
    let n = 20_000;
    for ch in 0..c {
        // Earlier channels fixed at their draws from u = 0.5 (their medians' bins).
        let u: Vec<f32> = (0..n)
            .flat_map(|i| {
                let mut row = [0.3f32, 0.5, 0.5, 0.5];
                row[1 + ch] = (i as f32 + 0.5) / n as f32;
                row
            })
            .collect();
        let rows: Vec<f32> = (0..n).flat_map(|_| p).collect();
        let drawn = host(
            &b,
            &b.logistic_mixture_sample(&t(&b, &[n, 10], &rows), &t(&b, &[n, 4], &u), k, 1.0)
                .unwrap(),
        );
        let mut counts = [0usize; 256];
        for px in drawn.chunks(c) {
            counts[px[ch] as usize] += 1;
        }
        let fixed = &drawn[..c];
        for v in 0..=255u8 {
            let mut px: Vec<u8> = fixed.iter().map(|&x| x as u8).collect();
            px[ch] = v;
            let mass = (-reference::position_nll(&f64s(&p), &px, k)[ch]).exp();
            let freq = counts[v as usize] as f64 / n as f64;
            assert!(
                (freq - mass).abs() < 3.0 / n as f64 + 1e-4,
                "channel {ch} value {v}: frequency {freq}, mass {mass}"
            );
        }
    }
}

/// Temperature 0 takes the most likely component and each channel's mean's bin.
#[test]
fn temperature_zero_takes_the_means() {
    let b = CpuBackend::new();
    let (k, c) = (2, 3);
    // Component 1 is the most likely; means 0.2, -0.5, 0.9 with coefficients (tanh) applied.
    let mut p = vec![0.0f32; per(k, c)];
    p[1] = 1.0;
    p[k + 1] = 0.2;
    p[k + k + 1] = -0.5;
    p[k + 2 * k + 1] = 0.9;
    p[k + 2 * c * k + 1] = 0.5;
    let drawn = host(
        &b,
        &b.logistic_mixture_sample(
            &t(&b, &[1, per(k, c)], &p),
            &t(&b, &[1, 4], &[0.99; 4]),
            k,
            0.0,
        )
        .unwrap(),
    );
    let r = ((0.2f32 + 1.0) * 127.5).round_ties_even();
    let x_r = r / 127.5 - 1.0;
    let g = ((-0.5 + 0.5f32.tanh() * x_r + 1.0) * 127.5).round_ties_even();
    let bl = ((0.9f32 + 1.0) * 127.5).round_ties_even();
    assert_eq!((r, bl), (153.0, 242.0));
    assert_eq!(drawn, vec![r, g, bl]);
}

/// The mixture configuration survives JSON (the checkpoint's model_config), and a
/// configuration saved before the key existed is a softmax model.
#[test]
fn the_likelihood_is_saved_and_old_configs_are_softmax() {
    let cfg = mixture_config(ModelKind::DiagBiLstm, 3, 7);
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(
        json.contains(r#""likelihood":{"logistic-mixture":{"mixtures":7}}"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), cfg);
    let plain = ModelConfig::plain(ModelKind::PixelCnn, (4, 4, 1), false, (1, 2, 4));
    let old = serde_json::to_string(&plain).unwrap();
    assert!(
        !old.contains("likelihood"),
        "softmax configs are unchanged: {old}"
    );
    assert_eq!(
        serde_json::from_str::<ModelConfig>(&old)
            .unwrap()
            .likelihood,
        Likelihood::Softmax
    );
}

/// Binary data and out-of-range K are configuration errors.
#[test]
fn bad_mixture_configs_are_refused() {
    let mut cfg = mixture_config(ModelKind::PixelCnn, 1, 10);
    cfg.binary = true;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("256-level data"));
    for k in [0, 33] {
        let cfg = mixture_config(ModelKind::PixelCnn, 1, k);
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--mixtures"),
            "K={k}"
        );
    }
}

/// The mixture head predicts whole pixels: one channel group, so the 7x7 mask-A input layer
/// has no centre tap at all (24 taps) even for C = 3, and the head outputs `10K` (C = 3).
#[test]
fn mixture_models_have_one_channel_group() {
    let b = CpuBackend::new();
    let cfg = mixture_config(ModelKind::PixelCnn, 3, 4);
    assert_eq!(cfg.groups(), 1);
    assert_eq!(cfg.logits_per_position(), 40);
    let model = Model::new(&b, cfg, 0).unwrap();
    assert_eq!(model.input.as_ref().unwrap().spec.groups, 1);
    assert_eq!(model.input.as_ref().unwrap().spec.taps().len(), 24);
}
