//! `pixelrnn profile`: one training step per model and recurrence on the CUDA emulator with
//! its memory counters on, reported per kernel with a roofline estimate
//! (`pixelrnn::profile` has the method).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, EmuOptions, Emulator};
use pixelrnn::backend::Recurrence;
use pixelrnn::bench;
use pixelrnn::models::ModelKind;
use pixelrnn::profile::{self, StepProfile, Target, H200, H200_LATENCY};

use super::kernels_arg::KernelSelection;

/// `--recurrence` of the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RecurrenceArg {
    /// Fused only.
    Fused,
    /// Unfused only.
    Unfused,
    /// Persistent only.
    Persistent,
    /// Every variant.
    All,
}

/// `--layout` of the Diagonal BiLSTM steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LayoutArg {
    /// The skew folded into the kernels' indexing (the default layout).
    Folded,
    /// Skewed maps materialised (the comparison layout).
    Materialised,
    /// Both.
    All,
}

/// Flags of `pixelrnn profile`.
#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// Models (comma-separated) [default: pixelcnn, row-lstm, diag-bilstm].
    #[arg(long, value_enum, value_delimiter = ',')]
    model: Vec<ModelKind>,
    /// Size (as `pixelrnn bench --config`): tiny (8x8x1 L1 h4 D8 B2), mnist, cifar,
    /// cifar-large (32x32x3 L12 h128 D128 B16: minutes per step on 2 cores), cifar-b64, gate
    /// (8x8x3 L1 h32 D16 B2: the size of the counter regression gate).
    #[arg(long, default_value = "tiny")]
    config: String,
    /// Recurrences of the LSTM steps.
    #[arg(long, value_enum, default_value = "all")]
    recurrence: RecurrenceArg,
    /// Layouts of the Diagonal BiLSTM steps.
    #[arg(long, value_enum, default_value = "all")]
    layout: LayoutArg,
    /// Run and count only this many blocks of each launch, evenly spread over its grid, and
    /// scale the counts to the whole grid (the other blocks do not run: the step's values are
    /// not computed). For the large configs, which take hours to emulate whole; 0 counts every
    /// block [default: 0 for tiny, 16 for gate (as the counter gate), 8 for the others].
    #[arg(long)]
    sample_blocks: Option<u64>,
    /// Launch overhead of the roofline estimate, microseconds per launch.
    #[arg(long, default_value_t = 3.0)]
    launch_us: f64,
    /// Time per round of a warp's global loads in the latency model, nanoseconds [default:
    /// the value fitted to the first device run, docs/kernels.md "The latency model"].
    #[arg(long)]
    load_ns: Option<f64>,
    /// Print Markdown tables (for docs/kernels.md) instead of fixed-width ones.
    #[arg(long)]
    markdown: bool,
    /// Write every profiled step to this JSON file, rewritten after each step
    /// (`"complete": false` until the last).
    #[arg(long)]
    json: Option<PathBuf>,
    /// CPU threads of the emulator [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// CUDA kernel versions other than the defaults, for every step: comma-separated
    /// family=N, e.g. masked_conv2d=5,masked_conv2d_weight=3 (as `pixelrnn bench --kernels`;
    /// `--layout` still decides the Diagonal BiLSTM's layout).
    #[arg(long, value_name = "FAMILY=N,...")]
    kernels: Option<String>,
}

