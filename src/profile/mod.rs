//! `pixelrnn profile` as a library: one training step of a model on the CUDA emulator with
//! its memory counters on, gathered per kernel ([`KernelProfile`]) and estimated on a
//! roofline ([`Roofline`], [`H200`] by default) and by a latency model ([`LatencyModel`],
//! [`H200_LATENCY`]).
//!
//! What is measured (by the emulator, exactly, for this build's kernels at these shapes): per
//! kernel, the launches, global warp requests and the 32-byte sectors they touch, the bytes
//! the lanes used, shared-memory bank conflicts, the distinct sectors each launch reads and
//! writes (compulsory traffic), and the step's host synchronisations
//! ([`CudaBackend::host_syncs`]). What is computed: the FLOPs, by the host-side formula of
//! each launch ([`crate::backend::cuda::LaunchCfg::flops`]), and the time estimate, a lower
//! bound: per launch `max(compulsory bytes / bandwidth, FLOPs / fp32 rate) + launch overhead`.
//! Uncoalesced access (more sectors per request than the data needs), L2 misses beyond the
//! compulsory traffic, occupancy and latency are not in the bound; the efficiency columns say
//! how far the first of them is from ideal. The latency model ([`latency`]) adds the second
//! pair: per launch the larger of the roofline's work and one warp's chain of waits (load
//! rounds, shared requests, FMA instructions) times the waves, the modelled time. See
//! docs/kernels.md for the tables and how to read them.
//!
//! The step is the training loop's own ([`Model::train_batch`], then the optimizer's update)
//! on a deterministic batch of the config's size, so the host synchronisations counted are
//! those of `pixelrnn train` (the loss's download, the gradient norm's reductions).

mod baseline;
mod latency;
mod occupancy;
mod roofline;
mod summary;
mod table;

pub use baseline::{compare, parse_baseline, write_baseline, BaselineEntry, GateFinding};
pub use latency::{LatencyModel, LaunchShape, LaunchWork, WarpChain, H200_LATENCY};
pub use occupancy::{kernel_resources, Occupancy, SmLimits, H200_SM};
pub use roofline::{Bound, Roofline, H200};
pub use summary::{summarize, KernelProfile, WorstSite, WORST_SITE_MIN_SHARE};
pub use table::{markdown, summary_line, table};

use serde::Serialize;

use crate::backend::cuda::{CudaBackend, DiagLstmLayout, Emulator, Variants};
use crate::backend::Recurrence;
use crate::bench::BenchConfig;
use crate::error::{Error, Result};
use crate::models::{Model, ModelKind, Stages};
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};

/// The size of the counter regression gate (tests/counter_gate.rs), `--config gate` of
/// `pixelrnn profile`: 8x8x3 L1 h32 D16 B2, small enough for CI and big enough for the kernels'
/// tiling to matter (C = 3 for the channel groups, h = 32 fills a warp of units, 4h = 128
/// gate rows).
pub const GATE_CONFIG: BenchConfig = BenchConfig {
    name: "gate",
    height: 8,
    width: 8,
    channels: 3,
    layers: 1,
    hidden: 32,
    head: 16,
    batch: 2,
};

/// Blocks counted per launch by the gate (and by `pixelrnn profile --config gate`): its
/// figures are those of a fixed, evenly spread sample of each grid (the last, partial tile
/// included), which keeps the one-block-per-weight reductions from costing minutes; as
/// deterministic as a full count.
pub const GATE_SAMPLE: u64 = 16;

/// The size named `name`: the bench's ([`crate::bench::CONFIGS`]) or [`GATE_CONFIG`].
pub fn config(name: &str) -> Option<&'static BenchConfig> {
    crate::bench::config(name).or((name == GATE_CONFIG.name).then_some(&GATE_CONFIG))
}

/// Which step to profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    /// Model kind (PixelCNN, Row LSTM or Diagonal BiLSTM).
    pub kind: ModelKind,
    /// Recurrence of the recurrent models (`None` for PixelCNN).
    pub recurrence: Option<Recurrence>,
    /// Layout of the Diagonal LSTM scans (`None`: the default).
    pub layout: Option<DiagLstmLayout>,
}

impl Target {
    /// `pixelcnn`, `row-lstm fused`, `diag-bilstm unfused/materialised`.
    pub fn label(&self) -> String {
        let mut s = self.kind.name().to_string();
        if let Some(r) = self.recurrence {
            use clap::ValueEnum;
            s.push(' ');
            match r.to_possible_value() {
                Some(v) => s.push_str(v.get_name()),
                None => s.push_str(&format!("{r:?}")),
            }
        }
        if let Some(l) = self.layout.filter(|&l| l != DiagLstmLayout::Folded) {
            s.push('/');
            s.push_str(l.name());
        }
        s
    }

    /// Every step the bench times: PixelCNN; the Row LSTM by each recurrence; the Diagonal
    /// BiLSTM by each recurrence in each layout.
    pub fn all_of(kind: ModelKind) -> Vec<Target> {
        use clap::ValueEnum;
        let recs = Recurrence::value_variants();
        match kind {
            ModelKind::PixelCnn | ModelKind::MultiScale | ModelKind::GatedPixelCnn => {
                vec![Target {
                    kind,
                    recurrence: None,
                    layout: None,
                }]
            }
            ModelKind::RowLstm => recs
                .iter()
                .map(|&r| Target {
                    kind,
                    recurrence: Some(r),
                    layout: None,
                })
                .collect(),
            ModelKind::DiagBiLstm => [DiagLstmLayout::Folded, DiagLstmLayout::Materialised]
                .iter()
                .flat_map(|&l| {
                    recs.iter().map(move |&r| Target {
                        kind,
                        recurrence: Some(r),
                        layout: Some(l),
                    })
                })
                .collect(),
        }
    }
}

