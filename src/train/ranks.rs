//! This process's data-parallel ranks, and how one job runs on all of them at once: one thread
//! per rank, with that rank's backend and collective.

use crate::backend::Backend;
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::optim::Optimizer;

/// The ranks of this process: each one's backend, collective, model and optimizer. Rank 0's
/// model (this process's first rank) is the one evaluated and saved.
pub(super) struct Ranks<'a, B: Backend> {
    /// Local rank i computes on `backends[i]`.
    pub(super) backends: &'a [B],
    /// Local rank i's collective; `group[0]` may be global rank 0 (this process writes the run
    /// folder) or another process's rank.
    pub(super) group: &'a [&'a dyn Collective<B>],
    /// Ranks in the whole group (every process).
    pub(super) world: usize,
    /// Local rank 0's model.
    pub(super) model: Model<B>,
    /// Local rank 0's optimizer.
    pub(super) optimizer: Optimizer<B>,
    /// Local ranks 1..: replicas made exactly like rank 0's model and kept in lockstep with it.
    pub(super) replicas: Vec<(Model<B>, Optimizer<B>)>,
}

/// Runs `job` once per rank, each on its own thread with its rank's backend and collective,
/// and returns rank 0's result (or the first error). A rank that fails aborts the group, so
/// the others leave their pending collective instead of waiting for it forever.
pub(super) fn on_ranks<B: Backend, T: Send, F>(
    jobs: Vec<T>,
    backends: &[B],
    group: &[&dyn Collective<B>],
    job: F,
) -> Result<f64>
where
    F: Fn(T, &B, &dyn Collective<B>) -> Result<f64> + Sync,
{
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .zip(backends.iter().zip(group))
            .map(|(j, (be, &c))| {
                let job = &job;
                s.spawn(move || {
                    struct AbortOnUnwind<'a, B: Backend>(&'a dyn Collective<B>, bool);
                    impl<B: Backend> Drop for AbortOnUnwind<'_, B> {
                        fn drop(&mut self) {
                            if !self.1 {
                                self.0.abort();
                            }
                        }
                    }
                    let mut guard = AbortOnUnwind(c, false);
                    let r = job(j, be, c);
                    guard.1 = r.is_ok();
                    r
                })
            })
            .collect();
        let results: Vec<Result<f64>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Config("a training worker panicked".into())))
            })
            .collect();
        root_cause(results)
    })
}

/// Rank 0's result, or the error that stopped the group: the root cause, not the "another
/// worker failed" of the ranks it stopped.
fn root_cause(results: Vec<Result<f64>>) -> Result<f64> {
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let root_cause = errors
        .iter()
        .find(|e| !e.contains("another worker"))
        .or(errors.first());
    match root_cause {
        Some(why) => Err(Error::Config(format!("data-parallel step: {why}"))),
        None => results
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(Error::Config("no workers".into()))),
    }
}
