//! `bernoulli_nll` on CUDA: host side (shapes, launch configuration, version, launch).
//! INTERIM: not written yet; every function fails with a clear error.
#![allow(unused_variables)]

use super::{CudaBackend, Executor};
#[allow(unused_imports)]
use crate::backend::{AdamStep, ConvGrads, ConvSpec, LstmState, Recurrence, RmsPropStep};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

pub fn bernoulli_nll<E: Executor>(be: &CudaBackend<E>, logits: &Tensor<CudaBackend<E>>, targets: &Tensor<CudaBackend<E>>, grad_scale: f32) -> Result<(Tensor<CudaBackend<E>>, Tensor<CudaBackend<E>>)> {
    Err(Error::Unsupported("CUDA backend: bernoulli_nll::bernoulli_nll is not written yet".into()))
}
