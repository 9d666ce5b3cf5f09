//! `Backend::sample_logits` on the CPU (src/backend/cpu/sample_logits.rs), the reference its
//! CUDA kernel is checked against (tests/cuda/sampling.rs): the draws follow the softmax's
//! probabilities, values of zero probability are never drawn, the channels of the interleaved
//! layout are independent, and the binary draw is a threshold on the sigmoid.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn tensor(shape: &[usize], data: &[f32]) -> Tensor<CpuBackend> {
    Tensor::from_slice(&CpuBackend::new(), shape, data).unwrap()
}

/// Draws one value per uniform from one channel whose 256 logits are `logits`.
fn draws(logits: &[f32], uniforms: &[f32]) -> Vec<usize> {
    let n = uniforms.len();
    let l: Vec<f32> = (0..n).flat_map(|_| logits.iter().copied()).collect();
    CpuBackend::new()
        .sample_logits(&tensor(&[n, 256], &l), &tensor(&[n, 1], uniforms), false)
        .unwrap()
        .data
        .iter()
        .map(|&v| v as usize)
        .collect()
}

#[test]
fn frequencies_match_probabilities() {
    // A peaked, uneven distribution over 256 values.
    let mut rng = Pcg64::seed_from_u64(1);
    let logits: Vec<f32> = (0..256).map(|_| rng.random_range(-4.0f32..4.0)).collect();
    let max = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
    let w: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let total: f64 = w.iter().sum();
    let n = 200_000;
    let u: Vec<f32> = (0..n).map(|_| rng.random_range(0.0f32..1.0)).collect();
    let mut counts = vec![0.0f64; 256];
    for k in draws(&logits, &u) {
        counts[k] += 1.0;
    }
    // Chi-square with 255 degrees of freedom over the values expected at least 5 times; 368 is
    // its 99.99th percentile.
    let mut chi2 = 0.0;
    for (k, &c) in counts.iter().enumerate() {
        let e = n as f64 * w[k] / total;
        if e >= 5.0 {
            chi2 += (c - e) * (c - e) / e;
        }
    }
    assert!(chi2 < 368.0, "chi-square {chi2}");
}

#[test]
fn uniforms_on_a_grid_invert_the_cdf_exactly() {
    // Four values with probabilities 1/8, 1/4, 1/8, 1/2 (exact in f32); every other value -inf
    // in effect.
    let mut logits = vec![-1e4f32; 256];
    let ln2 = std::f32::consts::LN_2;
    for (k, l) in [(10, 0.0), (20, ln2), (30, 0.0), (40, 2.0 * ln2)] {
        logits[k] = l;
    }
    let u = [
        0.0,
        0.124,
        0.126,
        0.374,
        0.376,
        0.499,
        0.501,
        0.999,
        1.0 - f32::EPSILON / 2.0,
    ];
    assert_eq!(draws(&logits, &u), [10, 10, 20, 20, 30, 30, 40, 40, 40]);
}

#[test]
fn a_one_hot_distribution_always_draws_its_value() {
    for hot in [0usize, 1, 77, 254, 255] {
        let mut logits = vec![-30.0f32; 256];
        logits[hot] = 80.0;
        let u: Vec<f32> = (0..=1000)
            .map(|i| (i as f32 / 1000.0).min(1.0 - f32::EPSILON / 2.0))
            .collect();
        assert!(
            draws(&logits, &u).iter().all(|&k| k == hot),
            "hot value {hot}"
        );
    }
}

#[test]
fn values_of_zero_probability_are_never_drawn() {
    // Only values 3 and 5 have weight (after exp underflow); u near 0 and near 1 stay on them.
    let mut logits = vec![-200.0f32; 256];
    logits[3] = 0.0;
    logits[5] = 0.0;
    let u = [0.0, 1e-30, 0.5 - 1e-7, 0.5, 1.0 - f32::EPSILON / 2.0];
    assert_eq!(draws(&logits, &u), [3, 3, 3, 5, 5]);
}

#[test]
fn large_logits_are_stable_and_non_finite_logits_give_nan() {
    // Logits far beyond exp's range: the max is subtracted first.
    let mut logits = vec![1e30f32; 256];
    logits[9] = 1e30 + 1e24; // representably larger
    assert_eq!(draws(&logits, &[0.0, 0.5, 0.99]), [9, 9, 9]);
    // A NaN or infinite logit anywhere in the row: the drawn value is NaN (the sampler then
    // refuses it), never a silent 255.
    let be = CpuBackend::new();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut l = vec![0.0f32; 2 * 256];
        l[256 + 200] = bad;
        let out = be
            .sample_logits(&tensor(&[2, 256], &l), &tensor(&[2, 1], &[0.3, 0.3]), false)
            .unwrap();
        assert!(!out.data[0].is_nan(), "a finite row is drawn");
        assert!(out.data[1].is_nan(), "logit {bad}: drew {}", out.data[1]);
        let out = be
            .sample_logits(
                &tensor(&[1, 2], &[0.5, bad]),
                &tensor(&[1, 2], &[0.3, 0.3]),
                true,
            )
            .unwrap();
        assert!(
            out.data[0] == 1.0 && out.data[1].is_nan(),
            "binary {bad}: {:?}",
            out.data
        );
    }
}

#[test]
fn interleaved_channels_are_independent() {
    // Three channels: channel c puts all its mass on value 100 + c (exp(-200) underflows to
    // 0 in f32; exp(-100) would be a denormal, a tiny but non-zero probability that u = 0
    // rightly draws).
    let c = 3;
    let mut l = vec![-200.0f32; 2 * 256 * c];
    for row in 0..2 {
        for ch in 0..c {
            l[row * 256 * c + (100 + ch) * c + ch] = 0.0;
        }
    }
    let out = CpuBackend::new()
        .sample_logits(
            &tensor(&[2, 256 * c], &l),
            &tensor(&[2, c], &[0.1, 0.5, 0.9, 0.0, 0.3, 0.99]),
            false,
        )
        .unwrap();
    assert_eq!(out.shape, [2, c]);
    assert_eq!(out.data, [100.0, 101.0, 102.0, 100.0, 101.0, 102.0]);
}

#[test]
fn binary_draws_threshold_the_sigmoid() {
    let be = CpuBackend::new();
    // sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25; huge logits saturate.
    let ln3 = 3.0f32.ln();
    let l = [0.0, 0.0, ln3, ln3, -ln3, -ln3, 1e4, -1e4];
    let u = [0.49, 0.51, 0.74, 0.76, 0.24, 0.26, 0.999, 0.0];
    let out = be
        .sample_logits(&tensor(&[4, 2], &l), &tensor(&[4, 2], &u), true)
        .unwrap();
    assert_eq!(out.data, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
}

#[test]
fn shapes_are_checked() {
    let be = CpuBackend::new();
    let u = tensor(&[2, 3], &[0.5; 6]);
    assert!(be
        .sample_logits(&tensor(&[2, 256], &[0.0; 512]), &u, false)
        .is_err());
    assert!(be
        .sample_logits(&tensor(&[2, 4], &[0.0; 8]), &u, true)
        .is_err());
    assert!(be
        .sample_logits(&tensor(&[3, 3], &[0.0; 9]), &u, true)
        .is_err());
    assert!(be
        .sample_logits(&tensor(&[2, 768], &[0.0; 1536]), &u, false)
        .is_ok());
}
