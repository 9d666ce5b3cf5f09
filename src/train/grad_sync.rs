//! The gradient all-reduce of one data-parallel step, overlapped with the backward pass.
//!
//! The backward visits the layers from the head down to the input. Once a layer's backward
//! has returned, nothing later in the step writes its parameters' gradients again, so their
//! all-reduce can start at once and run while the layers below compute (NCCL on its own
//! stream, [`crate::collective::LocalGroup`] on a helper thread). Every rank runs the same
//! backward, so every rank starts the same buckets in the same order, as the collectives
//! require.

use std::collections::{HashMap, HashSet};

use crate::backend::Backend;
use crate::collective::{split_into, Collective, Started};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::tensor::Tensor;

/// The buckets of gradients started during one backward pass (one bucket per layer, in the
/// order the backward finishes them), to be completed by [`GradSync::finish`].
pub struct GradSync<'a, B: Backend> {
    backend: &'a B,
    collective: &'a dyn Collective<B>,
    buckets: Vec<(Vec<String>, Started)>,
    started: HashSet<String>,
    finished: bool,
}

impl<'a, B: Backend> GradSync<'a, B> {
    /// A step's gradient all-reduce over `collective`, on `backend`.
    pub fn new(backend: &'a B, collective: &'a dyn Collective<B>) -> Self {
        GradSync {
            backend,
            collective,
            buckets: Vec::new(),
            started: HashSet::new(),
            finished: false,
        }
    }

    /// Buckets started so far.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Starts the all-reduce of `params`' gradients, which the backward will not write again
    /// in this step (the model calls this after each layer's backward). The gradients must
    /// not be touched until [`GradSync::finish`].
    pub fn submit(&mut self, params: Vec<&mut Param<B>>) -> Result<()> {
        if params.is_empty() {
            return Ok(());
        }
        let mut names = Vec::with_capacity(params.len());
        for p in &params {
            if !self.started.insert(p.name.clone()) {
                return Err(Error::Config(format!(
                    "the gradient of {} was all-reduced twice in one step",
                    p.name
                )));
            }
            names.push(p.name.clone());
        }
        let mut params = params;
        let mut grads: Vec<&mut Tensor<B>> = params.iter_mut().map(|p| &mut p.grad).collect();
        let started = self
            .collective
            .start_all_reduce_sum_all(self.backend, &mut grads)?;
        self.buckets.push((names, started));
        Ok(())
    }

    /// Completes the step's all-reduce over `params` (every parameter of the model): waits for
    /// the started buckets, writes back the sums that came from a helper thread, then sums the
    /// gradients the backward never handed over (a stage a multi-scale step did not train) as
    /// one last bucket. Afterwards every gradient holds the sum over all ranks.
    pub fn finish(mut self, params: Vec<&mut Param<B>>) -> Result<()> {
        self.finished = true;
        let mut by_name: HashMap<String, &mut Param<B>> =
            params.into_iter().map(|p| (p.name.clone(), p)).collect();
        for (names, started) in std::mem::take(&mut self.buckets) {
            let Started::Host(sums) = started else {
                continue;
            };
            let sums = sums
                .recv()
                .map_err(|_| Error::Config("a collective helper thread stopped".into()))??;
            let mut grads = Vec::with_capacity(names.len());
            for name in &names {
                let p = by_name.remove(name).ok_or_else(|| {
                    Error::Config(format!("all-reduced gradient {name} is not a parameter"))
                })?;
                grads.push(p);
            }
            let mut tensors: Vec<&mut Tensor<B>> = grads.iter_mut().map(|p| &mut p.grad).collect();
            split_into(self.backend, &sums, &mut tensors)?;
        }
        self.collective.wait_started(self.backend)?;
        // The rest, in a fixed order (the names: the map's order is not).
        let mut rest: Vec<(String, &mut Param<B>)> = by_name
            .into_iter()
            .filter(|(name, _)| !self.started.contains(name))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        let mut grads: Vec<&mut Tensor<B>> = rest.iter_mut().map(|(_, p)| &mut p.grad).collect();
        self.collective.all_reduce_sum_all(self.backend, &mut grads)
    }
}

impl<B: Backend> Drop for GradSync<'_, B> {
    /// A step that failed half-way still waits for what it started: the device may not reuse
    /// the gradients' memory while a collective writes it.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.collective.wait_started(self.backend);
        }
    }
}
