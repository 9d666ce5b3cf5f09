//! `pixelrnn bench`: times every op (every kernel version on CUDA) and a training step per
//! model on the chosen device, each checked against the CPU backend first
//! (`pixelrnn::bench` has the method; each op's formulas are in its family's file, `bench/ops/`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use pixelrnn::backend::{Precision, Recurrence};
use pixelrnn::bench::{self, BenchBackend, Options, Part};
use pixelrnn::models::ModelKind;

use super::kernels_arg::KernelSelection;
use super::DeviceArg;

/// `--recurrence` of the bench: one variant or all of them side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RecurrenceArg {
    /// Fused recurrence only.
    Fused,
    /// Unfused recurrence only.
    Unfused,
    /// Persistent recurrence only (one launch per scan on CUDA; the fused sweep on the CPU).
    Persistent,
    /// Every variant, with the speed-up over unfused.
    All,
}

/// `--precision` of the bench: one precision or all of them side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PrecisionArg {
    /// fp32 rows only.
    Fp32,
    /// tf32 rows only.
    Tf32,
    /// bf16 rows only.
    Bf16,
    /// fp32, tf32 and bf16 rows side by side.
    All,
}

/// What to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PartArg {
    /// Every op of the backend.
    Ops,
    /// A whole training step per model.
    Steps,
    /// Both.
    All,
}

/// Flags of `pixelrnn bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Device (emulator: runs the kernels on the CPU emulation of CUDA; its times mean nothing,
    /// use it to check the bench path on a few small ops).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// Ops, training steps, or both.
    #[arg(long, value_enum, default_value = "all")]
    part: PartArg,
    /// Models of the training-step rows (comma-separated) [default: pixelcnn, row-lstm,
    /// diag-bilstm].
    #[arg(long, value_enum, value_delimiter = ',')]
    model: Vec<ModelKind>,
    /// Sizes (comma-separated): mnist (28x28x1 L7 h16 D32), cifar (32x32x3 L4 h32 D64),
    /// cifar-large (32x32x3 L12 h128 D128), cifar-b64 (cifar-large at batch 64), tiny (8x8x1
    /// L1 h4 D8 B2), all [default: mnist,cifar; emulator: tiny].
    #[arg(long, value_delimiter = ',')]
    config: Vec<String>,
    /// Recurrence variants of the LSTM rows.
    #[arg(long, value_enum, default_value = "all")]
    recurrence: RecurrenceArg,
    /// Only the op rows whose name contains one of these (comma-separated; e.g. conv,lstm).
    #[arg(long, value_delimiter = ',')]
    op: Vec<String>,
    /// Timed calls per op row (the median is reported).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Timed training steps per step row.
    #[arg(long, default_value_t = 5)]
    step_iters: usize,
    /// Untimed calls before timing (training steps: at most 3).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Write every row (and the device, date and ceilings) to this JSON file, rewritten after
    /// each row (`"complete": false` until the last).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Precisions of the rows side by side: fp32, tf32, bf16 or all (op rows of the kernels
    /// at that precision; one training-step row per precision) [default: all].
    #[arg(long, value_enum, default_value = "all")]
    precision: PrecisionArg,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// CUDA kernel versions other than the defaults, for every row: comma-separated
    /// family=N, e.g. masked_conv2d=5,masked_conv2d_weight=3 (the families are the fields of
    /// `Variants`: masked_conv2d, masked_conv2d_weight, lstm_weight_fp32, row_lstm,
    /// diag_lstm, ...; `pixelrnn info` lists the versions). The training-step rows run them;
    /// each op row still sweeps every version of its own family.
    #[arg(long, value_name = "FAMILY=N,...")]
    kernels: Option<String>,
}

