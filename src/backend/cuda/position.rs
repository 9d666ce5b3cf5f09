//! `position` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn read_position<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>, i: usize, j: usize) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: position::read_position is not written yet".into()))
}

pub fn write_position<E: Executor>(be: &CudaBackend<E>, x: &mut Tensor<CudaBackend<E>>, i: usize, j: usize, v: &Tensor<CudaBackend<E>>) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: position::write_position is not written yet".into()))
}
