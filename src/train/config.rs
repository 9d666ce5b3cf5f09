//! What defines a training run: [`TrainConfig`] (saved as the run folder's `config.json` and
//! in the checkpoint) and the defaults of `pixelrnn train` with no flags.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::models::{ModelConfig, ModelKind, Stages};
use crate::optim::OptimConfig;

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
    /// `--model multiscale` without `--base`: the variant of both stages. The Row LSTM: the
    /// paper's multi-scale models are PixelRNNs, and it is the faster of the two LSTMs.
    pub const MULTISCALE_BASE: crate::models::ModelKind = crate::models::ModelKind::RowLstm;
}

/// The most optimizer steps a run may have (`--steps`, or what `--epochs` makes): at a
/// millisecond a step, 10^9 steps take 11 days. A larger count is a typo or an overflowed
/// `--epochs` (`1e30` would saturate to 2^64 - 1 and never end), refused before training.
pub const MAX_STEPS: u64 = 1_000_000_000;

/// Everything that defines a training run (saved as `config.json` and in the checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Architecture.
    pub model: ModelConfig,
    /// Dataset spec (`binarized-mnist`, `mnist` or a path).
    pub data: String,
    /// How the data's values are read: as they are (0/1 data binary), 0/1 kept as 256
    /// levels, or binarized (threshold, stochastic or dynamic, with the seed of the draws).
    /// Runs saved before the binarization modes hold `true` (threshold) or `false` (as they
    /// are), read as such.
    #[serde(deserialize_with = "crate::data::binarize_compat")]
    pub binarize: crate::data::Binarize,
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
    /// The precision of the GEMM operands of the ops with tensor-core kernels (`--precision`;
    /// set on the backend before any work). Runs saved before the key read as fp32, the only
    /// arithmetic they could have used.
    #[serde(default)]
    pub precision: crate::backend::Precision,
    /// Multi-scale: train only stage 1 or only stage 2 (`None`: both, one loss = the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u8>,
}

impl TrainConfig {
    /// The training configuration saved in checkpoint `ck` (its `train_config` metadata),
    /// checked field by field against the rest of the checkpoint: the same model as
    /// `model_config`, a valid optimizer, positive `batch`, `steps` and `eval_every`, a
    /// `stage` only for a multi-scale model, and no more steps taken than `steps`. An error
    /// names the file and the field.
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<TrainConfig> {
        let bad = |detail: String| Error::Checkpoint {
            path: ck.path().to_path_buf(),
            detail: format!("metadata 'train_config': {detail}"),
        };
        let cfg: TrainConfig = serde_json::from_value(ck.meta.train.clone())
            .map_err(|e| bad(format!("not a training configuration ({e})")))?;
        if cfg.model != ck.meta.model {
            return Err(bad(
                "its 'model' differs from metadata 'model_config'".into()
            ));
        }
        cfg.optim
            .validate()
            .map_err(|e| bad(format!("'optim': {e}")))?;
        for (name, v) in [
            ("batch", cfg.batch as u64),
            ("steps", cfg.steps),
            ("eval_every", cfg.eval_every),
        ] {
            if v == 0 {
                return Err(bad(format!("'{name}' is 0, must be positive")));
            }
        }
        if cfg.eval_images == Some(0) {
            return Err(bad("'eval_images' is 0, must be positive".into()));
        }
        match cfg.stage {
            None => {}
            Some(1 | 2) if cfg.model.kind == ModelKind::MultiScale => {}
            Some(s) => {
                return Err(bad(format!(
                    "'stage' {s} (only 1 or 2, for a multi-scale model)"
                )))
            }
        }
        if ck.meta.step > cfg.steps {
            return Err(bad(format!(
                "'steps' is {}, but metadata 'step' says {} were taken",
                cfg.steps, ck.meta.step
            )));
        }
        Ok(cfg)
    }

    /// What each step trains: the `--stage` of a multi-scale model, else every stage.
    pub(super) fn stages(&self) -> Stages {
        match self.stage {
            Some(1) => Stages::One,
            Some(2) => Stages::Two,
            _ => Stages::Both,
        }
    }
}