fn options(args: &BenchArgs, emulated: bool) -> anyhow::Result<Options> {
    if args.iters == 0 || args.step_iters == 0 {
        bail!("--iters and --step-iters must be positive");
    }
    let names: Vec<String> = if args.config.is_empty() {
        if emulated {
            vec!["tiny".into()]
        } else {
            vec!["mnist".into(), "cifar".into()]
        }
    } else if args.config.iter().any(|c| c == "all") {
        bench::CONFIGS.iter().map(|c| c.name.to_string()).collect()
    } else {
        args.config.clone()
    };
    let configs = names
        .iter()
        .map(|n| {
            bench::config(n).ok_or_else(|| {
                let known: Vec<&str> = bench::CONFIGS.iter().map(|c| c.name).collect();
                anyhow::anyhow!(
                    "--config {n}: unknown size (known: {}, all)",
                    known.join(", ")
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
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
        bail!("--model multiscale: the bench times pixelcnn, row-lstm and diag-bilstm steps");
    }
    let recurrences = match args.recurrence {
        RecurrenceArg::Fused => vec![Recurrence::Fused],
        RecurrenceArg::Unfused => vec![Recurrence::Unfused],
        RecurrenceArg::Persistent => vec![Recurrence::Persistent],
        RecurrenceArg::All => {
            use clap::ValueEnum;
            Recurrence::value_variants().to_vec()
        }
    };
    bench::check_filter(&args.op)?;
    Ok(Options {
        part: match args.part {
            PartArg::Ops => Part::Ops,
            PartArg::Steps => Part::Steps,
            PartArg::All => Part::All,
        },
        iters: args.iters,
        step_iters: args.step_iters,
        warmup: args.warmup,
        models,
        configs,
        recurrences,
        op_filter: args.op.clone(),
        precisions: match args.precision {
            PrecisionArg::Fp32 => vec![Precision::Fp32],
            PrecisionArg::Tf32 => vec![Precision::Tf32],
            PrecisionArg::Bf16 => vec![Precision::Bf16],
            PrecisionArg::All => Precision::ALL.to_vec(),
        },
    })
}

/// Runs `pixelrnn bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            bail!(
                "--json {}: the folder {} does not exist",
                path.display(),
                dir.display()
            );
        }
    }
    let selection = super::select(args.device, args.threads)?;
    let note = selection.auto_note.clone();
    super::on_backend!(selection.backend, backend => {
        let _kernels = backend.select_kernels(args.kernels.as_deref())?;
        run_with(&backend, &args, note.as_deref())
    })
}

fn run_with<B: BenchBackend>(
    backend: &B,
    args: &BenchArgs,
    auto_note: Option<&str>,
) -> anyhow::Result<()> {
    let o = options(args, backend.emulated())?;
    if let Some(note) = auto_note {
        eprintln!("{note}");
    }
    if backend.emulated() {
        eprintln!(
            "warning: --device emulator: the kernels run on the CPU emulation of CUDA; results \
             are checked, times mean nothing"
        );
    }
    let bar = ProgressBar::new(bench::count_rows(backend, &o)? as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows  {msg}",
        )
        .expect("valid template"),
    );
    // Each row as soon as it is measured: its table line on stderr (above the progress bar;
    // the whole table goes to stdout at the end), and the JSON rewritten (atomically: a
    // temporary file renamed over it, so the file parses whenever it is read), so a run
    // killed at a time limit leaves every row measured until then.
    let mut streamed = 0;
    let report = bench::run_streaming(backend, &o, &mut |partial| {
        let Some(row) = partial.rows.last() else {
            return Ok(());
        };
        if row.kind != "ceiling" {
            bar.inc(1);
        }
        bar.set_message(format!("{} {} {}", row.name, row.config, row.variant));
        // The file first: when the row's line is out, the file holds it.
        if let Some(path) = &args.json {
            write_json(path, partial)?;
        }
        bar.suspend(|| {
            if streamed == 0 {
                eprint!("{}", bench::table_header(partial));
            }
            eprint!("{}", bench::table_row(row));
        });
        streamed += 1;
        Ok(())
    })?;
    bar.finish_and_clear();
    print!("{}", bench::table(&report));
    if let Some(path) = &args.json {
        write_json(path, &report).with_context(|| format!("--json {}", path.display()))?;
        println!("rows written to {}", path.display());
    }
    let wrong = report
        .rows
        .iter()
        .filter(|r| r.status != "ok" && r.status != "skipped")
        .count();
    if wrong > 0 {
        bail!("{wrong} row(s) were wrong or failed (see the table): no time reported for them");
    }
    Ok(())
}

/// Writes `report` to `path` as pretty JSON, atomically.
fn write_json(path: &std::path::Path, report: &bench::Report) -> pixelrnn::error::Result<()> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| pixelrnn::error::Error::Config(format!("bench report as JSON: {e}")))?;
    pixelrnn::checkpoint::write_atomic(path, text.as_bytes())
}
