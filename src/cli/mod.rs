//! Command-line definitions (clap) and dispatch.

mod eval_cmd;
mod info_cmd;
mod sample_cmd;
mod train_cmd;

use clap::{Parser, Subcommand};

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
    Train(train_cmd::TrainArgs),
    /// Score a checkpoint on a dataset split: NLL in nats per image and bits per dimension.
    Eval(eval_cmd::EvalArgs),
    /// Devices, compiled kernels and build features.
    Info,
    /// Draw images from a checkpoint, sub-pixel by sub-pixel, into a PNG grid.
    Sample(sample_cmd::SampleArgs),
    /// Time kernels and training steps (not built yet).
    Bench,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Info => info_cmd::run(),
        Command::Sample(a) => sample_cmd::run(a),
        Command::Bench => anyhow::bail!(
            "`pixelrnn bench` is not built yet; time the CPU training step with `cargo bench`"
        ),
    }
}

/// Device choice shared by the subcommands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// CUDA when a device is present, else the CPU.
    Auto,
    /// The CPU backend.
    Cpu,
    /// The CUDA backend.
    Cuda,
}

/// Resolves `--device` to the CPU backend (the only one built so far), with a clear error for
/// CUDA, and sizes the thread pool.
pub fn cpu_backend(
    device: DeviceArg,
    threads: Option<usize>,
) -> anyhow::Result<pixelrnn::backend::cpu::CpuBackend> {
    if device == DeviceArg::Cuda {
        anyhow::bail!(
            "--device cuda: the CUDA backend is not built yet (issue 5); use --device cpu"
        );
    }
    if let Some(t) = threads {
        if t == 0 {
            anyhow::bail!("--threads must be positive");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot size the thread pool: {e}"))?;
    }
    Ok(pixelrnn::backend::cpu::CpuBackend::new())
}
