//! `masked_conv2d` on the CPU at a [`Precision`]: the CPU twin of the tensor-core kernels
//! (kernels/masked_conv2d_mma.cu, kernels/masked_conv2d_mma_weight.cu).
//!
//! The kernels round every GEMM operand once, when they stage it (input activations, weights
//! and output gradients), multiply on the tensor cores and accumulate in fp32. Here the same
//! operands are rounded with the same conversions ([`Precision::round`], bit-exact with the
//! device's) and the fp32 paths of [`super::masked_conv2d`] run on them: a product of two
//! rounded operands is exact in fp32, so the twin and the kernels differ only by the order of
//! their fp32 additions. The bias is added in fp32, and the bias gradient is the fp32 sum of
//! the unrounded output gradient (a reduction, not a GEMM; the kernels sum the unrounded dy
//! too). At fp32 this is [`super::masked_conv2d`] itself, no copy made.

use super::masked_conv2d::{self, ConvGeom};
use crate::backend::{ConvSpec, Precision};

/// Forward at `precision`: `conv(round(x), round(weight)) + bias`, fp32 accumulation.
pub fn forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    precision: Precision,
) -> Vec<f32> {
    if precision == Precision::Fp32 {
        return masked_conv2d::forward(x, weight, bias, g, spec);
    }
    let (xr, wr) = (precision.round_all(x), precision.round_all(weight));
    masked_conv2d::forward(&xr, &wr, bias, g, spec)
}

/// Backward at `precision`: `(dx, dw, db)` of [`masked_conv2d::backward`] with `x`, `weight`
/// and `dy` rounded as GEMM operands (dx = dy . w^T, dw = x^T . dy), and `db` the fp32 sum of
/// the unrounded `dy` over all positions.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    need_dx: bool,
    precision: Precision,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    if precision == Precision::Fp32 {
        return masked_conv2d::backward(x, weight, dy, g, spec, need_dx);
    }
    let (xr, wr, dyr) = (
        precision.round_all(x),
        precision.round_all(weight),
        precision.round_all(dy),
    );
    let (dx, dw, _) = masked_conv2d::backward(&xr, &wr, &dyr, g, spec, need_dx);
    let mut db = vec![0.0f32; g.cout];
    for row in dy.chunks_exact(g.cout.max(1)).take(g.positions()) {
        for (d, v) in db.iter_mut().zip(row) {
            *d += v;
        }
    }
    (dx, dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Mask;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = i
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(97));
                ((h >> 8) % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    /// The twin rounds exactly its GEMM operands: at bf16 its outputs equal the fp32 op on
    /// pre-rounded operands (same code, same order: bit for bit), differ from the fp32 op on
    /// the raw ones by about bf16's rounding (more than fp32 noise, less than 1e-2), and the
    /// bias gradient is the unrounded one.
    #[test]
    fn rounds_the_operands_and_keeps_the_bias_fp32() {
        let g = ConvGeom {
            n: 2,
            h: 5,
            w: 6,
            cin: 6,
            cout: 9,
        };
        let spec = ConvSpec::new(3, 3, Mask::B, 3, g.cin, g.cout);
        let x = values(g.positions() * g.cin, 1);
        let w = values(g.cout * g.cin * 9, 2);
        let b = values(g.cout, 3);
        let dy = values(g.positions() * g.cout, 4);
        let p = Precision::Bf16;
        let y = forward(&x, &w, &b, g, &spec, p);
        let y_pre = masked_conv2d::forward(&p.round_all(&x), &p.round_all(&w), &b, g, &spec);
        assert_eq!(y, y_pre);
        let y32 = masked_conv2d::forward(&x, &w, &b, g, &spec);
        let err = crate::parity::l2_rel_err(&y, &y32);
        assert!(err > 1e-4 && err < p.rel_tol_vs_fp32(), "{err}");

        let (dx, dw, db) = backward(&x, &w, &dy, g, &spec, true, p);
        let (dx32, dw32, db32) = masked_conv2d::backward(&x, &w, &dy, g, &spec, true);
        let (dx_pre, dw_pre, _) = masked_conv2d::backward(
            &p.round_all(&x),
            &p.round_all(&w),
            &p.round_all(&dy),
            g,
            &spec,
            true,
        );
        assert_eq!(dx, dx_pre);
        assert_eq!(dw, dw_pre);
        assert!(crate::parity::l2_rel_err(&db, &db32) < 1e-6);
        for (got, want) in [(dx.unwrap(), dx32.unwrap()), (dw, dw32)] {
            let err = crate::parity::l2_rel_err(&got, &want);
            assert!(err > 1e-4 && err < p.rel_tol_vs_fp32(), "{err}");
        }
        // At fp32 the twin is the fp32 op.
        assert_eq!(forward(&x, &w, &b, g, &spec, Precision::Fp32), y32);
    }
}
