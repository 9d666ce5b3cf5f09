//! `lstm` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn row_forward<E: Executor>(be: &CudaBackend<E>, is: &Tensor<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, rec: Recurrence) -> Result<LstmState<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: lstm::row_forward is not written yet".into()))
}

pub fn row_backward<E: Executor>(be: &CudaBackend<E>, state: &LstmState<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, dh: &Tensor<CudaBackend<E>>, rec: Recurrence) -> Result<(Tensor<CudaBackend<E>>, Tensor<CudaBackend<E>>)> {
    Err(Error::Unsupported("CUDA backend: lstm::row_backward is not written yet".into()))
}

pub fn diag_forward<E: Executor>(be: &CudaBackend<E>, is: &Tensor<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, rec: Recurrence) -> Result<LstmState<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: lstm::diag_forward is not written yet".into()))
}

pub fn diag_backward<E: Executor>(be: &CudaBackend<E>, state: &LstmState<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, dh: &Tensor<CudaBackend<E>>, rec: Recurrence) -> Result<(Tensor<CudaBackend<E>>, Tensor<CudaBackend<E>>)> {
    Err(Error::Unsupported("CUDA backend: lstm::diag_backward is not written yet".into()))
}
