//! Command-line definitions (clap) and dispatch.
//!
//! Every command that computes picks its backend with [`select`] (`--device`, `--threads`) and
//! then runs one generic body, `run_with<B: Backend>`, on whichever backend it got: the
//! library is generic over [`pixelrnn::backend::Backend`], so the CPU, the GPU and the CUDA
//! emulator run the very same training, evaluation, sampling and bench code.

mod bench_cmd;
mod eval_cmd;
mod info_cmd;
mod kernels_arg;
mod likelihood_arg;
mod plot_cmd;
mod precision_arg;
mod profile_cmd;
mod resume;
mod sample_cmd;
mod train_cmd;

use std::path::Path;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Device, EmuOptions, Emulator};

/// Train, evaluate and inspect PixelCNN / PixelRNN models.
#[derive(Parser, Debug)]
#[command(name = "pixelrnn", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (defaults: a small PixelCNN on the embedded binarized MNIST).
    Train(Box<train_cmd::TrainArgs>),
    /// Score a checkpoint on a dataset split: NLL in nats per image and bits per dimension.
    Eval(eval_cmd::EvalArgs),
    /// Devices, compiled kernels (versions, registers, spills, shared memory), build features.
    Info(info_cmd::InfoArgs),
    /// Draw images from a checkpoint, sub-pixel by sub-pixel, into a PNG grid.
    Sample(sample_cmd::SampleArgs),
    /// Time every op (every kernel version on CUDA) and a training step per model, after
    /// checking each result against the CPU backend.
    Bench(bench_cmd::BenchArgs),
    /// One training step per model and recurrence on the CUDA emulator with its memory
    /// counters on: per kernel launches, coalescing, bank conflicts, compulsory bytes, FLOPs
    /// and a roofline estimate on an H200.
    Profile(profile_cmd::ProfileArgs),
    /// Draw the loss curves of training runs (their metrics.jsonl) as an SVG chart.
    Plot(plot_cmd::PlotArgs),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train_cmd::run(*a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Info(a) => info_cmd::run(a),
        Command::Sample(a) => sample_cmd::run(a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Plot(a) => plot_cmd::run(a),
        Command::Profile(a) => profile_cmd::run(a),
    }
}

/// `--binarize MODE` of `train` and `eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BinarizeArg {
    /// v >= 128 -> 1 (what `--binarize` alone means).
    Threshold,
    /// Each pixel 1 with probability v/255, drawn once from --binarize-seed.
    Stochastic,
    /// Training images drawn afresh every epoch, test images once, from --binarize-seed.
    Dynamic,
}

/// The [`Binarize`](pixelrnn::data::Binarize) that `--binarize [MODE]`, `--binarize-seed S`
/// and `--keep-levels` ask for on dataset `spec`: none of them is `Auto` (0/1 data binary).
pub fn requested_binarize(
    binarize: Option<BinarizeArg>,
    seed: Option<u64>,
    keep_levels: bool,
    spec: &str,
) -> anyhow::Result<pixelrnn::data::Binarize> {
    use pixelrnn::data::{Binarize, BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC, STOCHASTIC_SEED};
    let embedded_binary = spec == BINARIZED_MNIST || spec == BINARIZED_MNIST_STOCHASTIC;
    Ok(match (binarize, seed) {
        (Some(BinarizeArg::Stochastic), s) => Binarize::Stochastic {
            seed: s.unwrap_or(STOCHASTIC_SEED),
        },
        (Some(BinarizeArg::Dynamic), s) => Binarize::Dynamic {
            seed: s.unwrap_or(STOCHASTIC_SEED),
        },
        (Some(BinarizeArg::Threshold), Some(_)) => {
            bail!("--binarize-seed is for --binarize stochastic or dynamic, not threshold")
        }
        (Some(BinarizeArg::Threshold), None) => Binarize::Threshold,
        (None, Some(seed)) if spec == BINARIZED_MNIST_STOCHASTIC => Binarize::Stochastic { seed },
        (None, Some(_)) => bail!(
            "--binarize-seed is for --binarize stochastic or dynamic (or --data {BINARIZED_MNIST_STOCHASTIC})"
        ),
        (None, None) if keep_levels && embedded_binary => bail!(
            "--keep-levels is for data files of 0/1 values; {spec} is binarized (use --data mnist for 256 levels)"
        ),
        (None, None) if keep_levels => Binarize::KeepLevels,
        (None, None) => Binarize::Auto,
    })
}

