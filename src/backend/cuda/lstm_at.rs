//! `lstm_at` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn row_forward_at<E: Executor>(be: &CudaBackend<E>, is: &Tensor<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, h: &mut Tensor<CudaBackend<E>>, c: &mut Tensor<CudaBackend<E>>, i: usize, j: usize) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: lstm_at::row_forward_at is not written yet".into()))
}

pub fn diag_forward_at<E: Executor>(be: &CudaBackend<E>, is: &Tensor<CudaBackend<E>>, w_ss: &Tensor<CudaBackend<E>>, h: &mut Tensor<CudaBackend<E>>, c: &mut Tensor<CudaBackend<E>>, i: usize, j: usize) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: lstm_at::diag_forward_at is not written yet".into()))
}
