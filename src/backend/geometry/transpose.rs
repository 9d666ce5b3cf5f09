//! The operands of `conv_transpose2d_forward` / `_backward`: input `[n, h, w, cin]`, weight
//! `[cin, cout, k, k]` with `k - stride` even and non-negative, bias or output gradient. Each
//! op's one check returns a [`TransposeGeom`].

use super::conv::bias_of;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sizes of one transposed-convolution call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeGeom {
    /// Batch.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input features.
    pub cin: usize,
    /// Output features.
    pub cout: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub r: usize,
}

impl TransposeGeom {
    /// FLOPs of one pass (forward, input gradient or weight gradient): every input position
    /// meets `k * k` taps of `cin * cout` multiply-adds, 2 FLOPs each (taps that fall outside
    /// the output are counted too).
    pub fn pass_flops(&self) -> u64 {
        2 * (self.n * self.h * self.w * self.k * self.k * self.cin * self.cout) as u64
    }

    /// Padding `(k - r) / 2`.
    pub fn pad(&self) -> usize {
        (self.k - self.r) / 2
    }

    /// `[n, h*r, w*r, cout]`: the output.
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.h * self.r, self.w * self.r, self.cout]
    }

    /// Output positions `n * h*r * w*r`.
    pub fn out_positions(&self) -> usize {
        self.n * self.h * self.r * self.w * self.r
    }

    /// `x` under `w` with `stride`.
    fn input_and_weight<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        stride: usize,
    ) -> Result<Self> {
        let [n, h, wd, cin] = x.nhwc(op)?;
        match w.shape.as_slice() {
            &[wcin, cout, k, k2]
                if wcin == cin
                    && k == k2
                    && stride > 0
                    && k >= stride
                    && (k - stride).is_multiple_of(2)
                    && cout > 0 =>
            {
                Ok(TransposeGeom {
                    n,
                    h,
                    w: wd,
                    cin,
                    cout,
                    k,
                    r: stride,
                })
            }
            s => Err(Error::shape(
                op,
                format!(
                    "weight {s:?} should be [cin, cout, k, k] with cin = {cin} and k - stride a non-negative even number (input {:?}, stride {stride})",
                    x.shape
                ),
            )),
        }
    }

    /// `conv_transpose2d_forward`: input, weight, bias `b` `[cout]`.
    pub fn forward<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        b: &Tensor<B>,
        stride: usize,
    ) -> Result<Self> {
        let g = Self::input_and_weight(op, x, w, stride)?;
        bias_of(op, b, g.cout)?;
        Ok(g)
    }

    /// `conv_transpose2d_backward`: input, weight, output gradient `dy` `[n, h*r, w*r, cout]`.
    pub fn backward<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        dy: &Tensor<B>,
        stride: usize,
    ) -> Result<Self> {
        let g = Self::input_and_weight(op, x, w, stride)?;
        if dy.shape != g.out_shape() {
            return Err(Error::shape(
                op,
                format!(
                    "output gradient {:?} does not fit input {:?}",
                    dy.shape, x.shape
                ),
            ));
        }
        Ok(g)
    }
}