fn targets(args: &ProfileArgs) -> anyhow::Result<Vec<Target>> {
    let models = if args.model.is_empty() {
        vec![
            ModelKind::PixelCnn,
            ModelKind::RowLstm,
            ModelKind::DiagBiLstm,
        ]
    } else {
        args.model.clone()
    };
    if models.contains(&ModelKind::MultiScale) {
        bail!("--model multiscale: the profile covers pixelcnn, row-lstm and diag-bilstm steps");
    }
    let rec_ok = |r: Option<Recurrence>| match (args.recurrence, r) {
        (_, None) | (RecurrenceArg::All, _) => true,
        (RecurrenceArg::Fused, Some(r)) => r == Recurrence::Fused,
        (RecurrenceArg::Unfused, Some(r)) => r == Recurrence::Unfused,
        (RecurrenceArg::Persistent, Some(r)) => r == Recurrence::Persistent,
    };
    let layout_ok = |l: Option<DiagLstmLayout>| match (args.layout, l) {
        (_, None) | (LayoutArg::All, _) => true,
        (LayoutArg::Folded, Some(l)) => l == DiagLstmLayout::Folded,
        (LayoutArg::Materialised, Some(l)) => l == DiagLstmLayout::Materialised,
    };
    Ok(models
        .into_iter()
        .flat_map(Target::all_of)
        .filter(|t| rec_ok(t.recurrence) && layout_ok(t.layout))
        .collect())
}

/// Runs `pixelrnn profile`.
pub fn run(args: ProfileArgs) -> anyhow::Result<()> {
    let cfg = profile::config(&args.config).ok_or_else(|| {
        let mut known: Vec<&str> = bench::CONFIGS.iter().map(|c| c.name).collect();
        known.push(profile::GATE_CONFIG.name);
        anyhow::anyhow!(
            "--config {}: unknown size (known: {})",
            args.config,
            known.join(", ")
        )
    })?;
    if !(args.launch_us.is_finite() && args.launch_us >= 0.0) {
        bail!("--launch-us must be a non-negative number of microseconds");
    }
    if args
        .load_ns
        .is_some_and(|ns| !(ns.is_finite() && ns >= 0.0))
    {
        bail!("--load-ns must be a non-negative number of nanoseconds");
    }
    if args.threads == Some(0) {
        bail!("--threads must be positive");
    }
    if !pixelrnn::kernels::KERNELS_COMPILED {
        bail!(
            "this build has no CUDA kernels to profile (build with the CUDA toolchain: see README)"
        );
    }
    let targets = targets(&args)?;
    let roofline = H200.with_launch_us(args.launch_us);
    let latency = args
        .load_ns
        .map_or(H200_LATENCY, |ns| H200_LATENCY.with_load_ns(ns));
    let workers = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let exec = Emulator::new(EmuOptions {
        workers,
        ..EmuOptions::default()
    })?
    .with_counters(false);
    let sample = match (args.sample_blocks, cfg.name) {
        (Some(0), _) | (None, "tiny") => None,
        (Some(b), _) => Some(b),
        (None, "gate") => Some(profile::GATE_SAMPLE),
        (None, _) => Some(8),
    };
    exec.set_block_sample(sample);
    let be = CudaBackend::new(exec);
    let _kernels = be.select_kernels(args.kernels.as_deref())?;

    let mut done: Vec<StepProfile> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        eprintln!(
            "profile [{}/{}]: {} at {} ({}) on the emulator, memory counters on{} ...",
            i + 1,
            targets.len(),
            t.label(),
            cfg.name,
            cfg.label(),
            sample.map_or_else(String::new, |b| format!(", {b} blocks per launch"))
        );
        let started = Instant::now();
        let p = profile::profile_step(&be, cfg, *t, &roofline, &latency)
            .with_context(|| format!("profiling the {} step", t.label()))?;
        eprintln!(
            "  ({:.1} s on the emulator)",
            started.elapsed().as_secs_f64()
        );
        if args.markdown {
            println!("{}", profile::markdown(&p));
        } else {
            println!("{}", profile::table(&p));
        }
        done.push(p);
        if let Some(path) = &args.json {
            write_json(path, &done, done.len() == targets.len())?;
        }
    }
    Ok(())
}

fn write_json(path: &std::path::Path, steps: &[StepProfile], complete: bool) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "tool": "pixelrnn profile",
        "date": bench::utc_date(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ),
        "complete": complete,
        "steps": steps,
    });
    let text = serde_json::to_string_pretty(&doc).context("profile report as JSON")?;
    pixelrnn::checkpoint::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
