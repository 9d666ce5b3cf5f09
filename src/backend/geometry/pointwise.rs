//! The operands of the elementwise ops with more than one tensor (`relu_backward`, `add`, the
//! optimizer updates, `diag_bilstm_combine`): tensors of one shape.

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::{same_shape, Tensor};

/// Fails unless every tensor of `others` has the shape of `first`; returns its element count.
pub fn same_shapes<B: Backend>(
    op: &'static str,
    first: &Tensor<B>,
    others: &[&Tensor<B>],
) -> Result<usize> {
    for t in others {
        same_shape(op, first, t)?;
    }
    Ok(first.numel())
}

/// `diag_bilstm_combine`: two NHWC maps `left`, `right` of one shape; returns its dimensions.
pub fn map_pair<B: Backend>(
    op: &'static str,
    left: &Tensor<B>,
    right: &Tensor<B>,
) -> Result<[usize; 4]> {
    let dims = left.nhwc(op)?;
    same_shape(op, left, right)?;
    Ok(dims)
}
