//! [`LocalGroup`]: ranks that are threads of one process, exchanging through shared host
//! memory. Every exchange combines the contributions in rank order, so every rank gets the
//! very same floating-point result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use super::{split_into, Collective, Started};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

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
                member: Member {
                    rank,
                    size: n,
                    shared: Arc::clone(&shared),
                },
                background: Mutex::new(None),
                in_flight: Arc::new(AtomicUsize::new(0)),
            })
            .collect())
    }
}

/// One rank of a [`LocalGroup`].
pub struct LocalCollective {
    member: Member,
    /// The helper thread that runs this rank's started bucket all-reduces in order (spawned on
    /// first use; it ends when this rank is dropped).
    background: Mutex<Option<mpsc::Sender<Job>>>,
    /// Bucket all-reduces handed to the helper thread and not yet exchanged.
    in_flight: Arc<AtomicUsize>,
}

/// A started bucket: this rank's contribution, and where its sums go.
type Job = (Vec<f64>, mpsc::Sender<Result<Vec<f32>>>);

/// What one rank needs to take part in an exchange (shared with its helper thread).
#[derive(Clone)]
struct Member {
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
        if let Ok(mut st) = self.member.shared.state.lock() {
            st.failed = true;
        }
        self.member.shared.changed.notify_all();
    }

    /// Bucket all-reduces this rank started that its helper thread has not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Refuses a blocking collective call while started buckets are still being exchanged:
    /// it would pair with another rank's bucket instead of its own call.
    fn check_idle(&self) -> Result<()> {
        match self.in_flight() {
            0 => Ok(()),
            n => Err(Error::Config(format!(
                "collective call on rank {} while {n} started all-reduce(s) are in flight: wait for them first",
                self.member.rank
            ))),
        }
    }

    /// Hands `mine` to the helper thread (spawned on first use), which exchanges the started
    /// buckets one at a time, in the order they were started.
    fn start(&self, mine: Vec<f64>) -> Result<mpsc::Receiver<Result<Vec<f32>>>> {
        let mut bg = self
            .background
            .lock()
            .map_err(|_| Error::Config("collective helper thread lock poisoned".into()))?;
        let jobs = match bg.as_ref() {
            Some(jobs) => jobs.clone(),
            None => {
                let (tx, rx) = mpsc::channel::<Job>();
                let member = self.member.clone();
                let in_flight = Arc::clone(&self.in_flight);
                std::thread::Builder::new()
                    .name(format!("allreduce-{}", self.member.rank))
                    .spawn(move || {
                        for (mine, reply) in rx {
                            let sums = member.exchange_f32(mine, Combine::Sum);
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            // The receiver is gone only if the step already failed.
                            let _ = reply.send(sums);
                        }
                    })
                    .map_err(|e| Error::Config(format!("cannot start a collective thread: {e}")))?;
                *bg = Some(tx.clone());
                tx
            }
        };
        let (reply, sums) = mpsc::channel();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if jobs.send((mine, reply)).is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::Config("the collective helper thread stopped".into()));
        }
        Ok(sums)
    }
}

impl Member {
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
        let host = self.exchange_f32(mine, combine)?;
        *t = Tensor::from_slice(backend, &t.shape.clone(), &host)?;
        Ok(())
    }

    /// [`Member::exchange`] with the combined values rounded to f32, the tensors' precision.
    fn exchange_f32(&self, mine: Vec<f64>, combine: Combine) -> Result<Vec<f32>> {
        let combined = self.exchange(mine, combine)?;
        let values = combined
            .as_ref()
            .as_ref()
            .map_err(|why| Error::shape("collective", why.clone()))?;
        Ok(values.iter().map(|&v| v as f32).collect())
    }
}

/// The tensors of a bucket concatenated, as `f64` (the exchange's precision).
fn concat<B: Backend>(backend: &B, ts: &[&mut Tensor<B>]) -> Result<Vec<f64>> {
    let mut all = Vec::with_capacity(ts.iter().map(|t| t.numel()).sum());
    for t in ts {
        all.extend(t.to_vec(backend)?.into_iter().map(f64::from));
    }
    Ok(all)
}

impl<B: Backend> Collective<B> for LocalCollective {
    fn rank(&self) -> usize {
        self.member.rank
    }

    fn world_size(&self) -> usize {
        self.member.size
    }

    fn all_reduce_sum(&self, backend: &B, t: &mut Tensor<B>) -> Result<()> {
        if self.member.size == 1 {
            return Ok(());
        }
        self.check_idle()?;
        self.member.exchange_tensor(backend, t, Combine::Sum)
    }

    fn all_reduce_sum_all(&self, backend: &B, ts: &mut [&mut Tensor<B>]) -> Result<()> {
        if self.member.size == 1 || ts.is_empty() {
            return Ok(());
        }
        self.check_idle()?;
        // One exchange for the whole bucket: the tensors concatenated, summed, split back.
        let sums = self
            .member
            .exchange_f32(concat(backend, ts)?, Combine::Sum)?;
        split_into(backend, &sums, ts)
    }

    fn start_all_reduce_sum_all(&self, backend: &B, ts: &mut [&mut Tensor<B>]) -> Result<Started> {
        if self.member.size == 1 || ts.is_empty() {
            return Ok(Started::InPlace);
        }
        // The copy to host is the only part that must happen now: after it the caller may go
        // on (the gradients themselves are not touched until the sums are written back).
        Ok(Started::Host(self.start(concat(backend, ts)?)?))
    }

    fn broadcast(&self, backend: &B, t: &mut Tensor<B>, root: usize) -> Result<()> {
        if root >= self.member.size {
            return Err(Error::Config(format!(
                "broadcast from rank {root} in a group of {}",
                self.member.size
            )));
        }
        if self.member.size == 1 {
            return Ok(());
        }
        self.check_idle()?;
        self.member.exchange_tensor(backend, t, Combine::Take(root))
    }

    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()> {
        if self.member.size == 1 {
            return Ok(());
        }
        self.check_idle()?;
        let combined = self.member.exchange(values.to_vec(), Combine::Sum)?;
        if let Ok(sums) = combined.as_ref() {
            values.copy_from_slice(sums);
        }
        Ok(())
    }

    fn abort(&self) {
        self.fail_group();
    }
}
