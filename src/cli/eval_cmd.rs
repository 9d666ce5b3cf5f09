//! `pixelrnn eval`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use pixelrnn::backend::Backend;
use pixelrnn::checkpoint::{write_atomic, Checkpoint};
use pixelrnn::data::{load_dataset_as, Binarize, BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC};
use pixelrnn::eval::evaluate;
use pixelrnn::models::ModelKind;
use pixelrnn::train::TrainConfig;

use super::kernels_arg::run_selected;
use super::{BinarizeArg, DeviceArg};

/// Which split to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Split {
    Test,
    Train,
}

/// Flags of `pixelrnn eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Run folder or checkpoint.safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset [default: the one the checkpoint was trained on].
    #[arg(long)]
    data: Option<String>,
    /// Binarize the data: threshold (--binarize alone), stochastic or dynamic (the test images
    /// drawn once from --binarize-seed) [default: as the checkpoint was trained].
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "threshold",
          conflicts_with = "keep_levels")]
    binarize: Option<BinarizeArg>,
    /// Seed of --binarize stochastic|dynamic [default: 0].
    #[arg(long)]
    binarize_seed: Option<u64>,
    /// Data whose values are all 0 or 1 stays 256-level data [default: as the checkpoint was
    /// trained].
    #[arg(long)]
    keep_levels: bool,
    /// Split to score.
    #[arg(long, value_enum, default_value = "test")]
    split: Split,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Write the per-sub-pixel NLL (nats, float32, N x H x W x C) to this .npy file.
    #[arg(long)]
    dump_nll: Option<PathBuf>,
    /// Fail unless the checkpoint is of this model.
    #[arg(long, value_enum)]
    model: Option<ModelKind>,
    /// Score only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Device (emulator: the CUDA kernels on the CPU emulation of the CUDA execution model,
    /// for debugging kernels; very slow).
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
    /// GEMM-operand precision (fp32, tf32, bf16) [default: the checkpoint's training
    /// precision, fp32 for checkpoints without one].
    #[arg(long, value_enum)]
    precision: Option<pixelrnn::backend::Precision>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// CUDA kernel versions other than the defaults, for the whole command: comma-separated
    /// family=N, e.g. masked_conv2d=5,masked_conv2d_weight=3 (as `pixelrnn bench --kernels`;
    /// `pixelrnn info` lists the versions); a line at the start names every version in force.
    #[arg(long, value_name = "FAMILY=N,...")]
    kernels: Option<String>,
}

