//! One optimizer step: the whole batch on one rank, or the batch sharded over the ranks with
//! the gradients summed between backward and update.

use super::ranks::{on_ranks, Ranks};
use super::GradSync;
use crate::backend::Backend;
use crate::data::Images;
use crate::error::Result;
use crate::models::Stages;

impl<B: Backend> Ranks<'_, B> {
    /// Trains every rank on its part of the batch `idx` of `images` and applies the update
    /// (skipped when the loss is not finite; the caller stops on it). Gradients are scaled by
    /// `grad_scale`. Returns the batch's total NLL, summed over the ranks, in nats.
    pub(super) fn step(
        &mut self,
        images: &Images,
        idx: &[usize],
        grad_scale: f32,
        stages: Stages,
    ) -> Result<f64> {
        if self.world > 1 {
            return self.sharded_step(images, idx, grad_scale, stages);
        }
        // One rank in all: the whole batch, no collective.
        let backend = &self.backends[0];
        let b = self
            .model
            .train_batch(backend, images, idx, grad_scale, stages)?;
        if b.total.is_finite() {
            self.optimizer.step(backend, self.model.params_mut())?;
        }
        Ok(b.total)
    }

    /// Each rank trains on its shard, its gradients all-reduced layer by layer during the
    /// backward; every rank then applies the same update.
    fn sharded_step(
        &mut self,
        images: &Images,
        idx: &[usize],
        grad_scale: f32,
        stages: Stages,
    ) -> Result<f64> {
        // Shards by global rank: the same split whatever the ranks' processes.
        let shards = shard(idx, self.world);
        let mut ranks = vec![(&mut self.model, &mut self.optimizer)];
        ranks.extend(self.replicas.iter_mut().map(|(m, o)| (m, o)));
        let mine = self.group.iter().map(|c| shards[c.rank()]);
        let jobs: Vec<_> = ranks.into_iter().zip(mine).collect();
        on_ranks(
            jobs,
            self.backends,
            self.group,
            |((m, opt), shard), be, c| {
                // Each layer's gradients start their all-reduce as soon as its backward is
                // done, while the layers below it are still computing.
                let mut sync = GradSync::new(be, c);
                let b = m.train_batch_with(be, images, shard, grad_scale, stages, &mut |ps| {
                    sync.submit(ps)
                })?;
                sync.finish(m.params_mut())?;
                let mut total = [b.total];
                c.all_reduce_f64(&mut total)?;
                if total[0].is_finite() {
                    opt.step(be, m.params_mut())?;
                }
                Ok(total[0])
            },
        )
    }
}

/// `idx` cut into `n` contiguous shards whose sizes differ by at most one.
fn shard(idx: &[usize], n: usize) -> Vec<&[usize]> {
    let (base, extra) = (idx.len() / n, idx.len() % n);
    let mut rest = idx;
    (0..n)
        .map(|r| {
            let (head, tail) = rest.split_at(base + usize::from(r < extra));
            rest = tail;
            head
        })
        .collect()
}
