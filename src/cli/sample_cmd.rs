//! `pixelrnn sample`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use pixelrnn::backend::Backend;
use pixelrnn::checkpoint::Checkpoint;
use pixelrnn::data::{draw_images, load_npy, save_npy_u8, Binarize, TEST_STREAM};
use pixelrnn::sample::{
    progress_total, sample, save_grid_png, save_grid_png_cols, Method, Prefix, SampleOptions,
};
use pixelrnn::train::TrainConfig;

use super::kernels_arg::run_selected;
use super::DeviceArg;

/// Flags of `pixelrnn sample`.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// Run folder or checkpoint.safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of images (with --classes all: images per class).
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Class-conditional checkpoints: draw every image of class K.
    #[arg(long, conflicts_with = "classes")]
    class: Option<usize>,
    /// Class-conditional checkpoints: `all` draws --n images of every class, one row of the
    /// grid per class (class 0 at the top).
    #[arg(long, value_parser = ["all"])]
    classes: Option<String>,
    /// PNG grid of the images (a multi-scale model: each small image beside its full one).
    #[arg(long, default_value = "samples.png")]
    out: PathBuf,
    /// Logits are divided by this; 0 takes the most likely value.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f32,
    /// Seed of the uniform draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cached (fast) or naive (a full forward pass per sub-pixel; the reference).
    #[arg(long, value_enum, default_value = "cached")]
    method: Method,
    /// Also write the images as uint8 N x H x W x C .npy.
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Complete these images (uint8 .npy of the model's H x W x C; image b uses image b mod
    /// their count), keeping their first --rows rows.
    #[arg(long)]
    prefix: Option<PathBuf>,
    /// Rows kept from --prefix.
    #[arg(long)]
    rows: Option<usize>,
    /// Images per batch [default: cached: split over the threads; naive: up to 64].
    #[arg(long)]
    chunk: Option<usize>,
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

/// Runs `pixelrnn sample`.
pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    let selection = super::select(args.device, args.threads)?;
    let spec = args.kernels.clone();
    super::on_backend!(selection.backend, backend => {
        run_selected(backend, spec.as_deref(), selection.auto_note, |backend, note| {
            run_with(backend, args, note.as_deref())
        })
    })
}

/// `pixelrnn sample` on `backend`; `auto_note` is the `--device auto` line, printed once the
/// inputs are checked.
fn run_with<B: Backend>(
    backend: B,
    args: SampleArgs,
    auto_note: Option<&str>,
) -> anyhow::Result<()> {
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    super::check_writable("--out", &args.out)?;
    if let Some(p) = &args.npy {
        super::check_writable("--npy", p)?;
    }
    let ck = Checkpoint::open(&args.checkpoint)?;
    let precision = super::precision_arg::apply(&backend, &ck, args.precision)?;
    let model = ck.load_model(&backend)?;
    let prefix = match (&args.prefix, args.rows) {
        (Some(path), Some(rows)) => Some(Prefix {
            images: {
                // load_npy opens the file itself: refuse a device or pipe before it reads.
                pixelrnn::input::open_regular(path)
                    .with_context(|| format!("--prefix {}", path.display()))?;
                let images = load_npy(path)?;
                // A binary model completes grey images binarized as it was trained.
                let trained = TrainConfig::from_checkpoint(&ck).ok().map(|c| c.binarize);
                match trained {
                    Some(how) if model.config.binary && !images.is_zero_one() => match how {
                        Binarize::Threshold => images.binarize(),
                        Binarize::Stochastic { seed } | Binarize::Dynamic { seed } => {
                            draw_images(&images, seed, TEST_STREAM)
                        }
                        Binarize::Auto | Binarize::KeepLevels => images,
                    },
                    _ => images,
                }
            },
            rows,
        }),
        (None, None) => None,
        (Some(_), None) => bail!("--prefix needs --rows K (the number of rows to keep)"),
        (None, Some(_)) => bail!("--rows needs --prefix FILE.npy (the images to complete)"),
    };
    // Classes of the images: --class K for all of them, --classes all row by row.
    let k = model.config.classes;
    let (n, classes, cols) = match (args.class, args.classes.is_some(), k) {
        (None, false, _) => (args.n, None, None),
        (_, _, None) => bail!(
            "{}: the checkpoint is not class-conditional (trained without --condition class): --class and --classes do not apply",
            args.checkpoint.display()
        ),
        (Some(c), _, Some(k)) if c >= k => bail!(
            "--class {c} is out of range: the checkpoint has {k} classes (0..{})",
            k - 1
        ),
        (Some(c), _, Some(_)) => (args.n, Some(vec![c; args.n]), None),
        (None, true, Some(k)) => {
            let per = args.n;
            let total = per.checked_mul(k).context("--n times the number of classes overflows")?;
            (total, Some((0..total).map(|i| i / per).collect()), Some(per))
        }
    };
    if k.is_some() && classes.is_none() {
        bail!(
            "{}: the checkpoint is class-conditional ({} classes): give --class K or --classes all",
            args.checkpoint.display(),
            k.unwrap_or(0)
        );
    }
    let opts = SampleOptions {
        n,
        temperature: args.temperature,
        seed: args.seed,
        method: args.method,
        prefix,
        chunk: args.chunk,
        classes,
    };
    opts.validate(&model.config)?;
    let bar = ProgressBar::new(progress_total(&model.config, &opts));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} image rows (eta {eta})",
        )
        .expect("valid template"),
    );
    if let Some(note) = auto_note {
        eprintln!("{note}");
    }
    let t0 = Instant::now();
    // Multi-scale: the grid shows each small image (enlarged) beside its full image; the
    // array holds the full images.
    let (images, grid) = if model.stage1.is_some() {
        let (small, full) =
            pixelrnn::sample::sample_multiscale(&backend, &model, &opts, &|k| bar.inc(k))?;
        let grid = pixelrnn::sample::side_by_side(&small, &full)?;
        (full, grid)
    } else {
        let images = sample(&backend, &model, &opts, &|k| bar.inc(k))?;
        (images.clone(), images)
    };
    let secs = t0.elapsed().as_secs_f64();
    bar.finish_and_clear();
    match cols {
        Some(c) => save_grid_png_cols(&args.out, &grid, c)?,
        None => save_grid_png(&args.out, &grid)?,
    }
    if let Some(p) = &args.npy {
        save_npy_u8(p, &images)?;
    }
    println!(
        "sampled {} {} images ({}, {}, {}) in {:.2} s: {:.2} images/s; grid {}{}",
        images.n,
        model.config.format_label(),
        model.config.kind.name(),
        args.method.name(),
        precision,
        secs,
        images.n as f64 / secs.max(1e-9),
        args.out.display(),
        args.npy
            .as_ref()
            .map_or(String::new(), |p| format!(", array {}", p.display()))
    );
    Ok(())
}
