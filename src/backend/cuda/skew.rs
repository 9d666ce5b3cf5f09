//! `skew` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn skew<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: skew::skew is not written yet".into()))
}

pub fn unskew<E: Executor>(be: &CudaBackend<E>, s: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: skew::unskew is not written yet".into()))
}
