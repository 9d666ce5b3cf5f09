//! The training loop: deterministic batches, optimizer steps, periodic evaluation, metrics and
//! atomic checkpoints in a run folder.
//!
//! A run folder holds `config.json` (this [`TrainConfig`]), `metrics.jsonl` (one [`Metrics`]
//! per evaluation) and `checkpoint.safetensors`. Batches depend only on `(seed, step)`, and the
//! checkpoint holds the optimizer state, so a resumed run continues exactly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::checkpoint::{self, Checkpoint, CheckpointMeta};
use crate::collective::{Collective, GradSync, LocalGroup};
use crate::data::{Dataset, Images};
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::models::{Model, ModelConfig, Stages};
use crate::optim::{OptimConfig, Optimizer};

/// Defaults of `pixelrnn train` with no flags: a small PixelCNN on the embedded binarized
/// MNIST that trains in a few minutes on two CPU cores.
pub mod defaults {
    /// Dataset spec.
    pub const DATA: &str = "binarized-mnist";
    /// Residual blocks.
    pub const LAYERS: usize = 7;
    /// h (maps have 2h features).
    pub const HIDDEN: usize = 32;
    /// D, the output head's width.
    pub const HEAD: usize = 64;
    /// Images per step (the paper's MNIST batch).
    pub const BATCH: usize = 16;
    /// Optimizer steps.
    pub const STEPS: u64 = 1500;
    /// Steps between evaluations.
    pub const EVAL_EVERY: u64 = 250;
}

/// Everything that defines a training run (saved as `config.json` and in the checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture.
    pub model: ModelConfig,
    /// Dataset spec (`binarized-mnist`, `mnist` or a path).
    pub data: String,
    /// Threshold the data to 0/1.
    pub binarize: bool,
    /// Optimizer and schedule.
    pub optim: OptimConfig,
    /// Images per step.
    pub batch: usize,
    /// Total optimizer steps.
    pub steps: u64,
    /// Evaluate, log and checkpoint every this many steps (and at the end).
    pub eval_every: u64,
    /// Score only the first this many test images at each evaluation (all when `None`).
    pub eval_images: Option<usize>,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
    /// How recurrent layers run their recurrence (fused, unfused or persistent: same numbers).
    #[serde(default)]
    pub recurrence: crate::backend::Recurrence,
    /// Multi-scale: train only stage 1 or only stage 2 (`None`: both, one loss = the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u8>,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Optimizer steps done.
    pub step: u64,
    /// Mean training NLL (nats per image) over the steps since the previous line.
    pub train_nll: Option<f64>,
    /// Test NLL, nats per image.
    pub test_nll_nats: f64,
    /// Test NLL, bits per dimension.
    pub test_bits_per_dim: f64,
    /// Multi-scale: test NLL of stage 1, `NLL(x_s)`, nats per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage1_nll_nats: Option<f64>,
    /// Multi-scale: test NLL of stage 2, `NLL(x | x_s)`, nats per image (the two sum to
    /// `test_nll_nats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2_nll_nats: Option<f64>,
    /// Training throughput since the previous line.
    pub images_per_sec: Option<f64>,
    /// Training wall time so far (evaluation excluded), seconds.
    pub seconds: f64,
}

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

/// The order in which training images are visited: a fresh seeded permutation per epoch.
pub struct BatchOrder {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl BatchOrder {
    /// An order over `n` images in batches of `batch`.
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        BatchOrder {
            n,
            batch,
            seed,
            epoch: None,
        }
    }

    /// Indices of the images of `step`'s batch.
    pub fn indices(&mut self, step: u64) -> Vec<usize> {
        (0..self.batch as u64)
            .map(|j| {
                let pos = step * self.batch as u64 + j;
                let epoch = pos / self.n as u64;
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    let mut perm: Vec<usize> = (0..self.n).collect();
                    let mut rng = Pcg64::seed_from_u64(
                        self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xBA7C,
                    );
                    perm.shuffle(&mut rng);
                    self.epoch = Some((epoch, perm));
                }
                self.epoch.as_ref().expect("set above").1[(pos % self.n as u64) as usize]
            })
            .collect()
    }
}

