//! Random data, CPU tensors, float64 conversion, norm-wise comparisons and finite differences.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::parity::max_rel_err;
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// A tensor of the CPU backend.
pub type T = Tensor<CpuBackend>;

/// The tests' random number generator: the same stream for the same seed on every machine.
pub fn rng(seed: u64) -> Pcg64 {
    Pcg64::seed_from_u64(seed)
}

/// `n` values drawn uniformly from `[lo, hi)`.
pub fn uniform(rng: &mut Pcg64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Magnitudes in `[0.1 * scale, scale)` with a random sign: never zero, so a masked tap that
/// the code failed to skip always shows in the output.
pub fn nonzero(rng: &mut Pcg64, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let m: f32 = rng.random_range(0.1 * scale..scale);
            if rng.random_bool(0.5) {
                m
            } else {
                -m
            }
        })
        .collect()
}

/// A CPU tensor of `shape` holding `data`.
pub fn t(b: &CpuBackend, shape: &[usize], data: &[f32]) -> T {
    Tensor::from_slice(b, shape, data).unwrap()
}

/// A CPU tensor's values.
pub fn host(b: &CpuBackend, x: &T) -> Vec<f32> {
    x.to_vec(b).unwrap()
}

/// The values as float64 (exact).
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `sum(a * b)`: the loss `sum(dy * y)` whose gradients a backward pass returns.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// An fp32 result against its float64 reference, norm-wise
/// ([`max_rel_err`]: `max |got - want| / max |want|`; a non-finite element fails): element-wise
/// relative error is meaningless for outputs that are sums of mixed-sign terms. Refuses an
/// all-zero reference, against which the comparison would be empty.
pub fn assert_rel(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert!(
        want.iter().any(|&v| v != 0.0),
        "{what}: the reference is all zeros, the comparison would be empty"
    );
    let (e, k) = max_rel_err(got, want);
    assert!(
        e < tol,
        "{what}: relative error {e:.3e} >= {tol:.0e} at element {k} (got {}, want {})",
        got[k],
        want[k]
    );
}

/// Two fp32 results of the same maths (another summation order): [`assert_rel`] with `b` as
/// the reference.
pub fn assert_same(what: &str, a: &[f32], b: &[f32], tol: f64) {
    assert_rel(what, a, &f64s(b), tol);
}

/// A gradient against finite differences: norm-wise within `tol`, and exactly zero where the
/// reference does not read the variable at all (its difference quotient is exactly 0).
pub fn assert_grad(what: &str, got: &[f32], fd: &[f64], tol: f64) {
    assert_rel(what, got, fd, tol);
    for (i, (&g, &w)) in got.iter().zip(fd).enumerate() {
        if w == 0.0 {
            assert_eq!(g, 0.0, "{what}[{i}]: structurally zero gradient is {g}");
        }
    }
}

/// Central differences `(f(v + eps) - f(v - eps)) / 2 eps` of `f` w.r.t. every element of
/// every variable, the others held fixed.
pub fn finite_differences(
    vars: &[Vec<f64>],
    eps: f64,
    f: &dyn Fn(&[Vec<f64>]) -> f64,
) -> Vec<Vec<f64>> {
    let mut v = vars.to_vec();
    let mut out = Vec::with_capacity(vars.len());
    for a in 0..vars.len() {
        let mut g = vec![0.0; vars[a].len()];
        for (e, ge) in g.iter_mut().enumerate() {
            let x0 = v[a][e];
            v[a][e] = x0 + eps;
            let fp = f(&v);
            v[a][e] = x0 - eps;
            let fm = f(&v);
            v[a][e] = x0;
            *ge = (fp - fm) / (2.0 * eps);
        }
        out.push(g);
    }
    out
}

/// The message of a caught panic.
pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}
