//! Before the first step: the configuration, the group and the run folder checked (nothing is
//! written until every check has passed), rank 0's model and optimizer made fresh or loaded
//! from the checkpoint, and the replicas of the other ranks made the same way and synchronised.

use super::ranks::{on_ranks, Ranks};
use super::{TrainConfig, MAX_STEPS};
use crate::backend::Backend;
use crate::checkpoint::{self, Checkpoint};
use crate::collective::Collective;
use crate::data::{Dataset, Images};
use crate::error::{Error, Result};
use crate::models::{Model, ModelKind};
use crate::optim::{Optimizer, Schedule};
use crate::run_dir::{truncate_metrics, RunDir, RunLock};

/// Validates a configuration against the data.
pub fn check_config(cfg: &TrainConfig, train: &Images) -> Result<()> {
    cfg.model.validate()?;
    cfg.optim.validate()?;
    if let Some(s) = cfg.stage {
        if cfg.model.multiscale.is_none() || cfg.model.kind != ModelKind::MultiScale {
            return Err(Error::Config(
                "--stage is for --model multiscale only".into(),
            ));
        }
        if s != 1 && s != 2 {
            return Err(Error::Config(format!("--stage must be 1 or 2, got {s}")));
        }
    }
    if cfg.batch == 0 {
        return Err(Error::Config(
            "--batch must be positive (images per step), got 0".into(),
        ));
    }
    if cfg.steps == 0 || cfg.eval_every == 0 {
        return Err(Error::Config(
            "--steps and --eval-every must be positive".into(),
        ));
    }
    if cfg.steps > MAX_STEPS {
        return Err(Error::Config(format!(
            "--steps {}: more than the limit of {MAX_STEPS} steps (11 days at a millisecond a step)",
            cfg.steps
        )));
    }
    if train.n == 0 {
        return Err(Error::Config("the training split is empty".into()));
    }
    check_memory(cfg)
}

/// Refuses a run that cannot fit in memory ([`crate::memory`]), before anything is allocated:
/// the parameters with their gradients and optimizer moments, and the activations a batch
/// keeps for the backward (lower bounds, so nothing that fits is refused).
fn check_memory(cfg: &TrainConfig) -> Result<()> {
    let m = &cfg.model;
    let moments = match cfg.optim.kind {
        crate::optim::OptimizerKind::Adam => 2,
        crate::optim::OptimizerKind::RmsProp => 1,
    };
    let params = m.estimated_params();
    let positions = (m.height as u128) * (m.width as u128);
    let activations = cfg.batch as u128 * positions * m.estimated_activations_per_position();
    let bytes = 4 * ((2 + moments) * params + activations);
    crate::memory::check_fits(
        || {
            format!(
                "training the {} ({params} parameters) on batches of --batch {}",
                m.summary(),
                cfg.batch
            )
        },
        bytes,
    )
}

/// Where this process stands in the data-parallel group.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    /// Ranks in the whole group (every process).
    pub(super) world: usize,
    /// Whether this process holds global rank 0, which alone writes the run folder.
    pub(super) writes: bool,
}

/// Checks the ranks of this process (one backend each) and the configuration: the ranks of
/// this process among `world` in all (more than `backends.len()` when other processes hold the
/// rest) must agree on the group, and global rank 0, if here, must be the first.
pub(super) fn place<B: Backend>(
    backends: &[B],
    group: &[&dyn Collective<B>],
    cfg: &TrainConfig,
    data: &Dataset,
) -> Result<Placement> {
    let workers = backends.len();
    if workers != group.len() || workers == 0 {
        return Err(Error::Config(format!(
            "{} backends for {} collective ranks",
            workers,
            group.len()
        )));
    }
    check_config(cfg, &data.train)?;
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
    if world > cfg.batch {
        return Err(Error::Config(format!(
            "{world} data-parallel ranks but --batch {}: each rank needs at least one image",
            cfg.batch
        )));
    }
    Ok(Placement {
        world,
        writes: group[0].rank() == 0,
    })
}

/// Checks that `run` can be a run folder and that `resume` leaves steps to do.
pub(super) fn check_run(
    run: &RunDir,
    cfg: &TrainConfig,
    resume: Option<&Checkpoint>,
) -> Result<()> {
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
        check_cosine_extension(ck, cfg)?;
    }
    Ok(())
}

