//! The CPU backend's elementwise ops, reductions, losses and optimizers against plain
//! references written from the spec (the `Backend` trait docs), never from the implementation:
//! exact results where fp32 allows them, the losses against naive float64 formulas and their
//! central differences, the optimizers against hand-computed updates; and every op's shape
//! checks (an error, never a panic: tests/ops_shapes.rs). The masked convolution is in tests/masked_conv2d.rs, the
//! recurrence ops in tests/recurrent_ops.rs.
//!
//! Tolerances are stated next to each check with the reason. Run with
//! `cargo test --release --test ops_reference` (well under a second of work in release).

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{AdamStep, Backend, RmsPropStep};
use pixelrnn::parity::max_rel_err;
use pixelrnn::tensor::Tensor;
use rand::Rng;

use common::helpers::{f64s, host, rng, t, uniform};

// ---------------------------------------------------------------------------------------------
// Elementwise ops and reductions
// ---------------------------------------------------------------------------------------------

#[test]
fn relu_and_add_are_exact() {
    let be = CpuBackend::new();
    let mut r = rng(11);
    // Large enough to take the multi-threaded path (slices over 1 << 14 elements).
    let n = 40_000;
    let mut x = uniform(&mut r, n, -2.0, 2.0);
    x[..7].copy_from_slice(&[0.0, -0.0, 1e-30, -1e-30, 3.0, -3.0, f32::NAN]);
    let dy = uniform(&mut r, n, -1.0, 1.0);
    let a = uniform(&mut r, n, -1.0, 1.0);

    // Forward: max(x, 0), exactly; NaN stays NaN (PyTorch's ReLU), never 0.
    let y = host(&be, &be.relu_forward(&t(&be, &[n], &x)).unwrap());
    for (j, (&v, &o)) in x.iter().zip(&y).enumerate() {
        if v.is_nan() {
            assert!(o.is_nan(), "relu(NaN) = {o} at {j}, want NaN");
            continue;
        }
        let want = if v > 0.0 { v } else { 0.0 };
        assert!(o == want, "relu({v}) = {o} at {j}");
    }
    // Backward: dy where the output is positive, else 0. The derivative of max(x, 0) is 1 for
    // x > 0 and 0 for x < 0 (central differences with any step below |x|); at 0 the convention
    // is 0.
    let d = host(
        &be,
        &be.relu_backward(&t(&be, &[n], &y), &t(&be, &[n], &dy))
            .unwrap(),
    );
    for j in 0..n {
        let slope = if x[j] > 0.0 { 1.0 } else { 0.0 };
        assert!(
            d[j] == dy[j] * slope,
            "relu_backward at {j}: x {} dy {} got {}",
            x[j],
            dy[j],
            d[j]
        );
    }
    // add: a + b, one rounding, exactly what f32 addition gives.
    let s = host(&be, &be.add(&t(&be, &[n], &a), &t(&be, &[n], &dy)).unwrap());
    for j in 0..n {
        assert!(s[j] == a[j] + dy[j], "add at {j}");
    }
}

