//! Collective operations for data-parallel training: all-reduce of gradients and metrics,
//! broadcast of the initial weights.
//!
//! [`Collective`] is the one interface the training loop uses; [`LocalGroup`] implements it
//! for ranks that are threads of one process (the CPU `--workers N` path, and the reference
//! semantics every other implementation must match). Every rank sums the contributions in
//! rank order, so all ranks hold bit-identical results and stay in lockstep without ever
//! exchanging weights again.

use std::sync::{Arc, Condvar, Mutex};

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
    /// Replaces `values` on every rank by the elementwise sum over all ranks (metrics).
    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Gives up on the group because this rank stopped early: other ranks' pending and later
    /// calls fail instead of waiting for this rank forever (where the implementation can).
    fn abort(&self) {}
}

/// Ranks that are threads of this process, exchanging through shared host memory.
pub struct LocalGroup;

impl LocalGroup {
    /// The `n` ranks of a new group; hand one to each worker thread.
    pub fn ranks(n: usize) -> Result<Vec<LocalCollective>> {
        if n == 0 {
            return Err(Error::Config(
                "a collective group needs at least one rank".into(),
            ));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                slots: vec![None; n],
                arrived: 0,
                departed: 0,
                result: None,
                failed: false,
            }),
            changed: Condvar::new(),
        });
        Ok((0..n)
            .map(|rank| LocalCollective {
                rank,
                size: n,
                shared: Arc::clone(&shared),
            })
            .collect())
    }
}

/// One rank of a [`LocalGroup`].
pub struct LocalCollective {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    /// Each rank's contribution to the operation in progress.
    slots: Vec<Option<Vec<f64>>>,
    arrived: usize,
    departed: usize,
    /// The combined result of the operation in progress, once every rank has arrived (or why
    /// it failed: every rank then returns the error instead of waiting forever).
    result: Option<Arc<std::result::Result<Vec<f64>, String>>>,
    /// A rank gave up ([`LocalCollective::abort`]): every pending and later call fails.
    failed: bool,
}

/// How the contributions of all ranks combine.
#[derive(Clone, Copy)]
enum Combine {
    Sum,
    Take(usize),
}

impl LocalCollective {
    /// Marks the group as failed: every rank waiting in (or later entering) a collective
    /// returns an error instead of waiting for this rank forever. Call it when this rank
    /// stops early.
    pub fn fail_group(&self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.failed = true;
        }
        self.shared.changed.notify_all();
    }

    /// Contributes `mine` and returns the combination of every rank's contribution.
    fn exchange(
        &self,
        mine: Vec<f64>,
        combine: Combine,
    ) -> Result<Arc<std::result::Result<Vec<f64>, String>>> {
        let poisoned = |_| Error::Config("a worker of the collective group panicked".into());
        let aborted = || Error::Config("another worker of the collective group failed".into());
        let mut st = self.shared.state.lock().map_err(poisoned)?;
        // Wait until the previous operation has been collected by every rank.
        while st.result.is_some() && !st.failed {
            st = self.shared.changed.wait(st).map_err(poisoned)?;
        }
        if st.failed {
            return Err(aborted());
        }
        let len = mine.len();
        st.slots[self.rank] = Some(mine);
        st.arrived += 1;
        if st.arrived == self.size {
            let slots: Vec<Vec<f64>> = st
                .slots
                .iter_mut()
                .map(|s| s.take().unwrap_or_default())
                .collect();
            let combined = match slots.iter().position(|s| s.len() != len) {
                Some(bad) => Err(format!(
                    "rank {bad} contributed {} values, rank {} {len}",
                    slots[bad].len(),
                    self.rank
                )),
                // Rank order: every rank gets the very same floating-point sum.
                None => Ok(match combine {
                    Combine::Sum => (0..len).map(|i| slots.iter().map(|s| s[i]).sum()).collect(),
                    Combine::Take(root) => slots[root].clone(),
                }),
            };
            st.result = Some(Arc::new(combined));
            st.arrived = 0;
            self.shared.changed.notify_all();
        } else {
            while st.result.is_none() && !st.failed {
                st = self.shared.changed.wait(st).map_err(poisoned)?;
            }
            if st.failed {
                return Err(aborted());
            }
        }
        let result = st
            .result
            .clone()
            .ok_or_else(|| Error::Config("collective: result missing".into()))?;
        st.departed += 1;
        if st.departed == self.size {
            st.departed = 0;
            st.result = None;
            self.shared.changed.notify_all();
        }
        match result.as_ref() {
            Ok(_) => Ok(result),
            Err(why) => Err(Error::shape("collective", why.clone())),
        }
    }

    fn exchange_tensor<B: Backend>(
        &self,
        backend: &B,
        t: &mut Tensor<B>,
        combine: Combine,
    ) -> Result<()> {
        let mine: Vec<f64> = t.to_vec(backend)?.into_iter().map(f64::from).collect();
        let combined = self.exchange(mine, combine)?;
        let host: Vec<f32> = combined
            .as_ref()
            .as_ref()
            .map_err(|why| Error::shape("collective", why.clone()))?
            .iter()
            .map(|&v| v as f32)
            .collect();
        *t = Tensor::from_slice(backend, &t.shape.clone(), &host)?;
        Ok(())
    }
}

impl<B: Backend> Collective<B> for LocalCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(&self, backend: &B, t: &mut Tensor<B>) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        self.exchange_tensor(backend, t, Combine::Sum)
    }

    fn all_reduce_sum_all(&self, backend: &B, ts: &mut [&mut Tensor<B>]) -> Result<()> {
        if self.size == 1 || ts.is_empty() {
            return Ok(());
        }
        // One exchange for the whole bucket: the tensors concatenated, summed, split back.
        let mut mine = Vec::new();
        for t in ts.iter() {
            mine.extend(t.to_vec(backend)?.into_iter().map(f64::from));
        }
        let combined = self.exchange(mine, Combine::Sum)?;
        let sums = combined
            .as_ref()
            .as_ref()
            .map_err(|why| Error::shape("collective", why.clone()))?;
        let mut at = 0;
        for t in ts.iter_mut() {
            let n = t.numel();
            let host: Vec<f32> = sums[at..at + n].iter().map(|&v| v as f32).collect();
            **t = Tensor::from_slice(backend, &t.shape.clone(), &host)?;
            at += n;
        }
        Ok(())
    }

    fn broadcast(&self, backend: &B, t: &mut Tensor<B>, root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::Config(format!(
                "broadcast from rank {root} in a group of {}",
                self.size
            )));
        }
        if self.size == 1 {
            return Ok(());
        }
        self.exchange_tensor(backend, t, Combine::Take(root))
    }

    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let combined = self.exchange(values.to_vec(), Combine::Sum)?;
        if let Ok(sums) = combined.as_ref() {
            values.copy_from_slice(sums);
        }
        Ok(())
    }

    fn abort(&self) {
        self.fail_group();
    }
}