/// Device choice shared by the subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when a device is present and this build has kernels, else the CPU.
    Auto,
    /// The CPU backend.
    Cpu,
    /// The CUDA backend on GPU 0 (fails when there is none).
    Cuda,
    /// The CUDA backend on the CPU emulation of the CUDA execution model: runs the very same
    /// kernels, for debugging them without a GPU. Very slow.
    Emulator,
}

/// The backend a command runs on.
pub enum Chosen {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// A real GPU.
    Cuda(CudaBackend<Device>),
    /// The CUDA emulator.
    Emulator(CudaBackend<Emulator>),
}

/// What [`select`] chose, and for `--device auto` the line that says so.
pub struct Selection {
    /// The backend.
    pub backend: Chosen,
    /// `--device auto` only: one line naming the choice (and why not CUDA), printed by the
    /// command on stderr once its inputs are checked, so that a bad input still gives exactly
    /// one line.
    pub auto_note: Option<String>,
}

/// Sizes the CPU thread pool (`--threads`) and opens the backend that `--device` asks for.
/// `--device cuda` without a usable GPU, or in a build without kernels, is an error that says
/// why in one line.
pub fn select(device: DeviceArg, threads: Option<usize>) -> anyhow::Result<Selection> {
    if let Some(t) = threads {
        if t == 0 {
            anyhow::bail!("--threads must be positive");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot size the thread pool: {e}"))?;
    }
    let cuda = || -> anyhow::Result<CudaBackend<Device>> {
        let exec = Device::new(0).map_err(|e| anyhow::anyhow!("--device cuda: {e}"))?;
        Ok(CudaBackend::new(exec))
    };
    Ok(match device {
        DeviceArg::Cpu => Selection {
            backend: Chosen::Cpu(CpuBackend::new()),
            auto_note: None,
        },
        DeviceArg::Cuda => Selection {
            backend: Chosen::Cuda(cuda()?),
            auto_note: None,
        },
        DeviceArg::Emulator => {
            let options = EmuOptions {
                workers: rayon::current_num_threads().max(1),
                ..EmuOptions::default()
            };
            let exec =
                Emulator::new(options).map_err(|e| anyhow::anyhow!("--device emulator: {e}"))?;
            Selection {
                backend: Chosen::Emulator(CudaBackend::new(exec)),
                auto_note: None,
            }
        }
        DeviceArg::Auto => {
            let why_not = if !pixelrnn::kernels::KERNELS_COMPILED {
                Some("this build has no CUDA kernels".to_string())
            } else {
                pixelrnn::device::cuda_devices().err()
            };
            let opened = match why_not {
                Some(why) => Err(why),
                None => cuda().map_err(|e| format!("{e:#}")),
            };
            match opened {
                Ok(b) => {
                    use pixelrnn::backend::Backend;
                    let note =
                        format!("device: auto chose {} (--device cpu for the CPU)", b.name());
                    Selection {
                        backend: Chosen::Cuda(b),
                        auto_note: Some(note),
                    }
                }
                Err(why) => Selection {
                    backend: Chosen::Cpu(CpuBackend::new()),
                    auto_note: Some(format!("device: auto chose the cpu ({why})")),
                },
            }
        }
    })
}

/// Runs `$body` (an expression using the backend bound to `$be`, generic code) on whichever
/// backend `$chosen` holds.
macro_rules! on_backend {
    ($chosen:expr, $be:ident => $body:expr) => {
        match $chosen {
            $crate::cli::Chosen::Cpu($be) => $body,
            $crate::cli::Chosen::Cuda($be) => $body,
            $crate::cli::Chosen::Emulator($be) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Two optional notes for the start of a command, one per line.
pub(crate) fn join_notes(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(format!("{a}\n{b}")),
        (a, b) => a.or(b),
    }
}

/// Fails early (before minutes of sampling) when `path` cannot be written: its folder must
/// exist and it must not be a folder.
pub(crate) fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        bail!("{flag} {}: is a folder, not a file", path.display());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let probe = dir.join(format!(".pixelrnn-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "{flag} {}: cannot write in {}",
            path.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
