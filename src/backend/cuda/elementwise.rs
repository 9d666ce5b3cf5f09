//! `elementwise` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn relu_forward<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: elementwise::relu_forward is not written yet".into()))
}

pub fn relu_backward<E: Executor>(be: &CudaBackend<E>, y: &Tensor<CudaBackend<E>>, dy: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: elementwise::relu_backward is not written yet".into()))
}

pub fn add<E: Executor>(be: &CudaBackend<E>, a: &Tensor<CudaBackend<E>>, b: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: elementwise::add is not written yet".into()))
}

pub fn scale_inplace<E: Executor>(be: &CudaBackend<E>, x: &mut Tensor<CudaBackend<E>>, s: f32) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: elementwise::scale_inplace is not written yet".into()))
}
