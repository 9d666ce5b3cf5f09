//! `masked_conv2d_at` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn pack<E: Executor>(be: &CudaBackend<E>, w: &Tensor<CudaBackend<E>>, spec: &ConvSpec) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: masked_conv2d_at::pack is not written yet".into()))
}

pub fn forward_at<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>, packed: &Tensor<CudaBackend<E>>, b: &Tensor<CudaBackend<E>>, spec: &ConvSpec, i: usize, j: usize) -> Result<Tensor<CudaBackend<E>>> {
    Err(Error::Unsupported("CUDA backend: masked_conv2d_at::forward_at is not written yet".into()))
}