/// A cosine schedule is a function of the run's total steps, so a resumed run may not change
/// the total: the steps already taken followed the old curve, and no straight run of the new
/// total took those learning rates, so the result would match no run at all (20 steps of a
/// 20-step cosine, then 20 more to 40, are not 40 steps of a 40-step cosine). Making the
/// extension exact would mean redoing the steps taken, which is a new run. A constant schedule
/// (warm-up included: it does not depend on the total) extends exactly.
fn check_cosine_extension(ck: &Checkpoint, cfg: &TrainConfig) -> Result<()> {
    let Ok(saved) = serde_json::from_value::<TrainConfig>(ck.meta.train.clone()) else {
        return Ok(());
    };
    let (old, new) = (saved.optim.total_steps, cfg.optim.total_steps);
    if saved.optim.schedule == Schedule::Cosine && old != new {
        return Err(Error::Config(format!(
            "--resume --steps {new}: the run follows a cosine schedule that ends at step {old}, \
             which its first {} steps already followed; another total would match no straight \
             run (resume with --steps {old}, or start a new --out with --steps {new})",
            ck.meta.step
        )));
    }
    Ok(())
}

/// Creates the run folder and makes this process its one writer ([`RunDir::lock`]), before
/// anything else in it is read or written.
pub(super) fn claim(run: &RunDir) -> Result<RunLock> {
    std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    run.lock()
}

/// This process's ranks ready for the first step, and the training seconds so far: rank 0's
/// model and optimizer resumed or fresh (`lead`), then ranks 1.. holding replicas made
/// exactly like it (from the checkpoint or the seed) on their own backends, synchronised by a
/// broadcast of rank 0's weights.
pub(super) fn start<'a, B: Backend>(
    backends: &'a [B],
    group: &'a [&'a dyn Collective<B>],
    place: Placement,
    cfg: &TrainConfig,
    run: &RunDir,
    resume: Option<&Checkpoint>,
) -> Result<(Ranks<'a, B>, f64)> {
    let (model, optimizer, seconds) = lead(&backends[0], cfg, run, resume, place.writes)?;
    let replicas = backends[1..]
        .iter()
        .map(|be| rank_state(be, cfg, resume))
        .collect::<Result<Vec<_>>>()?;
    let mut ranks = Ranks {
        backends,
        group,
        world: place.world,
        model,
        optimizer,
        replicas,
    };
    if backends.len() > 1 {
        let mut models = vec![&mut ranks.model];
        models.extend(ranks.replicas.iter_mut().map(|(m, _)| m));
        on_ranks(models, backends, group, |m, be, c| {
            for p in m.params_mut() {
                c.broadcast(be, &mut p.value, 0)?;
            }
            Ok(0.0)
        })?;
    }
    Ok((ranks, seconds))
}

/// Rank 0's model and optimizer, resumed or fresh, and the training seconds so far. When
/// `writes`, the run folder is prepared for them: created; on resume the metrics lines after
/// the checkpoint's step dropped; fresh, an existing checkpoint refused and the old metrics
/// removed; then `config.json` written.
fn lead<B: Backend>(
    backend: &B,
    cfg: &TrainConfig,
    run: &RunDir,
    resume: Option<&Checkpoint>,
    writes: bool,
) -> Result<(Model<B>, Optimizer<B>, f64)> {
    if writes {
        std::fs::create_dir_all(&run.root).map_err(|e| Error::io(&run.root, e))?;
    }
    let started = match resume {
        Some(ck) => {
            let (model, opt) = rank_state(backend, cfg, resume)?;
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
            let (model, opt) = rank_state(backend, cfg, None)?;
            (model, opt, 0.0)
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
    Ok(started)
}

/// One rank's model and optimizer on `backend`: loaded from the checkpoint, or fresh from the
/// seed (every rank makes the same ones), running the configured recurrence.
fn rank_state<B: Backend>(
    backend: &B,
    cfg: &TrainConfig,
    resume: Option<&Checkpoint>,
) -> Result<(Model<B>, Optimizer<B>)> {
    let (mut model, opt) = match resume {
        Some(ck) => {
            let mut model = ck.load_model(backend)?;
            let mut opt = Optimizer::new(cfg.optim.clone());
            ck.load_optimizer(backend, &mut model, &mut opt)?;
            (model, opt)
        }
        None => (
            Model::new(backend, cfg.model.clone(), cfg.seed)?,
            Optimizer::new(cfg.optim.clone()),
        ),
    };
    model.set_recurrence(cfg.recurrence);
    Ok((model, opt))
}
