//! The operands of the elementwise ops with more than one tensor (`relu_backward`, `add`, the
//! optimizer updates, `diag_bilstm_combine`): tensors of one shape; and the lists of the
//! multi-tensor optimizer updates: one tensor of each kind per parameter.

use crate::backend::Backend;
use crate::error::{Error, Result};
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

/// The lists of a multi-tensor update (`rmsprop_update_all`, `adam_update_all`): every list as
/// long as the parameters', and tensor k of each list of the shape of parameter k.
pub fn parameter_lists<B: Backend>(
    op: &'static str,
    params: &[&mut Tensor<B>],
    lists: &[&[&mut Tensor<B>]],
) -> Result<()> {
    for list in lists {
        if list.len() != params.len() {
            return Err(Error::shape(
                op,
                format!("{} parameters but a list of {}", params.len(), list.len()),
            ));
        }
        for (p, t) in params.iter().zip(list.iter()) {
            same_shape(op, p, t)?;
        }
    }
    Ok(())
}
