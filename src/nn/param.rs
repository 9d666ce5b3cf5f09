//! A named trainable tensor and its gradient.

use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

/// A parameter: value and gradient of the same shape, under a checkpoint name such as
/// `layers.3.conv_mid.weight`.
pub struct Param<B: Backend> {
    /// Checkpoint name.
    pub name: String,
    /// Current value.
    pub value: Tensor<B>,
    /// Gradient of the last backward pass.
    pub grad: Tensor<B>,
}

impl<B: Backend> Param<B> {
    /// A parameter with initial host values `init` of `shape`.
    pub fn new(backend: &B, name: String, shape: &[usize], init: &[f32]) -> Result<Self> {
        Ok(Param {
            name,
            value: Tensor::from_slice(backend, shape, init)?,
            grad: Tensor::zeros(backend, shape)?,
        })
    }
}