fn write_nll_npy(path: &Path, shape: [usize; 4], values: &[f32]) -> anyhow::Result<()> {
    use npyz::WriterBuilder;
    let mut bytes = Vec::with_capacity(values.len() * 4 + 128);
    let mut w = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape.map(|d| d as u64))
        .writer(&mut bytes)
        .begin_nd()?;
    w.extend(values.iter().copied())?;
    w.finish()?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Runs `pixelrnn eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let selection = super::select(args.device, args.threads)?;
    let spec = args.kernels.clone();
    super::on_backend!(selection.backend, backend => {
        run_selected(backend, spec.as_deref(), selection.auto_note, |backend, note| {
            run_with(backend, args, note.as_deref())
        })
    })
}

/// `pixelrnn eval` on `backend`; `auto_note` is the `--device auto` line, printed once the
/// inputs are checked.
fn run_with<B: Backend>(backend: B, args: EvalArgs, auto_note: Option<&str>) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be positive (images per forward pass), got 0");
    }
    let ck = Checkpoint::open(&args.checkpoint)?;
    if let Some(kind) = args.model {
        if kind != ck.meta.model.kind {
            bail!(
                "{}: a {} checkpoint, not {}",
                ck.path().display(),
                ck.meta.model.kind.name(),
                kind.name()
            );
        }
    }
    let precision = super::precision_arg::apply(&backend, &ck, args.precision)?;
    let model = ck.load_model(&backend)?;
    let saved = TrainConfig::from_checkpoint(&ck)?;
    let spec = args.data.clone().unwrap_or(saved.data.clone());
    // The checkpoint decides how values are read (a binary model binarizes as it was trained,
    // a 256-level model never takes 0/1 data as binary), unless a flag says otherwise or
    // `--data` names an embedded binarized set, which is binarized its own way.
    let how = if args.binarize.is_some() || args.binarize_seed.is_some() || args.keep_levels {
        super::requested_binarize(args.binarize, args.binarize_seed, args.keep_levels, &spec)?
    } else if args.data.is_some()
        && [BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC].contains(&spec.as_str())
    {
        Binarize::Auto
    } else {
        saved.binarize.for_model(model.config.binary)
    };
    let data = load_dataset_as(&spec, how)?;
    let images = match args.split {
        Split::Test => &data.test,
        Split::Train => &data.train,
    };
    let c = &model.config;
    if images.format_label() != c.format_label() {
        let hint = if c.binary && !images.binary {
            " (binarize them: --binarize threshold|stochastic)"
        } else {
            ""
        };
        bail!(
            "{}: {} images, but {} was trained on {} images{hint}",
            data.name,
            images.format_label(),
            ck.path().display(),
            c.format_label()
        );
    }
    // A class-conditional model scores -log p(x | class), each image under its own label.
    if let Some(k) = c.classes {
        let have = data.num_classes();
        match have {
            None => bail!(
                "{}: the checkpoint is class-conditional ({k} classes) but {}",
                ck.path().display(),
                pixelrnn::data::DataError::NoLabels {
                    name: data.name.clone()
                }
            ),
            Some(h) if h > k => bail!(
                "{}: labels up to {} but {} was trained on {k} classes",
                data.name,
                h - 1,
                ck.path().display()
            ),
            _ => {}
        }
    }
    if let Some(note) = auto_note {
        eprintln!("{note}");
    }
    let t0 = Instant::now();
    let r = evaluate(
        &backend,
        &model,
        images,
        args.batch,
        args.limit,
        args.dump_nll.is_some(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    if let (Some(path), Some(per)) = (&args.dump_nll, &r.per_subpixel) {
        write_nll_npy(path, [r.images, c.height, c.width, c.channels], per)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let split = match args.split {
        Split::Test => "test",
        Split::Train => "train",
    };
    if args.json {
        let obj = serde_json::json!({
            "checkpoint": ck.path().display().to_string(),
            "model": model.config.kind.name(),
            "data": data.name,
            "split": split,
            "images": r.images,
            "step": ck.meta.step,
            "precision": precision.name(),
            // The keys of metrics.jsonl; `--split train` reports under `train_*`.
            "train_nll": (args.split == Split::Train).then_some(r.nll_nats),
            "train_bits_per_dim": (args.split == Split::Train).then_some(r.bits_per_dim),
            "test_nll_nats": (args.split == Split::Test).then_some(r.nll_nats),
            "test_bits_per_dim": (args.split == Split::Test).then_some(r.bits_per_dim),
            // Multi-scale: the two parts (they sum to the split's NLL); null otherwise.
            "stage1_nll_nats": r.stages.map(|s| s[0]),
            "stage2_nll_nats": r.stages.map(|s| s[1]),
            // Class-conditional checkpoints: the NLL is -log p(x | class), K classes.
            "classes": model.config.classes,
            "images_per_sec": r.images as f64 / secs,
            "seconds": secs,
        });
        println!("{obj}");
    } else {
        println!(
            "{} step {} on {} {} ({} images, {}): {:.4} nats/image, {:.5} bits/dim ({:.1} s)",
            model.config.kind.name(),
            ck.meta.step,
            data.name,
            split,
            r.images,
            precision,
            r.nll_nats,
            r.bits_per_dim,
            secs
        );
        if let Some([a, b]) = r.stages {
            println!("  stage 1 NLL(x_s) {a:.4} + stage 2 NLL(x | x_s) {b:.4} nats/image");
        }
        if let Some(k) = model.config.classes {
            println!(
                "  conditional NLL -log p(x | class), each image under its own label ({k} classes)"
            );
        }
    }
    Ok(())
}