/// Paths inside a run folder.
pub struct RunDir {
    /// The folder.
    pub root: PathBuf,
}

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `checkpoint.safetensors`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// `samples.png`: [`SAMPLE_GRID_IMAGES`] images drawn (cached method, seed = the run's
    /// seed) at the end of training.
    pub fn samples(&self) -> PathBuf {
        self.root.join("samples.png")
    }
    /// `loss.svg`: train and test NLL against the step, redrawn from `metrics.jsonl` at every
    /// evaluation ([`crate::plot`]).
    pub fn loss_curve(&self) -> PathBuf {
        self.root.join("loss.svg")
    }
}

/// Redraws `run`'s `loss.svg` from its `metrics.jsonl`.
pub fn write_loss_curve(run: &RunDir, title: &str) -> Result<()> {
    use crate::plot::{chart_svg, run_curves, Unit};
    let metrics = read_metrics(&run.metrics())?;
    let svg = chart_svg(
        title,
        Unit::NatsPerImage,
        &run_curves(&metrics, Unit::NatsPerImage),
    )?;
    checkpoint::write_atomic(&run.loss_curve(), svg.as_bytes())
}

/// Validates a configuration against the data.
pub fn check_config(cfg: &TrainConfig, train: &Images) -> Result<()> {
    cfg.model.validate()?;
    cfg.optim.validate()?;
    if let Some(s) = cfg.stage {
        if cfg.model.multiscale.is_none() || cfg.model.kind != crate::models::ModelKind::MultiScale
        {
            return Err(Error::Config(
                "--stage is for --model multiscale only".into(),
            ));
        }
        if s != 1 && s != 2 {
            return Err(Error::Config(format!("--stage must be 1 or 2, got {s}")));
        }
    }
    if cfg.batch == 0 || cfg.steps == 0 || cfg.eval_every == 0 {
        return Err(Error::Config(
            "--batch, --steps and --eval-every must be positive".into(),
        ));
    }
    if train.n == 0 {
        return Err(Error::Config("the training split is empty".into()));
    }
    Ok(())
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
    let workers = backends.len();
    if workers != group.len() || workers == 0 {
        return Err(Error::Config(format!(
            "{} backends for {} collective ranks",
            workers,
            group.len()
        )));
    }
    let backend = &backends[0];
    check_config(cfg, &data.train)?;
    // The ranks of this process among `world` in all (more than `workers` when other processes
    // hold the rest); global rank 0, if here, must be the first, and alone writes the run folder.
    let world = group[0].world_size();
    let mut seen = vec![false; world];
    for c in group {
        if c.world_size() != world
            || c.rank() >= world
            || std::mem::replace(&mut seen[c.rank()], true)
        {
            return Err(Error::Config(
                "the collective ranks of this process disagree on the group".into(),
            ));
        }
    }
    if group.iter().skip(1).any(|c| c.rank() == 0) {
        return Err(Error::Config(
            "global rank 0 must be this process's first rank".into(),
        ));
    }
    let writes = group[0].rank() == 0;
    if world > cfg.batch {
        return Err(Error::Config(format!(
            "{world} data-parallel ranks but --batch {}: each rank needs at least one image",
            cfg.batch
        )));
    }
    let run = RunDir {
        root: out.to_path_buf(),
    };
    if run.root.exists() && !run.root.is_dir() {
        return Err(Error::Config(format!(
            "--out {} is a file, not a run folder",
            run.root.display()
        )));
    }
    if let Some(ck) = resume {
        if ck.meta.step >= cfg.steps {
            return Err(Error::Config(format!(
                "nothing to do: the checkpoint is already at step {} of --steps {} (give a larger --steps)",
                ck.meta.step, cfg.steps
            )));
        }
    }
    if writes {
        std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    }
    let (mut model, mut optimizer, mut seconds) = match resume {
        Some(ck) => {
            let mut model = ck.load_model(backend)?;
            let mut opt = Optimizer::new(cfg.optim.clone());
            ck.load_optimizer(backend, &mut model, &mut opt)?;
            if writes {
                truncate_metrics(&run.metrics(), ck.meta.step)?;
            }
            (model, opt, ck.meta.seconds)
        }
        None => {
            if writes && run.checkpoint().exists() {
                return Err(Error::Config(format!(
                    "{} already holds a checkpoint: pass --resume to continue it, or choose another --out",
                    run.root.display()
                )));
            }
            if writes {
                let _ = std::fs::remove_file(run.metrics());
            }
            (
                Model::new(backend, cfg.model.clone(), cfg.seed)?,
                Optimizer::new(cfg.optim.clone()),
                0.0,
            )
        }
    };
    if writes {
        checkpoint::write_atomic(
            &run.config(),
            serde_json::to_string_pretty(cfg)
                .expect("config serializes")
                .as_bytes(),
        )?;
    }
    model.set_recurrence(cfg.recurrence);
    // Ranks 1.. hold replicas made exactly like rank 0's model (from the checkpoint or the
    // seed) on their own backends, then synchronised by a broadcast of rank 0's weights.
    let mut replicas = Vec::with_capacity(workers - 1);
    for be in &backends[1..] {
        let (mut m, opt) = match resume {
            Some(ck) => {
                let mut m = ck.load_model(be)?;
                let mut opt = Optimizer::new(cfg.optim.clone());
                ck.load_optimizer(be, &mut m, &mut opt)?;
                (m, opt)
            }
            None => (
                Model::new(be, cfg.model.clone(), cfg.seed)?,
                Optimizer::new(cfg.optim.clone()),
            ),
        };
        m.set_recurrence(cfg.recurrence);
        replicas.push((m, opt));
    }
    if workers > 1 {
        let mut ranks = vec![&mut model];
        ranks.extend(replicas.iter_mut().map(|(m, _)| m));
        on_ranks(ranks, backends, group, |m, be, c| {
            for p in m.params_mut() {
                c.broadcast(be, &mut p.value, 0)?;
            }
            Ok(0.0)
        })?;
    }
    let stages = match cfg.stage {
        Some(1) => Stages::One,
        Some(2) => Stages::Two,
        _ => Stages::Both,
    };
    let eval_batch = (4 * cfg.batch).max(16);
    // Evaluates, checkpoints, then appends the metrics line (in that order, so a line never
    // refers to a checkpoint that was not written). `window`: (train NLL, images/s) since the
    // previous line.
    let record = |step: u64,
                  window: Option<(f64, f64)>,
                  seconds: f64,
                  model: &mut Model<B>,
                  opt: &Optimizer<B>|
     -> Result<Metrics> {
        let e = evaluate(
            backend,
            model,
            &data.test,
            eval_batch,
            cfg.eval_images,
            false,
        )?;
        let metrics = Metrics {
            step,
            train_nll: window.map(|w| w.0),
            test_nll_nats: e.nll_nats,
            test_bits_per_dim: e.bits_per_dim,
            stage1_nll_nats: e.stages.map(|s| s[0]),
            stage2_nll_nats: e.stages.map(|s| s[1]),
            images_per_sec: window.map(|w| w.1),
            seconds,
        };
        let meta = CheckpointMeta {
            model: cfg.model.clone(),
            train: serde_json::to_value(cfg).expect("config serializes"),
            step,
            seconds,
        };
        if writes {
            checkpoint::save(&run.checkpoint(), backend, model, Some(opt), &meta)?;
            append_metrics(&run.metrics(), &metrics)?;
            write_loss_curve(&run, &cfg.model.summary())?;
        }
        Ok(metrics)
    };

    let start = optimizer.step;
    on_event(Event::Start {
        start_step: start,
        total_steps: cfg.steps,
        params: model.num_params(),
    });
    let mut last = None;
    if start == 0 {
        let m = record(0, None, 0.0, &mut model, &optimizer)?;
        on_event(Event::Eval(&m));
        last = Some(m);
    }
    let mut order = BatchOrder::new(data.train.n, cfg.batch, cfg.seed);
    let grad_scale = 1.0 / (cfg.batch * cfg.model.dims()) as f32;
    let (mut window_loss, mut window_steps, mut window_secs) = (0.0f64, 0u64, 0.0f64);
    for step in start..cfg.steps {
        let t0 = Instant::now();
        let idx = order.indices(step);
        let total = if world == 1 {
            let b = model.train_batch(backend, &data.train, &idx, grad_scale, stages)?;
            if b.total.is_finite() {
                optimizer.step(backend, model.params_mut())?;
            }
            b.total
        } else {
            // Shards by global rank: the same split whatever the ranks' processes.
            let shards = shard(&idx, world);
            let mut ranks = vec![(&mut model, &mut optimizer)];
            ranks.extend(replicas.iter_mut().map(|(m, o)| (m, o)));
            let mine = group.iter().map(|c| shards[c.rank()]);
            let jobs: Vec<_> = ranks.into_iter().zip(mine).collect();
            on_ranks(jobs, backends, group, |((m, opt), shard), be, c| {
                // Each layer's gradients start their all-reduce as soon as its backward is
                // done, while the layers below it are still computing.
                let mut sync = GradSync::new(be, c);
                let b =
                    m.train_batch_with(be, &data.train, shard, grad_scale, stages, &mut |ps| {
                        sync.submit(ps)
                    })?;
                sync.finish(m.params_mut())?;
                let mut total = [b.total];
                c.all_reduce_f64(&mut total)?;
                if total[0].is_finite() {
                    opt.step(be, m.params_mut())?;
                }
                Ok(total[0])
            })?
        };
        let loss = total / cfg.batch as f64;
        if !loss.is_finite() {
            return Err(Error::NonFinite { what: "loss", step });
        }
        let dt = t0.elapsed().as_secs_f64();
        seconds += dt;
        window_loss += loss;
        window_steps += 1;
        window_secs += dt;
        let done = step + 1;
        on_event(Event::Step {
            step: done,
            loss_nats: loss,
            images_per_sec: (window_steps as usize * cfg.batch) as f64 / window_secs,
        });
        if done % cfg.eval_every == 0 || done == cfg.steps {
            let window = (
                window_loss / window_steps as f64,
                (window_steps as usize * cfg.batch) as f64 / window_secs,
            );
            let m = record(done, Some(window), seconds, &mut model, &optimizer)?;
            on_event(Event::Eval(&m));
            last = Some(m);
            (window_loss, window_steps, window_secs) = (0.0, 0, 0.0);
        }
    }
    if writes {
        let opts = crate::sample::SampleOptions::new(SAMPLE_GRID_IMAGES, cfg.seed);
        let images = if model.stage1.is_some() {
            let (small, full) = crate::sample::sample_multiscale(backend, &model, &opts, &|_| {})?;
            crate::sample::side_by_side(&small, &full)?
        } else {
            crate::sample::sample(backend, &model, &opts, &|_| {})?
        };
        crate::sample::save_grid_png(&run.samples(), &images)?;
    }
    Ok(last.expect("at least one evaluation: step 0 or the last step"))
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

/// Runs `job` once per rank, each on its own thread with its rank's backend and collective,
/// and returns rank 0's result (or the first error). A rank that fails aborts the group, so
/// the others leave their pending collective instead of waiting for it forever.
fn on_ranks<B: Backend, T: Send, F>(
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
        // Report the root cause, not the "another worker failed" of the ranks it stopped.
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
    })
}

/// Images in the run folder's `samples.png`.
pub const SAMPLE_GRID_IMAGES: usize = 16;

fn append_metrics(path: &Path, m: &Metrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(m).expect("metrics serialize")
    )
    .map_err(|e| Error::io(path, e))
}

/// Keeps only the metrics lines up to `step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<Metrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomic(path, kept.as_bytes())
}

/// Reads every line of a `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                detail: format!("bad metrics line: {e}"),
            })
        })
        .collect()
}
