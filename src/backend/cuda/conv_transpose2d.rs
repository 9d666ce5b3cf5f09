//! `conv_transpose2d` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn forward<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>, w: &Tensor<CudaBackend<E>>, b: &Tensor<CudaBackend<E>>, stride: usize) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: conv_transpose2d::forward is not written yet".into()))
}

pub fn backward<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>, w: &Tensor<CudaBackend<E>>, dy: &Tensor<CudaBackend<E>>, stride: usize, need_dx: bool) -> Result<ConvGrads<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: conv_transpose2d::backward is not written yet".into()))
}
