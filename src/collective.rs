//! Collective operations for data-parallel training: all-reduce of gradients and metrics,
//! broadcast of the initial weights.
//!
//! [`Collective`] is the one interface the training loop uses. Two implementations:
//! [`LocalGroup`] (`local.rs`) for ranks that are threads of one process (the CPU
//! `--workers N` path, and the reference semantics every other implementation must match),
//! and [`NcclCollective`] (`nccl.rs`) across CUDA devices. Every rank sums the contributions
//! in rank order, so all ranks hold bit-identical results and stay in lockstep without ever
//! exchanging weights again.
//!
//! A started bucket all-reduce ([`Collective::start_all_reduce_sum_all`]) lets the training
//! step overlap the gradient all-reduce with the backward pass ([`crate::train::GradSync`]).

mod local;
mod nccl;

use std::sync::mpsc;

pub use local::{LocalCollective, LocalGroup};
pub use nccl::{nccl_available, NcclCollective};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Collective communication among `world_size` ranks.
///
/// Every rank must call the same operations in the same order with tensors of the same shape;
/// each call returns once every rank has contributed.
pub trait Collective<B: Backend>: Send + Sync {
    /// This rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Replaces `t` on every rank by the elementwise sum over all ranks.
    fn all_reduce_sum(&self, backend: &B, t: &mut Tensor<B>) -> Result<()>;
    /// Replaces `t` on every rank by `root`'s `t`.
    fn broadcast(&self, backend: &B, t: &mut Tensor<B>, root: usize) -> Result<()>;
    /// [`Collective::all_reduce_sum`] of every tensor of `ts`, as one bucket: one exchange
    /// (in-process) or one fused NCCL group call instead of one collective per tensor. Every
    /// rank must pass tensors of the same shapes in the same order.
    fn all_reduce_sum_all(&self, backend: &B, ts: &mut [&mut Tensor<B>]) -> Result<()> {
        for t in ts.iter_mut() {
            self.all_reduce_sum(backend, t)?;
        }
        Ok(())
    }
    /// Starts [`Collective::all_reduce_sum_all`] of a bucket and returns before it is done
    /// where the implementation can, so that the caller's next work (the backward of the layers
    /// below) runs meanwhile: NCCL enqueues it on its own stream, [`LocalGroup`] hands it to a
    /// helper thread. The sums are ready once [`Collective::wait_started`] has returned (and,
    /// for [`Started::Host`], written back by the caller; [`crate::train::GradSync`] does
    /// both). Until then the caller must neither read nor write `ts`, nor make any other
    /// collective call. Every rank must start the same buckets in the same order. The default
    /// runs the all-reduce at once.
    fn start_all_reduce_sum_all(&self, backend: &B, ts: &mut [&mut Tensor<B>]) -> Result<Started> {
        self.all_reduce_sum_all(backend, ts)?;
        Ok(Started::InPlace)
    }
    /// Waits for every all-reduce this rank started: afterwards the in-place results may be
    /// used by `backend`'s later work.
    fn wait_started(&self, backend: &B) -> Result<()> {
        let _ = backend;
        Ok(())
    }
    /// Replaces `values` on every rank by the elementwise sum over all ranks (metrics).
    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Gives up on the group because this rank stopped early: other ranks' pending and later
    /// calls fail instead of waiting for this rank forever (where the implementation can).
    fn abort(&self) {}
}

/// How a bucket all-reduce started by [`Collective::start_all_reduce_sum_all`] delivers its
/// sums.
pub enum Started {
    /// In the bucket's tensors themselves, once [`Collective::wait_started`] has returned.
    InPlace,
    /// From a helper thread: the sums of the bucket's tensors, concatenated in bucket order, to
    /// be written back into them.
    Host(mpsc::Receiver<Result<Vec<f32>>>),
}

/// Writes `sums` (the bucket's tensors concatenated) back into `ts`.
pub(crate) fn split_into<B: Backend>(
    backend: &B,
    sums: &[f32],
    ts: &mut [&mut Tensor<B>],
) -> Result<()> {
    let total: usize = ts.iter().map(|t| t.numel()).sum();
    if total != sums.len() {
        return Err(Error::shape(
            "collective",
            format!("{} sums for a bucket of {total} values", sums.len()),
        ));
    }
    let mut at = 0;
    for t in ts.iter_mut() {
        let n = t.numel();
        **t = Tensor::from_slice(backend, &t.shape.clone(), &sums[at..at + n])?;
        at += n;
    }
    Ok(())
}
