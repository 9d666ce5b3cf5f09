//! The run folder that `pixelrnn train --out` writes and `pixelrnn plot` reads: where each file
//! lives ([`RunDir`]) and the metrics log, `metrics.jsonl` (one [`Metrics`] per evaluation:
//! read, appended, truncated on resume).
//!
//! A run folder holds `config.json` (the run's `train::TrainConfig`), `metrics.jsonl`,
//! `checkpoint.safetensors`, `loss.svg` and `samples.png`. Training and plotting both use this
//! module and neither uses the other's, so neither depends on the other.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::{Error, Result};

/// Images in the run folder's `samples.png`.
pub const SAMPLE_GRID_IMAGES: usize = 16;

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
    /// evaluation ([`crate::plot::write_loss_curve`]).
    pub fn loss_curve(&self) -> PathBuf {
        self.root.join("loss.svg")
    }
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

/// Appends `m` to the `metrics.jsonl` at `path` as one line (creating the file).
pub fn append_metrics(path: &Path, m: &Metrics) -> Result<()> {
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
pub fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
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
