//! `reduce` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn sum<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<f64> {
    Err(Error::Unsupported("CUDA backend: reduce::sum is not written yet".into()))
}

pub fn sum_squares<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<f64> {
    Err(Error::Unsupported("CUDA backend: reduce::sum_squares is not written yet".into()))
}
