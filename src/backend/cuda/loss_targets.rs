//! `loss_targets` on CUDA: host side of `kernels/loss_targets.cu` (CPU twin:
//! `cpu/loss_targets.rs`), the check of a loss's targets.
//!
//! The contract, one behaviour on both backends: `softmax_nll` (targets integers in 0..=255)
//! and `bernoulli_nll` (targets 0 or 1) with an invalid target return the error
//! [`Targets::invalid`], the same message as the CPU backend, and no loss. The loss kernels
//! are left as they compute (softmax_nll gives NaN for an invalid target, bernoulli_nll a
//! finite but meaningless value), so the check is a separate kernel.
//!
//! Why this design is the cheapest correct one:
//! - The targets are on the device; checking them on the host would download all `n * c` of
//!   them every step. Here the device reads them once more (4 bytes per target: 1/256 of the
//!   logits softmax_nll reads, a quarter of bernoulli_nll's traffic) and the host downloads
//!   one word, a flag set by any thread that finds an invalid target.
//! - No new synchronisation in training: the step downloads the loss's sum right after the
//!   loss anyway (`models/objective.rs`), which waits for the same work. The flag's kernel is
//!   launched before the loss kernel and downloaded after it, so the host blocks once, with
//!   both queued.
//! - Looking at the loss instead (a non-finite sum) cannot tell an invalid target from NaN
//!   logits, and does not see bernoulli_nll's invalid targets at all.

use super::launch_args::{grid_stride, index};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::Targets;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The check of one loss call, launched and not yet read back ([`start`], then
/// [`Pending::finish`]).
pub(super) struct Pending<E: Executor> {
    op: &'static str,
    kind: Targets,
    /// One word, 1 when some target is invalid; `None` for no targets.
    flag: Option<Tensor<CudaBackend<E>>>,
}

/// Clears the flag and launches `loss_targets_check_v<N>` over `targets` (of loss `op`, whose
/// targets are of `kind`).
pub(super) fn start<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    targets: &Tensor<CudaBackend<E>>,
    kind: Targets,
) -> Result<Pending<E>> {
    let n = targets.numel();
    let flag = if n > 0 {
        let flag = be.tensor_zeroed(&[1])?;
        be.launch(
            &be.kernel_name("loss_targets", "check"),
            &grid_stride(n),
            &[
                arg(targets),
                arg(&flag),
                Arg::I64(index(op, n)?),
                Arg::F32(kind.max()),
            ],
        )?;
        Some(flag)
    } else {
        None
    };
    Ok(Pending { op, kind, flag })
}

impl<E: Executor> Pending<E> {
    /// Downloads the flag (waiting for the work queued before it): the error
    /// [`Targets::invalid`] if a target was invalid.
    pub(super) fn finish(self, be: &CudaBackend<E>) -> Result<()> {
        let Some(flag) = self.flag else {
            return Ok(());
        };
        match flag.to_vec(be)?.as_slice() {
            [0.0] => Ok(()),
            [_] => Err(self.kind.invalid(self.op)),
            w => Err(Error::Device(format!(
                "{}: expected 1 word for the target check, got {}",
                self.op,
                w.len()
            ))),
        }
    }
}
