//! Parity: how a result is compared with its reference, written once for `pixelrnn bench`
//! (which validates every kernel before it times it), the CUDA parity tests (tests/cuda/) and
//! the float64 reference tests (tests/common/).
//!
//! Two error measures, each for its own kind of reference:
//! - [`l2_rel_err`] / [`l2_rel_err_all`]: `||got - want|| / ||want||`, for an fp32 result
//!   against an fp32 twin (the CUDA kernels against the CPU backend). The L2 ratio averages the
//!   few-ulp differences that other summation orders give, and an indexing or reduction bug
//!   still gives an error of order 1.
//! - [`max_rel_err`]: `max |got - want| / max |want|`, for an fp32 result against a float64
//!   reference written from the spec. Element-wise relative error is meaningless for outputs
//!   that are sums of mixed-sign terms (an output near zero has an absolute error set by its
//!   terms, not by itself), so the worst element is measured against the largest.
//!
//! Both treat a non-finite result where the reference is finite as an unwritten or wrong
//! element (outputs are NaN-poisoned in the parity runs): the error is infinite.

/// fp32 kernels against the fp32 CPU twin: a few ulp per element from other summation orders;
/// an indexing or reduction bug gives errors of order 1.
pub const FP32_REL_TOL: f64 = 1e-5;

/// Recurrences (28 to 63 dependent steps, errors compound through the cell state) and whole
/// training steps (loss and global gradient norm after a dozen layers): fp32 on both sides.
pub const DEEP_REL_TOL: f64 = 1e-4;

/// Tensor-core kernels (tf32, bf16) against their CPU twin at the same precision: both round
/// the same operands with the same conversions, and a product of two rounded operands is exact
/// in fp32, so they differ by the order of the fp32 additions only (as the fp32 kernels do),
/// plus, on a GPU, the tensor cores' own accumulation inside one mma, whose order and rounding
/// the PTX ISA does not specify (assumed a few fp32 ulp per mma; to be confirmed on a device).
/// Ten times [`FP32_REL_TOL`]: still below what
/// a kernel that skipped the rounding would show (about 3e-4 at tf32, 3e-3 at bf16, on random
/// data; the parity tests check that their data shows it), and an indexing or fragment-layout
/// bug gives errors of order 1.
pub const MMA_REL_TOL: f64 = 1e-4;

/// A whole training step's global gradient norm against the CPU's, fp32 on both sides. Not
/// [`DEEP_REL_TOL`]: the gradient is discontinuous in the forward values. A ReLU input within
/// rounding of zero lands on either side in two correct forwards (fused and unfused, CPU and
/// GPU), its output stays continuous, but the gradient through it is switched on or off. On
/// the CPU at cifar-large (Diagonal BiLSTM, L12 h128 B16), the fused and unfused steps have the
/// same loss to 8 digits and the same gradients above the head's first ReLU to 3e-7, yet
/// their grad norms differ by 1.48e-4, and single elements below it by up to 1.4e-3 (L2:
/// 1.1e-5; L1 and L4: none flipped). The GPU's steps differed from the CPU's by as much
/// (docs/benchmarks.md, 2026-12-04). An indexing or reduction bug still gives errors of order
/// 1, and every op has its own parity test at [`FP32_REL_TOL`] or [`DEEP_REL_TOL`].
pub const STEP_GRAD_NORM_REL_TOL: f64 = 1e-3;

/// As [`STEP_GRAD_NORM_REL_TOL`] at tf32 and bf16: the rounding of every GEMM operand is a
/// discontinuity too, and the tensor cores' own accumulation order flips roundings that the
/// CPU twin does not. Measured on an H200 (2026-12-04, 30 steps of the three models at mnist,
/// cifar and cifar-large): up to 3.4e-3 at tf32 and 4.0e-3 at bf16, while every mma kernel
/// matched its twin at [`MMA_REL_TOL`]. The loss stays within [`DEEP_REL_TOL`] (up to 6e-6).
pub const STEP_GRAD_NORM_ROUNDED_REL_TOL: f64 = 1e-2;

/// The first element that is non-finite in `got` where `want` is finite (an output the kernel
/// did not write, or wrote wrong), if any. Compares the common prefix when lengths differ.
pub fn unwritten(got: &[f32], want: &[f32]) -> Option<usize> {
    got.iter()
        .zip(want)
        .position(|(g, w)| !g.is_finite() && w.is_finite())
}

/// `||got - want|| / ||want||` in f64 over one output, or the absolute error `||got - want||`
/// when `want` is all zeros. Infinite on a length mismatch or an [`unwritten`] element;
/// elements that are NaN on both sides are skipped.
pub fn l2_rel_err(got: &[f32], want: &[f32]) -> f64 {
    l2_rel_err_all(&[got], &[want])
}

/// [`l2_rel_err`] pooled over several outputs (one norm over all of them): infinite when the
/// number of outputs differs too.
pub fn l2_rel_err_all<G: AsRef<[f32]>, W: AsRef<[f32]>>(got: &[G], want: &[W]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.as_ref(), w.as_ref());
        if g.len() != w.len() || unwritten(g, w).is_some() {
            return f64::INFINITY;
        }
        for (&a, &b) in g.iter().zip(w) {
            if a.is_nan() && b.is_nan() {
                continue;
            }
            num += (a as f64 - b as f64).powi(2);
            den += (b as f64).powi(2);
        }
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// `max |got - want| / max |want|` against a float64 reference, with the index of the worst
/// element. A non-finite element of `got` gives an infinite error at its index.
///
/// # Panics
/// On a length mismatch (a test's own shapes are wrong).
pub fn max_rel_err(got: &[f32], want: &[f64]) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let mut worst = (0.0f64, 0);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        if !g.is_finite() {
            return (f64::INFINITY, k);
        }
        let e = (g as f64 - w).abs() / scale;
        if e > worst.0 {
            worst = (e, k);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_catches_nan_and_mismatch() {
        let a = vec![vec![1.0f32, 2.0]];
        assert_eq!(l2_rel_err_all(&a, &a), 0.0);
        assert!(l2_rel_err_all(&[vec![1.0f32, f32::NAN]], &a).is_infinite());
        assert!(l2_rel_err_all(&[vec![1.0f32]], &a).is_infinite());
        assert!(l2_rel_err_all(&[vec![1.0f32, 2.0], vec![]], &a).is_infinite());
        // ||(0, 0.2)|| / ||(1, 2)|| = 0.2 / sqrt(5)
        let e = l2_rel_err(&[1.0, 2.2], &[1.0, 2.0]);
        assert!((e - 0.2 / 5f64.sqrt()).abs() < 1e-6, "{e}");
        // against zeros: the absolute error
        assert!((l2_rel_err(&[3.0, 4.0], &[0.0, 0.0]) - 5.0).abs() < 1e-12);
        // NaN on both sides is skipped
        assert_eq!(l2_rel_err(&[f32::NAN, 1.0], &[f32::NAN, 1.0]), 0.0);
        assert_eq!(unwritten(&[1.0, f32::INFINITY], &[1.0, 2.0]), Some(1));
    }

    #[test]
    fn max_norm_is_against_the_largest_reference() {
        // worst |diff| 0.5 at index 0, largest |want| 10
        let (e, k) = max_rel_err(&[0.5, 10.0, -3.0], &[0.0, 10.0, -3.1]);
        assert_eq!(k, 0);
        assert!((e - 0.05).abs() < 1e-9, "{e}");
        let (e, k) = max_rel_err(&[1.0, f32::NAN], &[1.0, 1.0]);
        assert!(e.is_infinite());
        assert_eq!(k, 1);
    }
}
