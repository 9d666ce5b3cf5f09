//! The operands of `gated_forward` / `gated_backward`: a pre-activation `[.., 2F]` (filter
//! block then gate block at every position) and, for the backward, the output gradient
//! `[.., F]`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sizes of one gated activation: `rows` positions of `features` (F) outputs each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatedGeom {
    /// Positions (every dimension but the last, multiplied).
    pub rows: usize,
    /// F: outputs per position; the pre-activation has `2F`.
    pub features: usize,
}

impl GatedGeom {
    /// Output elements, `rows * F`.
    pub fn outputs(&self) -> usize {
        self.rows * self.features
    }

    /// The output shape: `pre`'s with the last dimension halved.
    pub fn out_shape<B: Backend>(&self, pre: &Tensor<B>) -> Vec<usize> {
        let mut s = pre.shape.clone();
        if let Some(last) = s.last_mut() {
            *last = self.features;
        }
        s
    }

    /// `gated_forward`: `pre` has at least one dimension and an even, positive last one.
    pub fn forward<B: Backend>(op: &'static str, pre: &Tensor<B>) -> Result<Self> {
        match pre.shape.last() {
            Some(&f2) if f2 > 0 && f2.is_multiple_of(2) => Ok(GatedGeom {
                rows: pre.numel() / f2,
                features: f2 / 2,
            }),
            _ => Err(Error::shape(
                op,
                format!(
                    "pre-activation {:?} should end in an even number (2F) of features: the filter block, then the gate block",
                    pre.shape
                ),
            )),
        }
    }

    /// `gated_backward`: `pre` as for the forward and `dy` of the output's shape.
    pub fn backward<B: Backend>(op: &'static str, pre: &Tensor<B>, dy: &Tensor<B>) -> Result<Self> {
        let g = Self::forward(op, pre)?;
        if dy.shape != g.out_shape(pre) {
            return Err(Error::shape(
                op,
                format!(
                    "output gradient {:?} does not match the output {:?} of pre-activation {:?}",
                    dy.shape,
                    g.out_shape(pre),
                    pre.shape
                ),
            ));
        }
        Ok(g)
    }
}
