//! `mirror_shift` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn mirror_width<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: mirror_shift::mirror_width is not written yet".into()))
}

pub fn shift_down<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: mirror_shift::shift_down is not written yet".into()))
}

pub fn shift_up<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: mirror_shift::shift_up is not written yet".into()))
}
