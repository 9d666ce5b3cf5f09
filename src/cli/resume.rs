//! `pixelrnn train --resume`: the saved run's configuration against the new command line.
//!
//! A resumed run keeps what defines the model, the data and the optimizer trajectory (a flag
//! given with another value is a one-line error naming it); it may change the total `--steps`,
//! `--eval-every`, `--recurrence` and `--precision` (said in a note: the fp32 master weights
//! carry over, the rounding changes). train_cmd.rs orchestrates; this module only decides.

use std::path::Path;

use anyhow::{bail, Context};
use pixelrnn::checkpoint::Checkpoint;
use pixelrnn::train::TrainConfig;

use super::likelihood_arg::likelihood_of;
use super::train_cmd::{saved_data_spec, ConditionArg, TrainArgs};

/// What `--resume` continues from.
pub struct Resumed {
    /// The run's configuration: the saved one with the changes the command line may make.
    pub config: TrainConfig,
    /// The checkpoint the run continues from.
    pub checkpoint: Checkpoint,
    /// The line to print when training starts, if the precision changed.
    pub note: Option<String>,
}

/// Opens the checkpoint in `out` and checks `args` against its saved configuration.
pub fn resume(args: &TrainArgs, out: &Path) -> anyhow::Result<Resumed> {
    let checkpoint = Checkpoint::open(out).context("--resume")?;
    let saved = TrainConfig::from_checkpoint(&checkpoint).context("--resume")?;
    let saved_precision = saved.precision;
    let config = resumed_config(args, saved)?;
    // A changed precision is allowed (the fp32 master weights carry over) but said.
    let note = (config.precision != saved_precision).then(|| {
        format!(
            "--resume: precision {} (the saved run trained at {} until step {})",
            config.precision, saved_precision, checkpoint.meta.step
        )
    });
    Ok(Resumed {
        config,
        checkpoint,
        note,
    })
}

/// The saved configuration `saved` with the changes `args` may make, or the error naming the
/// first flag that contradicts it.
fn resumed_config(args: &TrainArgs, saved: TrainConfig) -> anyhow::Result<TrainConfig> {
    same_on_resume(
        "--model",
        args.model.map(spelled),
        spelled(saved.model.kind),
    )?;
    same_on_resume(
        "--data",
        args.data.as_deref().map(saved_data_spec),
        saved.data.clone(),
    )?;
    same_on_resume("--layers", args.layers, saved.model.layers)?;
    same_on_resume("--hidden", args.hidden, saved.model.hidden)?;
    same_on_resume("--head", args.head, saved.model.head)?;
    same_on_resume("--row-kernel", args.row_kernel, saved.model.row_kernel)?;
    if args.likelihood.is_some() || args.mixtures.is_some() {
        let asked = likelihood_of(args.likelihood, args.mixtures)?;
        same_on_resume(
            "--likelihood",
            Some(asked.name()),
            saved.model.likelihood.name(),
        )?;
        same_on_resume(
            "--mixtures",
            asked.mixtures(),
            saved.model.likelihood.mixtures().unwrap_or(0),
        )?;
    }
    same_on_resume("--batch", args.batch, saved.batch)?;
    let ms = saved.model.multiscale;
    same_on_resume(
        "--base",
        args.base.map(spelled),
        ms.map_or(String::new(), |m| spelled(m.base)),
    )?;
    same_on_resume("--scale", args.scale, ms.map_or(0, |m| m.scale))?;
    same_on_resume(
        "--cond-features",
        args.cond_features,
        ms.map_or(0, |m| m.cond_features),
    )?;
    same_on_resume("--stage", args.stage, saved.stage.unwrap_or(0))?;
    same_on_resume(
        "--condition",
        args.condition.map(spelled),
        spelled(match saved.model.classes {
            Some(_) => ConditionArg::Class,
            None => ConditionArg::None,
        }),
    )?;
    same_on_resume("--lr", args.lr, saved.optim.lr)?;
    same_on_resume(
        "--optimizer",
        args.optimizer.map(spelled),
        spelled(saved.optim.kind),
    )?;
    same_on_resume(
        "--schedule",
        args.schedule.map(spelled),
        spelled(saved.optim.schedule),
    )?;
    same_on_resume("--seed", args.seed, saved.seed)?;
    if args.binarize.is_some() || args.binarize_seed.is_some() || args.keep_levels {
        let asked = super::requested_binarize(
            args.binarize,
            args.binarize_seed,
            args.keep_levels,
            &saved.data,
        )?;
        if asked != saved.binarize {
            bail!(
                "--resume: the saved run was trained with {}, the command line says {} (drop the flag or start a new --out)",
                saved.binarize.flag(),
                asked.flag()
            );
        }
    }
    if args.epochs.is_some() {
        bail!("--resume: give the new total as --steps, not --epochs");
    }
    let mut cfg = saved;
    if let Some(s) = args.steps {
        cfg.steps = s;
        cfg.optim.total_steps = s;
    }
    if let Some(e) = args.eval_every {
        cfg.eval_every = e;
    }
    if let Some(r) = args.recurrence {
        cfg.recurrence = r;
    }
    if let Some(p) = args.precision {
        cfg.precision = p;
    }
    Ok(cfg)
}

/// Fails if a flag was given with a value that differs from the resumed run's.
fn same_on_resume<T: PartialEq + ToString>(
    flag: &str,
    given: Option<T>,
    saved: T,
) -> anyhow::Result<()> {
    match given {
        Some(v) if v != saved => bail!(
            "--resume: the saved run has {flag} {}, the command line says {} (drop the flag or start a new --out)",
            saved.to_string(),
            v.to_string()
        ),
        _ => Ok(()),
    }
}

/// An enum flag's value as it is spelled on the command line.
fn spelled<T: clap::ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}