#[test]
fn sums_are_exact_on_small_integers() {
    let be = CpuBackend::new();
    let mut r = rng(12);
    // 40 000 integers in -7..=7: every partial sum is an integer far below 2^53, so the f64
    // accumulation must be exact whatever the order or the thread split.
    let ints: Vec<i64> = (0..40_000).map(|_| r.random_range(-7..=7)).collect();
    let x: Vec<f32> = ints.iter().map(|&v| v as f32).collect();
    let tx = t(&be, &[200, 200], &x);
    assert_eq!(be.sum(&tx).unwrap(), ints.iter().sum::<i64>() as f64);
    assert_eq!(
        be.sum_squares(&tx).unwrap(),
        ints.iter().map(|v| v * v).sum::<i64>() as f64
    );
    let small = t(&be, &[3], &[1.0, -2.0, 3.0]);
    assert_eq!(be.sum(&small).unwrap(), 2.0);
    assert_eq!(be.sum_squares(&small).unwrap(), 14.0);
    // Sums of squares of values whose squares overflow f32 stay finite (accumulated in f64).
    let big = t(&be, &[2], &[3e20, -4e20]);
    let ss = be.sum_squares(&big).unwrap();
    assert!(
        (ss - 25e40).abs() < 1e-6 * 25e40,
        "sum_squares in f64: {ss}"
    );

    // scale_inplace: x * s, one rounding.
    let mut tx = tx;
    be.scale_inplace(&mut tx, 0.37).unwrap();
    assert!(host(&be, &tx).iter().zip(&x).all(|(&a, &v)| a == v * 0.37));
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

/// -log softmax(l)[target] computed naively in f64 (no max subtraction: the test's logits stay
/// far below exp's f64 overflow at 709).
fn naive_softmax_nll(l: &[f64], target: usize) -> f64 {
    let z: f64 = l.iter().map(|v| v.exp()).sum();
    -(l[target].exp() / z).ln()
}

fn check_softmax_nll(channels: usize, shift: f32, seed: u64) {
    let be = CpuBackend::new();
    let name = format!("softmax_nll C={channels} shift={shift}");
    let mut r = rng(seed);
    let lead = [2usize, 3];
    let pos = lead[0] * lead[1];
    let row = 256 * channels;
    let logits: Vec<f32> = uniform(&mut r, pos * row, -4.0, 4.0)
        .into_iter()
        .map(|v| v + shift)
        .collect();
    let mut targets: Vec<f32> = (0..pos * channels)
        .map(|_| r.random_range(0..256) as f32)
        .collect();
    targets[0] = 0.0;
    *targets.last_mut().unwrap() = 255.0;
    let grad_scale = 0.37f32;
    let (nll, dl) = be
        .softmax_nll(
            &t(&be, &[lead[0], lead[1], row], &logits),
            &t(&be, &[lead[0], lead[1], channels], &targets),
            grad_scale,
        )
        .unwrap();
    assert_eq!(nll.shape, [lead[0], lead[1], channels]);
    assert_eq!(dl.shape, [lead[0], lead[1], row]);
    let (nll, dl) = (host(&be, &nll), host(&be, &dl));

    // The 256 logits of sub-pixel (p, c), read with the layout of the trait docs: value k of
    // channel c at k * C + c.
    let sub = |l: &[f64], p: usize, c: usize| -> Vec<f64> {
        (0..256).map(|k| l[p * row + k * channels + c]).collect()
    };
    let ld = f64s(&logits);
    let eps = 1e-4;
    for p in 0..pos {
        for c in 0..channels {
            let tgt = targets[p * channels + c] as usize;
            let l = sub(&ld, p, c);
            let want = naive_softmax_nll(&l, tgt);
            let got = nll[p * channels + c] as f64;
            // fp32 log-sum-exp: the sum of 256 exponentials has relative error <= 256 * 2^-24
            // = 1.5e-5 in the worst case, an absolute 1.5e-5 in its log; plus rounding of
            // |nll| + |shift| ~ 100 at 6e-8.
            assert!(
                (got - want).abs() < 3e-5,
                "{name}: nll[{p}, {c}] = {got}, naive f64 {want}"
            );
            // Gradient: central differences of grad_scale * nll(p, c) in f64 w.r.t. each of the
            // sub-pixel's logits (step 1e-4: truncation ~1e-9, rounding ~1e-11). The op's
            // softmax is fp32: ~1e-7 absolute for probabilities <= 1.
            for k in 0..256 {
                let mut lp = l.clone();
                lp[k] = l[k] + eps;
                let up = naive_softmax_nll(&lp, tgt);
                lp[k] = l[k] - eps;
                let down = naive_softmax_nll(&lp, tgt);
                let num = grad_scale as f64 * (up - down) / (2.0 * eps);
                let got = dl[p * row + k * channels + c] as f64;
                assert!(
                    (got - num).abs() < 2e-6,
                    "{name}: dlogits[{p}, value {k}, channel {c}] = {got}, finite difference {num}"
                );
            }
        }
    }
}

#[test]
fn softmax_nll_matches_naive_f64() {
    check_softmax_nll(1, 0.0, 21);
    check_softmax_nll(3, 0.0, 22);
    // Shifted by +100: fp32 exp(104) overflows, so this checks the max subtraction.
    check_softmax_nll(3, 100.0, 23);
}

#[test]
fn softmax_nll_zero_logits_give_ln_256() {
    let be = CpuBackend::new();
    for channels in [1usize, 3] {
        let pos = 4;
        let logits = vec![0.0f32; pos * 256 * channels];
        let targets: Vec<f32> = (0..pos * channels).map(|j| (j * 37 % 256) as f32).collect();
        let (nll, dl) = be
            .softmax_nll(
                &t(&be, &[pos, 256 * channels], &logits),
                &t(&be, &[pos, channels], &targets),
                1.0,
            )
            .unwrap();
        // Uniform softmax: exactly ln 256 (8 bits) per sub-pixel, to the nearest f32.
        let ln256 = 256f64.ln() as f32;
        for (j, &v) in host(&be, &nll).iter().enumerate() {
            assert!(
                v == ln256,
                "C={channels}: nll[{j}] = {v}, want ln 256 = {ln256}"
            );
        }
        // dlogits = 1/256 - onehot, both exact in f32.
        let dl = host(&be, &dl);
        for p in 0..pos {
            for k in 0..256 {
                for c in 0..channels {
                    let onehot = if targets[p * channels + c] as usize == k {
                        1.0
                    } else {
                        0.0
                    };
                    let got = dl[(p * 256 + k) * channels + c];
                    assert!(
                        got == 1.0 / 256.0 - onehot,
                        "C={channels}: dlogits {p} {k} {c}: {got}"
                    );
                }
            }
        }
    }
}

/// Bernoulli NLL in f64 from the probabilities themselves: p(1) = 1 / (1 + e^-l),
/// p(0) = 1 / (1 + e^l); both exact enough in f64 for |l| <= 80.
fn naive_bernoulli_nll(l: f64, t: f64) -> f64 {
    if t == 1.0 {
        -(1.0 / (1.0 + (-l).exp())).ln()
    } else {
        -(1.0 / (1.0 + l.exp())).ln()
    }
}

#[test]
fn bernoulli_nll_matches_naive_f64() {
    let be = CpuBackend::new();
    let mut r = rng(31);
    let extremes = [30.0f32, -30.0, 80.0, -80.0, 0.0, 1e-3, -1e-3, 12.5];
    let mut logits = Vec::new();
    let mut targets = Vec::new();
    for &l in &extremes {
        for tg in [0.0f32, 1.0] {
            logits.push(l);
            targets.push(tg);
        }
    }
    while logits.len() < 60 {
        logits.push(r.random_range(-8.0..8.0));
        targets.push(if r.random_bool(0.5) { 1.0 } else { 0.0 });
    }
    let grad_scale = 0.37f32;
    let shape = [3, 20, 1];
    let (nll, dl) = be
        .bernoulli_nll(
            &t(&be, &shape, &logits),
            &t(&be, &shape, &targets),
            grad_scale,
        )
        .unwrap();
    let (nll, dl) = (host(&be, &nll), host(&be, &dl));
    let eps = 1e-5;
    for j in 0..logits.len() {
        let (l, tg) = (logits[j] as f64, targets[j] as f64);
        let want = naive_bernoulli_nll(l, tg);
        // fp32 of a value up to 80: 2e-6 relative (a few roundings) plus 2e-6 absolute.
        assert!(
            (nll[j] as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
            "bernoulli nll(l={l}, t={tg}) = {}, naive f64 {want}",
            nll[j]
        );
        assert!(nll[j].is_finite());
        // Central differences in f64 (step 1e-5: truncation ~1e-11, rounding ~1e-9 at |l| = 80);
        // the op's sigmoid is fp32: ~1e-7 absolute.
        let num = grad_scale as f64
            * (naive_bernoulli_nll(l + eps, tg) - naive_bernoulli_nll(l - eps, tg))
            / (2.0 * eps);
        assert!(
            (dl[j] as f64 - num).abs() < 1e-6,
            "bernoulli dlogit(l={l}, t={tg}) = {}, finite difference {num}",
            dl[j]
        );
    }

    // Zero logits: ln 2 per target, gradient (1/2 - t), both to the nearest f32.
    let zeros = vec![0.0f32; 4];
    let tg = [0.0f32, 1.0, 1.0, 0.0];
    let (nll, dl) = be
        .bernoulli_nll(&t(&be, &[2, 2], &zeros), &t(&be, &[2, 2], &tg), 1.0)
        .unwrap();
    let ln2 = 2f64.ln() as f32;
    assert!(
        host(&be, &nll).iter().all(|&v| v == ln2),
        "zero logits: {:?}",
        host(&be, &nll)
    );
    assert_eq!(host(&be, &dl), vec![0.5, -0.5, -0.5, 0.5]);
}

#[test]
fn loss_targets_out_of_range_are_errors() {
    let be = CpuBackend::new();
    let mut failures = Vec::new();
    for bad in [300.0f32, 0.5, 256.0, -1.0, f32::NAN, f32::INFINITY] {
        for channels in [1usize, 3] {
            let mut tg = vec![7.0f32; 2 * channels];
            tg[2 * channels - 1] = bad;
            let r = be.softmax_nll(
                &t(&be, &[2, 256 * channels], &vec![0.1; 512 * channels]),
                &t(&be, &[2, channels], &tg),
                1.0,
            );
            if r.is_ok() {
                failures.push(format!("softmax_nll C={channels} accepted target {bad}"));
            }
        }
    }
    for bad in [0.5f32, 300.0, 2.0, -1.0, f32::NAN] {
        let r = be.bernoulli_nll(
            &t(&be, &[3, 1], &[0.3; 3]),
            &t(&be, &[3, 1], &[0.0, bad, 1.0]),
            1.0,
        );
        if r.is_ok() {
            failures.push(format!("bernoulli_nll accepted target {bad}"));
        }
    }
    // The extremes of the valid range are accepted.
    let ok = be.softmax_nll(
        &t(&be, &[2, 256], &[0.0; 512]),
        &t(&be, &[2, 1], &[0.0, 255.0]),
        1.0,
    );
    if ok.is_err() {
        failures.push("softmax_nll rejected targets 0 and 255".into());
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// Optimizers
// ---------------------------------------------------------------------------------------------

#[test]
fn rmsprop_update_matches_hand_computed() {
    let be = CpuBackend::new();
    // One step by hand: ms = 0.9 * 0 + 0.1 * 2^2 = 0.4; p = 1 - 0.1 * 2 / sqrt(0.4)
    // = 1 - 0.316227766 = 0.683772234. g = 0 leaves p unchanged and ms decays.
    let step = RmsPropStep {
        lr: 0.1,
        decay: 0.9,
        eps: 0.0,
    };
    let mut p = t(&be, &[2], &[1.0, -0.5]);
    let mut ms = t(&be, &[2], &[0.0, 0.25]);
    be.rmsprop_update(&mut p, &t(&be, &[2], &[2.0, 0.0]), &mut ms, step)
        .unwrap();
    let (pv, mv) = (host(&be, &p), host(&be, &ms));
    // fp32: a few roundings of values ~1.
    assert!(
        (pv[0] as f64 - 0.683772233983162).abs() < 2e-7,
        "p = {}",
        pv[0]
    );
    assert!((mv[0] as f64 - 0.4).abs() < 1e-7, "ms = {}", mv[0]);
    assert_eq!(pv[1], -0.5);
    assert!((mv[1] as f64 - 0.225).abs() < 1e-7, "ms = {}", mv[1]);

    // Four steps on 20 000 elements (parallel path) against an f64 loop of the documented rule
    // ms = decay ms + (1 - decay) g^2; p -= lr g / sqrt(ms + eps).
    let mut r = rng(41);
    let n = 20_000;
    let p0 = uniform(&mut r, n, -1.0, 1.0);
    let mut p = t(&be, &[n], &p0);
    let mut ms = Tensor::zeros(&be, &[n]).unwrap();
    let (mut pr, mut mr) = (f64s(&p0), vec![0.0f64; n]);
    for k in 0..4 {
        let step = RmsPropStep {
            lr: 0.01 * (k + 1) as f32,
            decay: 0.95,
            eps: 1e-6,
        };
        let mut g = uniform(&mut r, n, -1.0, 1.0);
        g[0] = 0.0;
        be.rmsprop_update(&mut p, &t(&be, &[n], &g), &mut ms, step)
            .unwrap();
        let (lr, decay, eps) = (step.lr as f64, step.decay as f64, step.eps as f64);
        for j in 0..n {
            let gj = g[j] as f64;
            mr[j] = decay * mr[j] + (1.0 - decay) * gj * gj;
            pr[j] -= lr * gj / (mr[j] + eps).sqrt();
        }
        // fp32 arithmetic on ms (rel ~1e-7) and p (|p| <= ~1.2, ulp 1.2e-7, four steps).
        let (pv, mv) = (host(&be, &p), host(&be, &ms));
        for j in 0..n {
            assert!(
                (pv[j] as f64 - pr[j]).abs() < 1e-6,
                "step {k} p[{j}]: {} vs {}",
                pv[j],
                pr[j]
            );
            assert!(
                (mv[j] as f64 - mr[j]).abs() <= 1e-5 * mr[j] + 1e-12,
                "step {k} ms[{j}]: {} vs {}",
                mv[j],
                mr[j]
            );
        }
    }
}

#[test]
fn adam_update_matches_hand_computed() {
    let be = CpuBackend::new();
    let adam = |lr: f32, t_: i32| AdamStep {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        bias_correction1: 1.0 - 0.9f32.powi(t_),
        bias_correction2: 1.0 - 0.999f32.powi(t_),
    };
    // First step by hand: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, so
    // p -= lr g / (|g| + eps): a step of lr against the gradient's sign. lr = 1e-3:
    // 1 - 1e-3 * 0.5 / (0.5 + 1e-8) = 0.99900000002 and -2 + 1e-3 * 4 / (4 + 1e-8).
    let mut p = t(&be, &[2], &[1.0, -2.0]);
    let mut m = Tensor::zeros(&be, &[2]).unwrap();
    let mut v = Tensor::zeros(&be, &[2]).unwrap();
    be.adam_update(
        &mut p,
        &t(&be, &[2], &[0.5, -4.0]),
        &mut m,
        &mut v,
        adam(1e-3, 1),
    )
    .unwrap();
    let (pv, mv, vv) = (host(&be, &p), host(&be, &m), host(&be, &v));
    assert!((pv[0] as f64 - 0.999).abs() < 2e-7, "p = {}", pv[0]);
    assert!((pv[1] as f64 + 1.999).abs() < 2e-7, "p = {}", pv[1]);
    // The moments carry the f32 rounding of the betas: 1 - 0.9f32 is 2.4e-7 relative from 0.1
    // and 1 - 0.999f32 is 1.3e-5 relative from 0.001 (it cancels in v_hat, whose bias
    // correction has the same rounding, so p above is unaffected).
    let close = |got: f32, want: f64, rel: f64| (got as f64 - want).abs() <= rel * want.abs();
    assert!(
        close(mv[0], 0.05, 1e-6) && close(mv[1], -0.4, 1e-6),
        "m = {mv:?}"
    );
    assert!(
        close(vv[0], 0.00025, 2e-5) && close(vv[1], 0.016, 2e-5),
        "v = {vv:?}"
    );

    // Five steps on 20 000 elements against an f64 loop of Kingma & Ba with the trait's bias
    // correction fields: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    // p -= lr (m / bc1) / (sqrt(v / bc2) + eps).
    let mut r = rng(42);
    let n = 20_000;
    let p0 = uniform(&mut r, n, -1.0, 1.0);
    let mut p = t(&be, &[n], &p0);
    let mut m = Tensor::zeros(&be, &[n]).unwrap();
    let mut v = Tensor::zeros(&be, &[n]).unwrap();
    let (mut pr, mut mr, mut vr) = (f64s(&p0), vec![0.0f64; n], vec![0.0f64; n]);
    for k in 1..=5 {
        let s = adam(2e-3, k);
        let g = uniform(&mut r, n, -1.0, 1.0);
        be.adam_update(&mut p, &t(&be, &[n], &g), &mut m, &mut v, s)
            .unwrap();
        let (b1, b2) = (s.beta1 as f64, s.beta2 as f64);
        let (bc1, bc2) = (1.0 - b1.powi(k), 1.0 - b2.powi(k));
        for j in 0..n {
            let gj = g[j] as f64;
            mr[j] = b1 * mr[j] + (1.0 - b1) * gj;
            vr[j] = b2 * vr[j] + (1.0 - b2) * gj * gj;
            pr[j] -= s.lr as f64 * (mr[j] / bc1) / ((vr[j] / bc2).sqrt() + s.eps as f64);
        }
        // Steps are at most lr * few (m_hat / sqrt(v_hat) is bounded by ~3 for these
        // gradients); fp32 relative error ~1e-6 of the step (bias corrections passed as f32)
        // plus the rounding of p: 1e-6 absolute.
        let pv = host(&be, &p);
        for j in 0..n {
            assert!(
                (pv[j] as f64 - pr[j]).abs() < 1e-6,
                "step {k} p[{j}]: {} vs {}",
                pv[j],
                pr[j]
            );
        }
        let (mv, vv) = (host(&be, &m), host(&be, &v));
        let (em, _) = max_rel_err(&mv, &mr);
        let (ev, _) = max_rel_err(&vv, &vr);
        assert!(
            em < 1e-5 && ev < 1e-5,
            "step {k}: moments off by {em:.2e}, {ev:.2e}"
        );
    }
}
