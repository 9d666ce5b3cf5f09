//! Parity of the logistic mixture likelihood (kernels/logistic_mixture.cu: `fwd_bwd`, `sample`)
//! against its CPU twin (src/backend/cpu/logistic_mixture.rs).
//!
//! Tolerances: the loss and its gradient `FP32_REL_TOL` (other exp/log implementations, FMA
//! contraction, and the log-sum-exps over components summed by a warp butterfly instead of in
//! order: a few ulp); the draws exactly, on uniforms chosen away from every boundary (a row is
//! redrawn while nudging any of its uniforms by 1e-4 relative changes its CPU draw, so the
//! kernel's last-ulp differences cannot move a value across a bin or component boundary).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::Backend;
use pixelrnn::models::Likelihood;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::{assert_close, cpu_tensor, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    logistic_mixture_nll => super::check_nll,
    logistic_mixture_invalid_targets => super::check_invalid_targets,
    logistic_mixture_sample => super::check_sample,
    logistic_mixture_sample_non_finite => super::check_sample_non_finite,
}

/// Random parameters: logits in [-2, 2), means in [-1.1, 1.1), raw log-scales in [-8, 1) (some
/// clamped at -7), coefficients in [-1.5, 1.5).
fn params(rng: &mut Pcg64, rows: usize, k: usize, c: usize) -> Vec<f32> {
    let mut p = Vec::new();
    for _ in 0..rows {
        p.extend((0..k).map(|_| rng.random_range(-2.0f32..2.0)));
        p.extend((0..c * k).map(|_| rng.random_range(-1.1f32..1.1)));
        p.extend((0..c * k).map(|_| rng.random_range(-8.0f32..1.0)));
        if c == 3 {
            p.extend((0..3 * k).map(|_| rng.random_range(-1.5f32..1.5)));
        }
    }
    p
}

pub fn check_nll<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, (rows, c, k)) in [(1, 1, 1), (37, 1, 10), (29, 3, 5), (9, 3, 32), (300, 3, 10)]
        .into_iter()
        .enumerate()
    {
        let mut rng = Pcg64::seed_from_u64(700 + s as u64);
        let per = Likelihood::mixture_params(k, c);
        let p = params(&mut rng, rows, k, c);
        let mut tg: Vec<f32> = (0..rows * c)
            .map(|_| rng.random_range(0..=255) as f32)
            .collect();
        for (i, v) in [0.0, 255.0, 1.0, 254.0].into_iter().enumerate() {
            if i < tg.len() {
                tg[i] = v;
            }
        }
        let params = cpu_tensor(&[rows, per], &p);
        let targets = cpu_tensor(&[rows, c], &tg);
        let (nll, d) = cpu
            .logistic_mixture_nll(&params, &targets, k, 0.25)
            .unwrap();
        let (gnll, gd) = gpu
            .logistic_mixture_nll(&to_gpu(gpu, &params), &to_gpu(gpu, &targets), k, 0.25)
            .unwrap();
        let what = format!("logistic_mixture_nll [{rows}, {per}] C={c} K={k}");
        assert_close(&format!("{what} nll"), gpu, &gnll, &nll, FP32_REL_TOL);
        assert_close(&format!("{what} dparams"), gpu, &gd, &d, FP32_REL_TOL);
    }
}

pub fn check_invalid_targets<E: Executor>(gpu: &CudaBackend<E>) {
    let mut rng = Pcg64::seed_from_u64(720);
    let p = params(&mut rng, 3, 2, 3);
    for bad in [256.0f32, -1.0, 0.5, f32::NAN] {
        let params = cpu_tensor(&[3, 20], &p);
        let targets = cpu_tensor(&[3, 3], &[1.0, 2.0, 3.0, 4.0, bad, 6.0, 7.0, 8.0, 9.0]);
        // Reported at the loss's sum on CUDA (src/backend/cuda/loss_targets.rs).
        let err = gpu
            .logistic_mixture_nll(&to_gpu(gpu, &params), &to_gpu(gpu, &targets), 2, 1.0)
            .and_then(|(nll, _)| gpu.sum(&nll))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("targets must be integers in 0..=255"),
            "{bad}: {err}"
        );
    }
}

