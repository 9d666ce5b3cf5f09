//! Parity of the sampling kernel (kernels/sample_logits.cu) against its CPU twin: 256-way
//! and binary draws from given uniforms, and non-finite logits.
//!
//! Tolerance: sampling draws the same values wherever `u` is not within rounding of a CDF
//! boundary (inputs chosen so): exact.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::Backend;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::pointwise::{assert_same, download, random_logits, EXACT};
use crate::{assert_close, cpu_tensor, to_gpu};

crate::parity_tests! {
    sample_logits => super::check_sample_logits,
    sample_logits_binary => super::check_sample_logits_binary,
    sample_logits_non_finite => super::check_sample_logits_non_finite,
}

/// `cdf(k)` of the softmax of `logits`, in f64.
fn cdf_f64(logits: impl Fn(usize) -> f32) -> Vec<f64> {
    let max = (0..256).map(|k| logits(k) as f64).fold(f64::MIN, f64::max);
    let w: Vec<f64> = (0..256).map(|k| (logits(k) as f64 - max).exp()).collect();
    let total: f64 = w.iter().sum();
    w.iter()
        .scan(0.0, |c, &x| {
            *c += x;
            Some(*c / total)
        })
        .collect()
}

/// A uniform at least `margin` away from every boundary of `cdf` (where f32 rounding on
/// either side could move the draw).
fn safe_uniform(rng: &mut Pcg64, cdf: &[f64], margin: f64) -> f32 {
    loop {
        let u = rng.random_range(0.0f32..1.0);
        if cdf.iter().all(|&c| (c - u as f64).abs() > margin) {
            return u;
        }
    }
}

pub fn check_sample_logits<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, (rows, c)) in [(1usize, 1usize), (37, 1), (29, 3)].into_iter().enumerate() {
        let mut rng = Pcg64::seed_from_u64(260 + s as u64);
        let mut l = random_logits(&mut rng, rows * 256 * c);
        // Row 0: one-hot-ish in every channel (value 77 + channel far above the rest); values
        // of zero probability (exp underflows) must never be drawn, even for u near 1.
        if rows > 1 {
            for ch in 0..c {
                for k in 0..256 {
                    l[k * c + ch] = if k == 77 + ch { 60.0 } else { -60.0 };
                }
            }
        }
        let mut u = Vec::with_capacity(rows * c);
        for r in 0..rows {
            for ch in 0..c {
                let cdf = cdf_f64(|k| l[r * 256 * c + k * c + ch]);
                u.push(safe_uniform(&mut rng, &cdf, 1e-5));
            }
        }
        if rows > 1 {
            // The largest float below 1 on the one-hot-ish row.
            u[0] = 1.0 - f32::EPSILON / 2.0;
        }
        let logits = cpu_tensor(&[rows, 256 * c], &l);
        let uniforms = cpu_tensor(&[rows, c], &u);
        let want = cpu.sample_logits(&logits, &uniforms, false).unwrap();
        let got = gpu
            .sample_logits(&to_gpu(gpu, &logits), &to_gpu(gpu, &uniforms), false)
            .unwrap();
        let what = format!("sample_logits [{rows}, 256 * {c}]");
        assert_close(&what, gpu, &got, &want, EXACT);
        if rows > 1 {
            let drawn = download(gpu, &got);
            for (ch, &v) in drawn.iter().take(c).enumerate() {
                assert_eq!(v, (77 + ch) as f32, "{what}: one-hot-ish channel {ch}");
            }
        }
        // Every draw against the f64 inverse CDF as well (the margin makes it unambiguous).
        for (r, &v) in want.data.iter().enumerate() {
            let (row, ch) = (r / c, r % c);
            let cdf = cdf_f64(|k| l[row * 256 * c + k * c + ch]);
            let k = cdf.iter().position(|&p| (u[r] as f64) < p).unwrap_or(255);
            assert_eq!(v, k as f32, "{what}: draw {r} against the f64 CDF");
        }
    }
}

pub fn check_sample_logits_binary<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (rows, c) = (333, 3);
    let mut rng = Pcg64::seed_from_u64(290);
    let l = random_logits(&mut rng, rows * c);
    // u at least 1e-5 away from sigmoid(l) (computed in f64).
    let u: Vec<f32> = l
        .iter()
        .map(|&x| {
            let p = 1.0 / (1.0 + (-(x as f64)).exp());
            safe_uniform(&mut rng, &[p], 1e-5)
        })
        .collect();
    let logits = cpu_tensor(&[rows, c], &l);
    let uniforms = cpu_tensor(&[rows, c], &u);
    let want = cpu.sample_logits(&logits, &uniforms, true).unwrap();
    let got = gpu
        .sample_logits(&to_gpu(gpu, &logits), &to_gpu(gpu, &uniforms), true)
        .unwrap();
    assert_close("sample_logits binary", gpu, &got, &want, EXACT);
    let ones = want.data.iter().filter(|&&v| v == 1.0).count();
    assert!(
        ones > 0 && ones < rows * c,
        "binary draws are all {ones}: no test"
    );
}

/// A NaN or infinite logit anywhere in a row (any lane's register) makes that row's drawn
/// value NaN on both backends; the rows around it are drawn as usual.
pub fn check_sample_logits_non_finite<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (rows, c) = (7usize, 3usize);
    let mut l = vec![0.5f32; rows * 256 * c];
    // Row r, channel r % c: a bad value at value k (lanes 0, 31, and later registers).
    let bad = [
        (0, 0, f32::NAN),
        (1, 31, f32::INFINITY),
        (2, 255, f32::NEG_INFINITY),
        (4, 100, f32::NAN),
        (5, 200, f32::NEG_INFINITY),
    ];
    for &(r, k, v) in &bad {
        l[r * 256 * c + k * c + r % c] = v;
    }
    let u = vec![0.4f32; rows * c];
    let logits = cpu_tensor(&[rows, 256 * c], &l);
    let uniforms = cpu_tensor(&[rows, c], &u);
    let want = cpu.sample_logits(&logits, &uniforms, false).unwrap();
    let got = gpu
        .sample_logits(&to_gpu(gpu, &logits), &to_gpu(gpu, &uniforms), false)
        .unwrap();
    assert_same("sample_logits non-finite", gpu, &got, &want);
    for (i, &v) in want.data.iter().enumerate() {
        let marked = bad.iter().any(|&(r, _, _)| i == r * c + r % c);
        assert_eq!(
            v.is_nan(),
            marked,
            "sample_logits non-finite: element {i} is {v}"
        );
    }
    let lb = [0.3, f32::NAN, f32::INFINITY, -2.0, f32::NEG_INFINITY, 7.0];
    let ub = [0.5f32; 6];
    let logits = cpu_tensor(&[2, 3], &lb);
    let uniforms = cpu_tensor(&[2, 3], &ub);
    let want = cpu.sample_logits(&logits, &uniforms, true).unwrap();
    let got = gpu
        .sample_logits(&to_gpu(gpu, &logits), &to_gpu(gpu, &uniforms), true)
        .unwrap();
    assert_same("sample_logits binary non-finite", gpu, &got, &want);
    let nans: Vec<bool> = want.data.iter().map(|v| v.is_nan()).collect();
    assert_eq!(nans, [false, true, true, false, true, false]);
}
