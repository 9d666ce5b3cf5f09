//! The operands of the masked convolution ops: `masked_conv2d_forward` / `_backward` (input,
//! weight, bias or output gradient), `masked_conv2d_pack` (the weight) and
//! `masked_conv2d_forward_at` (input, packed weight, bias, position). Each op's one check
//! returns a [`ConvGeom`] (or a [`PackGeom`]).

use super::position::position_in;
use crate::backend::{Backend, ConvSpec};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sizes of one convolution call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Input features.
    pub cin: usize,
    /// Output features.
    pub cout: usize,
}

impl ConvGeom {
    /// `n * h * w`: output (and input) positions.
    pub fn positions(&self) -> usize {
        self.n * self.h * self.w
    }

    /// FLOPs of one pass (forward, input gradient or weight gradient: the same multiply-adds)
    /// under `spec`: 2 per multiply-add over the live taps with full channel counts, as
    /// `bench::step_flops` counts them (the centre tap's channel-group rule is ignored).
    pub fn pass_flops(&self, spec: &crate::backend::ConvSpec) -> u64 {
        2 * (self.positions() * spec.taps().len() * self.cin * self.cout) as u64
    }

    /// `[n, h, w, cout]`: the output (stride 1, "same" padding).
    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.cout]
    }

    /// `x` `[n, h, w, cin]` under weight `w` `[cout, cin, kh, kw]` of `spec`'s kernel.
    fn input_and_weight<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        spec: &ConvSpec,
    ) -> Result<Self> {
        spec.validate()?;
        let [n, h, wd, cin] = x.nhwc(op)?;
        match w.shape.as_slice() {
            &[cout, wcin, kh, kw] if wcin == cin && kh == spec.kh && kw == spec.kw => {
                Ok(ConvGeom {
                    n,
                    h,
                    w: wd,
                    cin,
                    cout,
                })
            }
            s => Err(Error::shape(
                op,
                format!(
                    "weight {s:?} does not fit input {:?} and a {}x{} kernel",
                    x.shape, spec.kh, spec.kw
                ),
            )),
        }
    }

    /// `masked_conv2d_forward`: input, weight and bias `b` `[cout]`.
    pub fn forward<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        b: &Tensor<B>,
        spec: &ConvSpec,
    ) -> Result<Self> {
        let g = Self::input_and_weight(op, x, w, spec)?;
        bias_of(op, b, g.cout)?;
        Ok(g)
    }

    /// `masked_conv2d_backward`: input, weight and the output gradient `dy` `[n, h, w, cout]`.
    pub fn backward<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        w: &Tensor<B>,
        dy: &Tensor<B>,
        spec: &ConvSpec,
    ) -> Result<Self> {
        let g = Self::input_and_weight(op, x, w, spec)?;
        if dy.shape != g.out_shape() {
            return Err(Error::shape(
                op,
                format!("output gradient {:?} does not match the output", dy.shape),
            ));
        }
        Ok(g)
    }

    /// `masked_conv2d_forward_at`: `(i, j)` inside the input `x` `[n, h, w, cin]`, bias `b`
    /// `[cout]` and the weight `packed` by `masked_conv2d_pack`, `[taps * cin, cout]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_at<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        packed: &Tensor<B>,
        b: &Tensor<B>,
        spec: &ConvSpec,
        i: usize,
        j: usize,
    ) -> Result<Self> {
        spec.validate()?;
        let [n, h, w, cin] = x.nhwc(op)?;
        position_in(op, h, w, i, j)?;
        let cout = b.numel();
        if b.shape != [cout] || packed.shape != [spec.taps().len() * cin, cout] {
            return Err(Error::shape(
                op,
                format!(
                    "packed weight {:?} and bias {:?} do not fit input {:?}",
                    packed.shape, b.shape, x.shape
                ),
            ));
        }
        Ok(ConvGeom { n, h, w, cin, cout })
    }
}

/// Fails unless the bias `b` is `[cout]` (the convolutions, the transposed one too).
pub(super) fn bias_of<B: Backend>(op: &'static str, b: &Tensor<B>, cout: usize) -> Result<()> {
    if b.shape == [cout] {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("bias {:?} should be [{cout}]", b.shape),
        ))
    }
}

/// Sizes of `masked_conv2d_pack`: weight `[cout, cin, kh, kw]` packed into
/// `[taps * cin, cout]` over `spec`'s live taps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackGeom {
    /// Input features.
    pub cin: usize,
    /// Output features.
    pub cout: usize,
    /// Live taps of the spec.
    pub taps: usize,
}

impl PackGeom {
    /// Checks the weight `w` against `spec`'s kernel.
    pub fn new<B: Backend>(op: &'static str, w: &Tensor<B>, spec: &ConvSpec) -> Result<Self> {
        spec.validate()?;
        match w.shape.as_slice() {
            &[cout, cin, kh, kw] if kh == spec.kh && kw == spec.kw => Ok(PackGeom {
                cin,
                cout,
                taps: spec.taps().len(),
            }),
            s => Err(Error::shape(
                op,
                format!("weight {s:?} is not [cout, cin, {}, {}]", spec.kh, spec.kw),
            )),
        }
    }

    /// `[taps * cin, cout]`: the packed weight.
    pub fn packed_shape(&self) -> [usize; 2] {
        [self.taps * self.cin, self.cout]
    }
}