/// One profiled training step.
#[derive(Clone, Debug, Serialize)]
pub struct StepProfile {
    /// `pixelcnn`, `row-lstm fused`...
    pub target: String,
    /// The config's name.
    pub config: String,
    /// Its shapes (`32x32x3 L12 h128 D128 B16`).
    pub shape: String,
    /// The roofline of the estimates.
    pub roofline: Roofline,
    /// The latency model of the modelled times.
    pub latency: LatencyModel,
    /// Per kernel, slowest estimate first.
    pub kernels: Vec<KernelProfile>,
    /// Kernel launches in the step.
    pub launches: u64,
    /// Host synchronisations in the step (downloads and explicit synchronisations).
    pub host_syncs: u64,
    /// FLOPs of the step by the launches' formulas.
    pub flops: u64,
    /// Compulsory bytes of the step, summed over launches.
    pub compulsory_bytes: u64,
    /// The roofline estimate of the step (sum of the kernels'), seconds.
    pub estimate_s: f64,
    /// The modelled time of the step (sum of the kernels' [`KernelProfile::modelled_s`]),
    /// seconds.
    pub modelled_s: f64,
    /// The batch's NLL in nats per image (a sanity figure: the step ran on real numbers);
    /// `None` under block sampling, whose results are not computed.
    pub nll_per_image: Option<f64>,
    /// Blocks run per launch under sampling ([`Emulator::set_block_sample`]); `None`: every
    /// block ran and every figure is exact.
    pub sample_blocks: Option<u64>,
}

impl StepProfile {
    /// The mean warps per SM of the step's kernels, weighted by their estimates (those with
    /// ptxas resources; `None` without any).
    pub fn warps_per_sm(&self) -> Option<f64> {
        let (sum, weight) = self
            .kernels
            .iter()
            .filter_map(|k| k.warps_per_sm.map(|w| (w * k.estimate_s, k.estimate_s)))
            .fold((0.0, 0.0), |(s, w), (a, b)| (s + a, w + b));
        (weight > 0.0).then(|| sum / weight)
    }

    /// The FLOP floor of the step (all FLOPs at the fp32 rate), seconds.
    pub fn flop_floor_s(&self) -> f64 {
        self.flops as f64 / self.roofline.flops_per_s
    }

    /// The DRAM floor (all compulsory bytes at the bandwidth), seconds.
    pub fn memory_floor_s(&self) -> f64 {
        self.compulsory_bytes as f64 / self.roofline.bytes_per_s
    }

    /// The launch floor (all launches at the overhead), seconds.
    pub fn launch_floor_s(&self) -> f64 {
        self.launches as f64 * self.roofline.launch_s
    }
}

/// Profiles one training step of `target` at `cfg` on `be` (an emulator backend; its counters
/// are turned on for the step and off again) and estimates it on `roofline` and by `latency`.
/// The kernel
/// variants in force are `be`'s, with the target's layout selected for the step. Under the
/// executor's block sampling ([`Emulator::set_block_sample`], for shapes too large to emulate
/// whole) the counters are extrapolated from the sampled blocks and the step's numbers are
/// not computed.
pub fn profile_step(
    be: &CudaBackend<Emulator>,
    cfg: &BenchConfig,
    target: Target,
    roofline: &Roofline,
    latency: &LatencyModel,
) -> Result<StepProfile> {
    if target.kind == ModelKind::MultiScale {
        return Err(Error::Unsupported(
            "profile: multi-scale steps are not profiled (profile its base model)".into(),
        ));
    }
    let mut variants: Variants = be.variants();
    if let Some(l) = target.layout {
        variants.diag_lstm_layout = l;
    }
    let _restore = be.select(variants);
    let images = cfg.images()?;
    let mut model = Model::new(be, cfg.model(target.kind), 0)?;
    model.set_recurrence(target.recurrence.unwrap_or_default());
    let mut opt = Optimizer::new(OptimConfig {
        kind: OptimizerKind::RmsProp,
        ..OptimConfig::default()
    });
    let idx: Vec<usize> = (0..images.n).collect();
    let scale = 1.0 / (images.n * model.config.dims()) as f32;

    let exec = be.executor();
    let sample = exec.block_sample();
    exec.take_counters();
    let syncs_before = be.host_syncs();
    exec.set_counters(true);
    let step = (|| -> Result<f64> {
        let b = model.train_batch(be, &images, &idx, scale, Stages::Both)?;
        opt.step(be, model.params_mut())?;
        Ok(b.total)
    })();
    exec.set_counters(false);
    let host_syncs = be.host_syncs() - syncs_before;
    let launches = exec.take_counters();
    let total = step.map_err(|e| match sample {
        Some(b) => Error::Device(format!(
            "{e} (under block sampling, {b} blocks per launch, the step's values are not \
             computed; profile without sampling)"
        )),
        None => e,
    })?;

    let kernels = summarize(&launches, roofline, latency, &H200_SM);
    Ok(StepProfile {
        target: target.label(),
        config: cfg.name.to_string(),
        shape: cfg.label(),
        roofline: *roofline,
        latency: *latency,
        launches: launches.len() as u64,
        host_syncs,
        flops: launches.iter().map(|l| l.flops).sum(),
        compulsory_bytes: launches.iter().map(|l| l.compulsory_bytes()).sum(),
        estimate_s: kernels.iter().map(|k| k.estimate_s).sum(),
        modelled_s: kernels.iter().map(|k| k.modelled_s).sum(),
        kernels,
        nll_per_image: sample.is_none().then(|| total / images.n as f64),
        sample_blocks: sample,
    })
}