/// CPU draws of one row.
fn cpu_draw(p: &[f32], u: &[f32], k: usize, c: usize, temperature: f32) -> Vec<f32> {
    let cpu = CpuBackend::new();
    let per = p.len();
    cpu.logistic_mixture_sample(
        &cpu_tensor(&[1, per], p),
        &cpu_tensor(&[1, c + 1], u),
        k,
        temperature,
    )
    .unwrap()
    .data
}

/// Uniforms for row `p` whose draw no nudge of 1e-4 (relative, either way, any slot) changes.
fn safe_uniforms(rng: &mut Pcg64, p: &[f32], k: usize, c: usize, temperature: f32) -> Vec<f32> {
    loop {
        let u: Vec<f32> = (0..=c).map(|_| rng.random_range(0.001f32..0.999)).collect();
        let want = cpu_draw(p, &u, k, c, temperature);
        let stable = (0..=c).all(|q| {
            [1.0 - 1e-4, 1.0 + 1e-4].iter().all(|f| {
                let mut v = u.clone();
                v[q] *= f;
                cpu_draw(p, &v, k, c, temperature) == want
            })
        });
        if stable {
            return u;
        }
    }
}

pub fn check_sample<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, (rows, c, k, temperature)) in [
        (1, 1, 1, 1.0f32),
        (37, 1, 10, 1.0),
        (29, 3, 5, 0.7),
        (9, 3, 32, 1.0),
        (20, 3, 10, 0.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Pcg64::seed_from_u64(740 + s as u64);
        let per = Likelihood::mixture_params(k, c);
        let p = params(&mut rng, rows, k, c);
        let mut u = Vec::with_capacity(rows * (c + 1));
        for r in 0..rows {
            u.extend(safe_uniforms(
                &mut rng,
                &p[r * per..(r + 1) * per],
                k,
                c,
                temperature,
            ));
        }
        let params = cpu_tensor(&[rows, per], &p);
        let uniforms = cpu_tensor(&[rows, c + 1], &u);
        let want = cpu
            .logistic_mixture_sample(&params, &uniforms, k, temperature)
            .unwrap();
        let got = gpu
            .logistic_mixture_sample(
                &to_gpu(gpu, &params),
                &to_gpu(gpu, &uniforms),
                k,
                temperature,
            )
            .unwrap();
        let what = format!("logistic_mixture_sample [{rows}, {per}] C={c} K={k} T={temperature}");
        assert_close(&what, gpu, &got, &want, 0.0);
        if rows > 1 {
            let distinct: std::collections::BTreeSet<u32> =
                want.data.iter().map(|v| v.to_bits()).collect();
            assert!(distinct.len() > 2, "{what}: degenerate draws");
        }
    }
}

/// A NaN or infinite parameter anywhere in a row (a logit, a mean, a coefficient beyond lane
/// 31) makes that row's pixel NaN on both backends; the rows around it are drawn as usual.
pub fn check_sample_non_finite<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (rows, c, k) = (6usize, 3usize, 5usize);
    let per = Likelihood::mixture_params(k, c);
    let mut rng = Pcg64::seed_from_u64(760);
    let mut p = params(&mut rng, rows, k, c);
    for (r, i, v) in [
        (0, 0, f32::NAN),
        (2, 7, f32::INFINITY),
        (4, per - 1, f32::NEG_INFINITY),
    ] {
        p[r * per + i] = v;
    }
    let u = vec![0.4f32; rows * (c + 1)];
    let params = cpu_tensor(&[rows, per], &p);
    let uniforms = cpu_tensor(&[rows, c + 1], &u);
    let want = cpu
        .logistic_mixture_sample(&params, &uniforms, k, 1.0)
        .unwrap();
    let got = gpu
        .logistic_mixture_sample(&to_gpu(gpu, &params), &to_gpu(gpu, &uniforms), k, 1.0)
        .unwrap()
        .to_vec(gpu)
        .unwrap();
    for r in 0..rows {
        let bad = r % 2 == 0;
        for ch in 0..c {
            let (g, w) = (got[r * c + ch], want.data[r * c + ch]);
            assert_eq!(w.is_nan(), bad, "cpu row {r}");
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "row {r} channel {ch}: {g} vs {w}"
            );
        }
    }
}
