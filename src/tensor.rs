//! A tensor is a backend buffer of `f32` plus a shape.
//!
//! Activations are NHWC: `[batch, height, width, features]`, features innermost. Every
//! convolution in these models is then a GEMM over rows of `features`, 1x1 convolutions need no
//! gather at all, and the row and diagonal recurrences read contiguous per-pixel vectors.
//! Weights are `[out, in, kh, kw]` (PyTorch layout), biases `[out]`.

use crate::backend::Backend;
use crate::error::{Error, Result};

/// An owned tensor living on backend `B`.
pub struct Tensor<B: Backend> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The backend's buffer of `shape.iter().product()` elements.
    pub data: B::Storage,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}

impl<B: Backend> Tensor<B> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// A zero tensor of `shape` on `backend`.
    pub fn zeros(backend: &B, shape: &[usize]) -> Result<Self> {
        Ok(Tensor {
            shape: shape.to_vec(),
            data: backend.alloc_zeros(shape.iter().product())?,
        })
    }

    /// Copies host data to the backend; `data.len()` must match `shape`.
    pub fn from_slice(backend: &B, shape: &[usize], data: &[f32]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(
                "Tensor::from_slice",
                format!("shape {shape:?} needs {n} values, got {}", data.len()),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            data: backend.upload(data)?,
        })
    }

    /// Copies the tensor to the host.
    pub fn to_vec(&self, backend: &B) -> Result<Vec<f32>> {
        backend.download(&self.data)
    }

    /// The four dimensions of an NHWC activation, or a shape error naming `op`.
    pub fn nhwc(&self, op: &'static str) -> Result<[usize; 4]> {
        match self.shape.as_slice() {
            &[n, h, w, c] => Ok([n, h, w, c]),
            s => Err(Error::shape(
                op,
                format!("expected an NHWC tensor, got {s:?}"),
            )),
        }
    }

    /// Same data, new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(Error::shape(
                "Tensor::reshape",
                format!("cannot view {:?} as {shape:?}", self.shape),
            ));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }
}

/// Fails with a shape error unless `a` and `b` have the same shape.
pub fn same_shape<B: Backend>(op: &'static str, a: &Tensor<B>, b: &Tensor<B>) -> Result<()> {
    if a.shape == b.shape {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("shapes differ: {:?} vs {:?}", a.shape, b.shape),
        ))
    }
}
