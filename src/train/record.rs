//! What training leaves in the run folder: at each evaluation the test NLL, the checkpoint,
//! the metrics line and the loss curve; at the end, the samples.

use super::TrainConfig;
use crate::backend::Backend;
use crate::checkpoint::{self, CheckpointMeta};
use crate::data::Images;
use crate::error::Result;
use crate::eval::evaluate;
use crate::models::Model;
use crate::optim::Optimizer;
use crate::plot::write_loss_curve;
use crate::run_dir::{append_metrics, Metrics, RunDir, SAMPLE_GRID_IMAGES};
use crate::sample::{sample, sample_multiscale, save_grid_png, side_by_side, SampleOptions};

/// Evaluates rank 0's model and, in the process that holds global rank 0, writes the run
/// folder.
pub(super) struct Recorder<'a, B: Backend> {
    backend: &'a B,
    cfg: &'a TrainConfig,
    test: &'a Images,
    run: &'a RunDir,
    /// Whether this process writes the run folder (every process evaluates).
    writes: bool,
    eval_batch: usize,
}

impl<'a, B: Backend> Recorder<'a, B> {
    /// Scores `test` on `backend`; writes `run` when `writes`.
    pub(super) fn new(
        backend: &'a B,
        cfg: &'a TrainConfig,
        test: &'a Images,
        run: &'a RunDir,
        writes: bool,
    ) -> Self {
        Recorder {
            backend,
            cfg,
            test,
            run,
            writes,
            eval_batch: (4 * cfg.batch).max(16),
        }
    }

    /// Evaluates, checkpoints, then appends the metrics line (in that order, so a line never
    /// refers to a checkpoint that was not written) and redraws the loss curve. `window`:
    /// (train NLL, images/s) since the previous line; `seconds`: training time so far.
    pub(super) fn record(
        &self,
        step: u64,
        window: Option<(f64, f64)>,
        seconds: f64,
        model: &mut Model<B>,
        opt: &Optimizer<B>,
    ) -> Result<Metrics> {
        let (backend, cfg) = (self.backend, self.cfg);
        let e = evaluate(
            backend,
            model,
            self.test,
            self.eval_batch,
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
        if self.writes {
            let run = self.run;
            checkpoint::save(&run.checkpoint(), backend, model, Some(opt), &meta)?;
            append_metrics(&run.metrics(), &metrics)?;
            write_loss_curve(run, &cfg.model.summary())?;
        }
        Ok(metrics)
    }

    /// Draws the run folder's `samples.png` from the trained model (cached method, the run's
    /// seed; a multi-scale model's small and full images side by side; a class-conditional
    /// model's image `b` of class `b mod K`).
    pub(super) fn samples(&self, model: &Model<B>) -> Result<()> {
        if !self.writes {
            return Ok(());
        }
        let mut opts = SampleOptions::new(SAMPLE_GRID_IMAGES, self.cfg.seed);
        if let Some(k) = model.config.classes {
            opts.classes = Some((0..SAMPLE_GRID_IMAGES).map(|b| b % k).collect());
        }
        let images = if model.stage1.is_some() {
            let (small, full) = sample_multiscale(self.backend, model, &opts, &|_| {})?;
            side_by_side(&small, &full)?
        } else {
            sample(self.backend, model, &opts, &|_| {})?
        };
        save_grid_png(&self.run.samples(), &images)
    }
}

/// The training steps since the previous metrics line.
#[derive(Default)]
pub(super) struct Window {
    loss: f64,
    steps: u64,
    secs: f64,
}

impl Window {
    /// Counts one step of mean loss `loss` (nats per image) that took `secs`.
    pub(super) fn add(&mut self, loss: f64, secs: f64) {
        self.loss += loss;
        self.steps += 1;
        self.secs += secs;
    }

    /// Training throughput over the window, for batches of `batch` images.
    pub(super) fn images_per_sec(&self, batch: usize) -> f64 {
        (self.steps as usize * batch) as f64 / self.secs
    }

    /// (mean train NLL, images/s) of the window, which starts again empty.
    pub(super) fn take(&mut self, batch: usize) -> (f64, f64) {
        let w = (self.loss / self.steps as f64, self.images_per_sec(batch));
        *self = Window::default();
        w
    }
}
