//! `optim` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn rmsprop_update<E: Executor>(be: &CudaBackend<E>, param: &mut Tensor<CudaBackend<E>>, grad: &Tensor<CudaBackend<E>>, ms: &mut Tensor<CudaBackend<E>>, step: RmsPropStep) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: optim::rmsprop_update is not written yet".into()))
}

pub fn adam_update<E: Executor>(be: &CudaBackend<E>, param: &mut Tensor<CudaBackend<E>>, grad: &Tensor<CudaBackend<E>>, m: &mut Tensor<CudaBackend<E>>, v: &mut Tensor<CudaBackend<E>>, step: AdamStep) -> Result<()> {
    Err(Error::Unsupported("CUDA backend: optim::adam_update is not written yet".into()))
}
