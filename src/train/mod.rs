//! The training loop: deterministic batches, optimizer steps, periodic evaluation, metrics and
//! atomic checkpoints in a run folder ([`crate::run_dir`]).
//!
//! Batches depend only on `(seed, step)`, and the checkpoint holds the optimizer state, so a
//! resumed run continues exactly. [`train_ranks`] runs the parts in order:
//! - `setup.rs`: validation ([`check_config`], the group, the run folder), a fresh or resumed
//!   start, the replicas of the other ranks;
//! - `step.rs`: one optimizer step, the whole batch on one rank or sharded over the ranks
//!   (`ranks.rs`: the ranks of this process, a thread each), with [`GradSync`]
//!   (`grad_sync.rs`) overlapping the gradient all-reduce with the backward;
//! - `record.rs`: evaluate, checkpoint, the metrics line and loss curve; the final samples.
//!
//! [`TrainConfig`] and the CLI's [`defaults`] are in `config.rs`, [`BatchOrder`] in
//! `batch_order.rs`.

mod batch_order;
mod config;
mod grad_sync;
mod ranks;
mod record;
mod setup;
mod step;

use std::path::Path;
use std::time::Instant;

pub use batch_order::BatchOrder;
pub use config::{defaults, TrainConfig, MAX_STEPS};
pub use grad_sync::GradSync;
pub use setup::check_config;

use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::collective::{Collective, LocalGroup};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::run_dir::{Metrics, RunDir};
use record::{Recorder, Window};

/// Progress reports for a front end (progress bar, logs).
pub enum Event<'a> {
    /// Training starts at `start_step` of `total_steps`.
    Start {
        /// First step to run.
        start_step: u64,
        /// Last step.
        total_steps: u64,
        /// Trainable scalars.
        params: usize,
    },
    /// A step finished.
    Step {
        /// Steps done.
        step: u64,
        /// Its training NLL, nats per image.
        loss_nats: f64,
        /// Recent throughput.
        images_per_sec: f64,
    },
    /// An evaluation finished and was logged.
    Eval(&'a Metrics),
}

/// Trains `cfg` on `data` in run folder `out`; `resume` continues from its checkpoint.
/// Returns the last metrics line.
pub fn train<B: Backend>(
    backend: &B,
    cfg: &TrainConfig,
    data: &Dataset,
    out: &Path,
    resume: Option<&Checkpoint>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Metrics> {
    train_parallel(backend, cfg, data, out, resume, 1, on_event)
}

/// [`train`] data-parallel over `workers` ranks that are threads of this process: each step's
/// batch is split into `workers` contiguous shards, each rank computes the gradients of its
/// shard on its own replica of the model, the gradients are summed over the ranks
/// ([`LocalGroup`]), and every rank applies the same update. The result equals one rank with
/// the whole batch up to floating-point summation order; rank 0 alone evaluates and writes
/// the run folder, whose checkpoint resumes with any number of workers.
pub fn train_parallel<B: Backend>(
    backend: &B,
    cfg: &TrainConfig,
    data: &Dataset,
    out: &Path,
    resume: Option<&Checkpoint>,
    workers: usize,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Metrics> {
    // The configuration first, so that `--batch 0` is named as the fault, not `--workers`.
    check_config(cfg, &data.train)?;
    if workers == 0 || workers > cfg.batch {
        return Err(Error::Config(format!(
            "--workers {workers}: needs 1 to --batch ({}) workers, one shard of the batch each",
            cfg.batch
        )));
    }
    let group = LocalGroup::ranks(workers)?;
    let backends = vec![backend.clone(); workers];
    let ranks: Vec<&dyn Collective<B>> = group.iter().map(|c| c as &dyn Collective<B>).collect();
    train_ranks(&backends, &ranks, cfg, data, out, resume, on_event)
}

/// Data-parallel training over one rank per entry of `backends` (local rank i computes on
/// `backends[i]`: the same CPU backend for threads of one process, or one GPU each) with the
/// collective `group[i]` ([`LocalGroup`], or NCCL across GPUs). Semantics of
/// [`train_parallel`]. The group may span processes (`group[i].world_size()` ranks in all):
/// each step's batch is split by global rank, every process evaluates, and only the process
/// holding global rank 0 (as its first rank) writes the run folder: config, metrics,
/// checkpoints and samples.
pub fn train_ranks<B: Backend>(
    backends: &[B],
    group: &[&dyn Collective<B>],
    cfg: &TrainConfig,
    data: &Dataset,
    out: &Path,
    resume: Option<&Checkpoint>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Metrics> {
    // Before any work (the fresh weights' first op included): every rank at the run's precision.
    for backend in backends {
        backend.set_precision(cfg.precision);
    }
    let place = setup::place(backends, group, cfg, data)?;
    let run = RunDir {
        root: out.to_path_buf(),
    };
    setup::check_run(&run, cfg, resume)?;
    // Held until training returns: a second writer of the folder is refused before it writes.
    let _lock = if place.writes {
        Some(setup::claim(&run)?)
    } else {
        None
    };
    let (mut ranks, mut seconds) = setup::start(backends, group, place, cfg, &run, resume)?;
    let recorder = Recorder::new(&backends[0], cfg, &data.test, &run, place.writes);

    let start = ranks.optimizer.step;
    on_event(Event::Start {
        start_step: start,
        total_steps: cfg.steps,
        params: ranks.model.num_params(),
    });
    let mut last = None;
    // The step-0 evaluation of a fresh run. A run resumed from a step-0 checkpoint already has
    // it (the metrics lines up to the checkpoint's step are kept): recording it again would
    // write the step-0 line twice.
    if resume.is_none() {
        let m = recorder.record(0, None, 0.0, &mut ranks.model, &ranks.optimizer)?;
        on_event(Event::Eval(&m));
        last = Some(m);
    }
    let mut order = BatchOrder::new(data.train.n, cfg.batch, cfg.seed);
    let grad_scale = 1.0 / (cfg.batch * cfg.model.dims()) as f32;
    let mut window = Window::default();
    for step in start..cfg.steps {
        let t0 = Instant::now();
        let idx = order.indices(step);
        // Dynamic binarization draws this batch's pixels afresh; otherwise the fixed split.
        let total = match data.training_batch(step, cfg.batch, &idx) {
            Some(drawn) => {
                let all: Vec<usize> = (0..idx.len()).collect();
                ranks.step(&drawn, &all, grad_scale, cfg.stages())?
            }
            None => ranks.step(&data.train, &idx, grad_scale, cfg.stages())?,
        };
        let loss = total / cfg.batch as f64;
        if !loss.is_finite() {
            return Err(Error::NonFinite { what: "loss", step });
        }
        let dt = t0.elapsed().as_secs_f64();
        seconds += dt;
        window.add(loss, dt);
        let done = step + 1;
        on_event(Event::Step {
            step: done,
            loss_nats: loss,
            images_per_sec: window.images_per_sec(cfg.batch),
        });
        if done % cfg.eval_every == 0 || done == cfg.steps {
            let window = Some(window.take(cfg.batch));
            let m = recorder.record(done, window, seconds, &mut ranks.model, &ranks.optimizer)?;
            on_event(Event::Eval(&m));
            last = Some(m);
        }
    }
    recorder.samples(&ranks.model)?;
    Ok(last.expect("at least one evaluation: step 0 of a fresh run, or the last step"))
}
