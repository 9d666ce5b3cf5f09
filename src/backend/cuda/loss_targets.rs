//! `loss_targets` on CUDA: host side of `kernels/loss_targets.cu` (CPU twin:
//! `cpu/loss_targets.rs`), the check of a loss's targets.
//!
//! The contract, one message on both backends: `softmax_nll` (targets integers in 0..=255) and
//! `bernoulli_nll` (targets 0 or 1) with an invalid target give the error
//! [`Targets::invalid`], the same message as the CPU backend, and no loss total. The loss
//! kernels are left as they compute (softmax_nll gives NaN for an invalid target,
//! bernoulli_nll a finite but meaningless value), so the check is a separate kernel.
//!
//! When the error comes: at this thread's next host synchronisation on the backend, not at the
//! loss call. The loss kernels are launched and the check is left pending ([`start`]); the
//! loss's `sum` (the one download a training step makes for its loss, `models/objective.rs`)
//! carries the check's flag in the same download (`reduce_finish_checked`, [`take`]) and
//! returns the error; any other download or `synchronize` first reads the flag on its own
//! ([`resolve`]), and so does a second loss launched while one is pending. So an invalid target
//! always fails the first result that reads anything back, with the CPU's message, and a
//! training step spends one host synchronisation on its loss instead of two (issue 17: at most
//! 2 per step, the other being the gradient norm).
//!
//! Why this design is the cheapest correct one:
//! - The targets are on the device; checking them on the host would download all `n * c` of
//!   them every step. Here the device reads them once more (4 bytes per target: 1/256 of the
//!   logits softmax_nll reads, a quarter of bernoulli_nll's traffic) and the host reads one
//!   word, a flag set by any thread that finds an invalid target, inside a download it makes
//!   anyway.
//! - Looking at the loss instead (a non-finite sum) cannot tell an invalid target from NaN
//!   logits, and does not see bernoulli_nll's invalid targets at all.
//! - Pending checks are kept per thread: the ranks of data-parallel training share nothing, so
//!   one rank's sum never reads (or clears) another's flag.

use std::collections::hash_map::Entry;
use std::thread::{self, ThreadId};

use super::launch_args::{grid_stride, index};
use super::{Arg, CudaBackend, Executor};
use crate::backend::geometry::Targets;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One thread's target check: a one-word flag buffer of its own (reused by every loss of the
/// thread) and the loss whose check is launched and not yet read, if any.
pub(super) struct ThreadCheck<E: Executor> {
    flag: E::Buffer,
    pending: Option<(&'static str, Targets)>,
}

/// A pending check taken for one download ([`take`]): the loss and its flag's buffer, still
/// held in the backend's table (the guard keeps it locked until the download is launched).
pub(super) struct Taken<'a, E: Executor> {
    guard: std::sync::MutexGuard<'a, std::collections::HashMap<ThreadId, ThreadCheck<E>>>,
    id: ThreadId,
    /// The loss whose flag the download carries.
    pub loss: (&'static str, Targets),
}

impl<E: Executor> Taken<'_, E> {
    /// The flag's buffer, for `reduce_finish_checked`'s argument.
    pub fn flag(&self) -> &E::Buffer {
        &self.guard[&self.id].flag
    }
}

/// Resolves this thread's pending check, if any, then clears the flag and launches
/// `loss_targets_check_v<N>` over `targets` (of loss `op`, whose targets are of `kind`), and
/// leaves it pending.
pub(super) fn start<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    targets: &Tensor<CudaBackend<E>>,
    kind: Targets,
) -> Result<()> {
    let n = targets.numel();
    if n == 0 {
        return Ok(());
    }
    resolve(be)?;
    let exec = be.executor();
    let mut checks = be.target_checks();
    let id = thread::current().id();
    let check = match checks.entry(id) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(ThreadCheck {
            flag: exec.alloc(1)?,
            pending: None,
        }),
    };
    exec.memset_zero(&mut check.flag, 1)?;
    be.launch(
        &be.kernel_name("loss_targets", "check"),
        &grid_stride(n),
        &[
            super::arg(targets),
            Arg::Buf(&check.flag),
            Arg::I64(index(op, n)?),
            Arg::F32(kind.max()),
        ],
    )?;
    check.pending = Some((op, kind));
    Ok(())
}

/// This thread's pending check, taken for a download that carries its flag; `None` if there is
/// none.
pub(super) fn take<E: Executor>(be: &CudaBackend<E>) -> Option<Taken<'_, E>> {
    let mut guard = be.target_checks();
    let id = thread::current().id();
    let loss = guard.get_mut(&id)?.pending.take()?;
    Some(Taken { guard, id, loss })
}

/// The verdict of a flag word read back: the error [`Targets::invalid`] if it is set.
pub(super) fn verdict(loss: (&'static str, Targets), flag: f32) -> Result<()> {
    if flag == 0.0 {
        Ok(())
    } else {
        Err(loss.1.invalid(loss.0))
    }
}

/// Reads this thread's pending check on its own (one download of its flag), if there is one:
/// the error of an invalid target, before whatever else the caller was about to read.
pub(super) fn resolve<E: Executor>(be: &CudaBackend<E>) -> Result<()> {
    let Some(taken) = take(be) else {
        return Ok(());
    };
    be.count_sync();
    let words = be.executor().download(taken.flag(), 1)?;
    let loss = taken.loss;
    drop(taken);
    match words.as_slice() {
        &[flag] => verdict(loss, flag),
        w => Err(Error::Device(format!(
            "{}: expected 1 word for the target check, got {}",
            loss.0,
            w.len()
        ))),
    }
}
