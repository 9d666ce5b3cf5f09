//! `pixelrnn train`.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use pixelrnn::backend::cuda::{CudaBackend, Device};
use pixelrnn::backend::{Backend, Precision, Recurrence};
use pixelrnn::collective::{Collective, NcclCollective};
use pixelrnn::data::{
    load_dataset_as, Binarize, Dataset, BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC, MNIST,
};
use pixelrnn::models::{ModelConfig, ModelKind, MultiScaleConfig};
use pixelrnn::optim::{OptimConfig, OptimizerKind, Schedule};
use pixelrnn::train::{train_parallel, train_ranks, Event, TrainConfig, MAX_STEPS};

use super::kernels_arg::{run_selected, versions_note, KernelSelection};
use super::likelihood_arg::{likelihood_of, LikelihoodArg};
use super::{BinarizeArg, DeviceArg};

use pixelrnn::train::defaults;

/// Flags of `pixelrnn train`. Unset flags take the defaults, or on `--resume` the saved run's
/// values.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Model variant [default: pixelcnn]. multiscale alone is a Row LSTM base, stage 1 on the
    /// image at half its side (x[::2, ::2]), stage 2 on the full image given it, both stages
    /// trained together (see --base, --scale, --stage). gated-pixelcnn: Gated PixelCNN
    /// (vertical and horizontal stacks, gated activations, no blind spot; --layers counts its
    /// gated layers; docs/gated-pixelcnn.md).
    #[arg(long, value_enum)]
    pub(super) model: Option<ModelKind>,
    /// Dataset: binarized-mnist (default; embedded digits thresholded at 128),
    /// binarized-mnist-stochastic (the same digits binarized as the paper's: see --binarize),
    /// mnist (256 grey levels), or a path to .npy, .npz, MNIST IDX or CIFAR-10 binary data.
    #[arg(long)]
    pub(super) data: Option<String>,
    /// Binarize grey data for a Bernoulli output: threshold (v >= 128 -> 1; --binarize alone),
    /// stochastic (each pixel 1 with probability v/255, drawn once from --binarize-seed, as
    /// the paper's binarized MNIST was made) or dynamic (the training images drawn afresh
    /// every epoch, the test images once; reported to score 1-2 nats better than a fixed draw). Data
    /// whose values are all 0 or 1 is binary without it.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "threshold",
          conflicts_with = "keep_levels")]
    pub(super) binarize: Option<BinarizeArg>,
    /// Seed of --binarize stochastic|dynamic and of --data binarized-mnist-stochastic
    /// [default: 0]; recorded in the run's config.json.
    #[arg(long)]
    pub(super) binarize_seed: Option<u64>,
    /// Data whose values are all 0 or 1 stays 256-level data (a 256-way softmax over 0..255)
    /// instead of being taken as binary.
    #[arg(long)]
    pub(super) keep_levels: bool,
    /// Hidden layers after the 7x7 input layer (PixelCNN: residual blocks) [default: 7].
    #[arg(long)]
    pub(super) layers: Option<usize>,
    /// h: maps between layers have 2h features [default: 32].
    #[arg(long)]
    pub(super) hidden: Option<usize>,
    /// D: width of the output head [default: 64].
    #[arg(long)]
    pub(super) head: Option<usize>,
    /// Multi-scale (--model multiscale): the variant of both stages [default: row-lstm].
    #[arg(long, value_enum)]
    pub(super) base: Option<ModelKind>,
    /// Multi-scale: side s of the small image x[::n/s, ::n/s] that stage 1 models [default:
    /// half the image side, 14 for MNIST].
    #[arg(long)]
    pub(super) scale: Option<usize>,
    /// Multi-scale: features F of the conditioning map [default: h].
    #[arg(long)]
    pub(super) cond_features: Option<usize>,
    /// Multi-scale: train only stage 1 or only stage 2 [default: both, one loss = the sum].
    #[arg(long)]
    pub(super) stage: Option<u8>,
    /// Conditioning: class (every layer adds a learned per-class bias to its gate or
    /// input-to-state pre-activations, from the data's labels; sample with --class K or
    /// --classes all) [default: none].
    #[arg(long, value_enum)]
    pub(super) condition: Option<ConditionArg>,
    /// Row LSTM: width k of its 1xk convolutions [default: 3].
    #[arg(long)]
    pub(super) row_kernel: Option<usize>,
    /// Output distribution of 256-level data: softmax (the paper's 256-way softmax per
    /// sub-pixel) or logistic-mixture (PixelCNN++'s discretized logistic mixture of whole
    /// pixels, --mixtures components; docs/logistic-mixture.md) [default: softmax].
    #[arg(long, value_enum)]
    pub(super) likelihood: Option<LikelihoodArg>,
    /// Components K of --likelihood logistic-mixture, 1..=32 [default: 10, as PixelCNN++].
    #[arg(long)]
    pub(super) mixtures: Option<usize>,
    /// How recurrent layers run their recurrence (same numbers, different speed) [default: fused].
    #[arg(long, value_enum)]
    pub(super) recurrence: Option<Recurrence>,
    /// GEMM-operand precision of the ops with tensor-core kernels: fp32, tf32 or bf16 (operands
    /// rounded, fp32 accumulation; README "Precision"). Saved in the run; --resume may change
    /// it [default: fp32, or on --resume the saved run's].
    #[arg(long, value_enum)]
    pub(super) precision: Option<Precision>,
    /// Images per step [default: 16].
    #[arg(long)]
    pub(super) batch: Option<usize>,
    /// Optimizer steps [default: 1500].
    #[arg(long, conflicts_with = "epochs")]
    pub(super) steps: Option<u64>,
    /// Train for this many passes over the training split instead of --steps.
    #[arg(long)]
    pub(super) epochs: Option<f64>,
    /// Peak learning rate [default: 1e-3].
    #[arg(long, allow_negative_numbers = true)]
    pub(super) lr: Option<f32>,
    /// Update rule [default: adam].
    #[arg(long, value_enum)]
    pub(super) optimizer: Option<OptimizerKind>,
    /// Clip the global gradient norm to this value [default: off].
    #[arg(long, allow_negative_numbers = true)]
    pub(super) clip: Option<f32>,
    /// Learning-rate schedule [default: constant].
    #[arg(long, value_enum)]
    pub(super) schedule: Option<Schedule>,
    /// Linear learning-rate warm-up steps [default: 0].
    #[arg(long)]
    pub(super) warmup: Option<u64>,
    /// Device (emulator: the CUDA kernels on the CPU emulation of the CUDA execution model,
    /// for debugging kernels; very slow).
    #[arg(long, value_enum, default_value = "auto")]
    pub(super) device: DeviceArg,
    /// Seed of the weights and the batch order [default: 0].
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Run folder [default: runs/<model>-<UTC date-time>, e.g. runs/pixelcnn-2026-12-01T18-12-34].
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint.
    #[arg(long, requires = "out")]
    pub(super) resume: bool,
    /// Evaluate, log and checkpoint every N steps [default: 250].
    #[arg(long)]
    pub(super) eval_every: Option<u64>,
    /// Score only the first N test images at each evaluation [default: all].
    #[arg(long)]
    pub(super) eval_images: Option<usize>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// CUDA kernel versions other than the defaults, for the whole run: comma-separated
    /// family=N, e.g. masked_conv2d=5,masked_conv2d_weight=3 (as `pixelrnn bench --kernels`;
    /// `pixelrnn info` lists the versions); a line at the start names every version in force.
    #[arg(long, value_name = "FAMILY=N,...")]
    pub(super) kernels: Option<String>,
    /// Data-parallel ranks in this process: each step's batch is split into N shards whose
    /// gradients are summed (same result as 1 up to summation order; resumes with any N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub(super) workers: u64,
    /// Data-parallel over the first N GPUs of this machine, one rank (thread) per GPU, gradients
    /// summed with NCCL (needs libnccl); same result as one GPU up to summation order.
    #[arg(long, conflicts_with = "workers", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(super) gpus: Option<u64>,
    /// Multi-process (multi-node) data parallel: this process is global rank R of
    /// --world-size W, one GPU each, NCCL between them; rank 0 writes the run folder.
    #[arg(long, requires_all = ["world_size", "init"], conflicts_with_all = ["workers", "gpus"])]
    pub(super) rank: Option<u64>,
    /// Number of processes of a multi-process run (see --rank).
    #[arg(long, requires = "rank", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(super) world_size: Option<u64>,
    /// Rendezvous file of a multi-process run on a file system every rank sees: rank 0 writes
    /// NCCL's id there, the others wait for it (use a fresh path per run).
    #[arg(long, requires = "rank")]
    pub(super) init: Option<PathBuf>,
    /// GPU of this process in a multi-process run [default: rank modulo the GPUs present].
    #[arg(long, requires = "rank")]
    pub(super) gpu: Option<usize>,
}

/// `--condition`: what the model is conditioned on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConditionArg {
    /// Unconditional.
    None,
    /// Each image's class label (class-conditional generation).
    Class,
}

/// How the data-parallel ranks of a run are made.
enum Ranks<B: Backend> {
    /// `--workers N`: N threads sharing the backend, the in-process collective.
    Workers(usize),
    /// `--gpus N`: one backend and one NCCL communicator per GPU (rank 0's backend first).
    Devices(Vec<B>, Vec<Box<dyn Collective<B>>>),
}

/// A dataset spec as saved in the run: paths become absolute so that the run folder can be
/// evaluated or resumed from any working directory.
pub(super) fn saved_data_spec(spec: &str) -> String {
    std::fs::canonicalize(spec).map_or_else(|_| spec.to_string(), |p| p.display().to_string())
}

fn steps_for(args: &TrainArgs, data: &Dataset, batch: usize) -> anyhow::Result<u64> {
    match (args.steps, args.epochs) {
        (Some(s), _) => Ok(s),
        (None, Some(_)) if batch == 0 => bail!("--batch must be positive (images per step), got 0"),
        (None, Some(e)) if e > 0.0 && e.is_finite() => {
            let steps = ((e * data.train.n as f64) / batch as f64).ceil().max(1.0);
            if steps > MAX_STEPS as f64 {
                bail!(
                    "--epochs {e:e}: {steps:.3e} steps of --batch {batch} over {} training images, more than the limit of {MAX_STEPS} steps",
                    data.train.n
                );
            }
            Ok(steps as u64)
        }
        (None, Some(e)) => bail!("--epochs must be positive, got {e}"),
        (None, None) => Ok(defaults::STEPS),
    }
}

/// `--model multiscale` without `--scale`: half the image side (28 x 28 MNIST: 14), so that
/// stage 1 models `x[::2, ::2]`. An image whose sides are odd or unequal has no such half.
fn default_scale(data: &Dataset) -> anyhow::Result<usize> {
    let (h, w) = (data.height(), data.width());
    if h != w || h % 2 != 0 || h < 2 {
        bail!(
            "--model multiscale: the default --scale is half the image side, but {} holds {h}x{w} images; give --scale S (S divides both sides into the same n/S >= 2)",
            data.name
        );
    }
    Ok(h / 2)
}

fn fresh_config(
    args: &TrainArgs,
    data: &Dataset,
    binarize: Binarize,
) -> anyhow::Result<TrainConfig> {
    let batch = args.batch.unwrap_or(defaults::BATCH);
    let steps = steps_for(args, data, batch)?;
    let kind = args.model.unwrap_or(ModelKind::PixelCnn);
    let hidden = args.hidden.unwrap_or(defaults::HIDDEN);
    let multiscale = match kind {
        ModelKind::MultiScale => Some(MultiScaleConfig {
            base: args.base.unwrap_or(defaults::MULTISCALE_BASE),
            scale: match args.scale {
                Some(s) => s,
                None => default_scale(data)?,
            },
            cond_features: args.cond_features.unwrap_or(hidden),
        }),
        _ if args.base.is_none()
            && args.scale.is_none()
            && args.cond_features.is_none()
            && args.stage.is_none() =>
        {
            None
        }
        _ => bail!("--base, --scale, --cond-features and --stage are for --model multiscale"),
    };
    let model = ModelConfig {
        kind,
        height: data.train.height,
        width: data.train.width,
        channels: data.train.channels,
        binary: data.train.binary,
        layers: args.layers.unwrap_or(defaults::LAYERS),
        hidden,
        head: args.head.unwrap_or(defaults::HEAD),
        row_kernel: args
            .row_kernel
            .unwrap_or(pixelrnn::models::DEFAULT_ROW_KERNEL),
        multiscale,
        likelihood: likelihood_of(args.likelihood, args.mixtures)?,
        classes: match args.condition {
            Some(ConditionArg::Class) => Some(data.require_labels()?),
            _ => None,
        },
    };
    let d = OptimConfig::default();
    Ok(TrainConfig {
        model,
        data: saved_data_spec(args.data.as_deref().unwrap_or(defaults::DATA)),
        binarize,
        optim: OptimConfig {
            kind: args.optimizer.unwrap_or(d.kind),
            lr: args.lr.unwrap_or(d.lr),
            clip: args.clip,
            schedule: args.schedule.unwrap_or(d.schedule),
            warmup_steps: args.warmup.unwrap_or(0),
            total_steps: steps,
            ..d
        },
        batch,
        steps,
        eval_every: args.eval_every.unwrap_or(defaults::EVAL_EVERY),
        eval_images: args.eval_images,
        seed: args.seed.unwrap_or(0),
        recurrence: args.recurrence.unwrap_or_default(),
        precision: args.precision.unwrap_or_default(),
        stage: args.stage,
    })
}

/// Runs `pixelrnn train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(gpus) = args.gpus {
        return run_on_gpus(args, gpus as usize);
    }
    if let (Some(rank), Some(world), Some(init)) = (args.rank, args.world_size, args.init.clone()) {
        return run_as_rank(args, rank as usize, world as usize, &init);
    }
    let selection = super::select(args.device, args.threads)?;
    let workers = args.workers as usize;
    let spec = args.kernels.clone();
    super::on_backend!(selection.backend, backend => {
        run_selected(backend, spec.as_deref(), selection.auto_note, |backend, note| {
            run_with(backend, args, note.as_deref(), Ranks::Workers(workers))
        })
    })
}

/// `pixelrnn train --gpus N`: one CUDA backend per GPU, NCCL between them.
fn run_on_gpus(args: TrainArgs, gpus: usize) -> anyhow::Result<()> {
    if matches!(args.device, DeviceArg::Cpu | DeviceArg::Emulator) {
        bail!("--gpus {gpus} trains on CUDA devices; it cannot be combined with --device cpu or emulator");
    }
    let found = pixelrnn::device::cuda_devices()
        .map_err(|why| anyhow::anyhow!("--gpus {gpus}: no CUDA device: {why}"))?
        .len();
    if gpus > found {
        bail!("--gpus {gpus}: this machine has {found} CUDA device(s)");
    }
    let backends = (0..gpus)
        .map(|i| Device::new(i).map(CudaBackend::new))
        .collect::<pixelrnn::Result<Vec<_>>>()
        .with_context(|| format!("--gpus {gpus}"))?;
    let group: Vec<Box<dyn Collective<CudaBackend<Device>>>> =
        NcclCollective::for_devices(&backends)
            .with_context(|| format!("--gpus {gpus}"))?
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Collective<CudaBackend<Device>>>)
            .collect();
    let keep = backends.clone();
    let _kernels = keep
        .iter()
        .map(|b| b.select_kernels(args.kernels.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let note = versions_note(&keep[0], args.kernels.as_deref());
    let first = backends[0].clone();
    run_with(
        first,
        args,
        note.as_deref(),
        Ranks::Devices(backends, group),
    )
}

/// `pixelrnn train --rank R --world-size W --init FILE`: one GPU of a multi-process group.
fn run_as_rank(
    args: TrainArgs,
    rank: usize,
    world: usize,
    init: &std::path::Path,
) -> anyhow::Result<()> {
    if matches!(args.device, DeviceArg::Cpu | DeviceArg::Emulator) {
        bail!(
            "--rank trains on a CUDA device; it cannot be combined with --device cpu or emulator"
        );
    }
    if rank >= world {
        bail!("--rank {rank}: must be below --world-size {world}");
    }
    let found = pixelrnn::device::cuda_devices()
        .map_err(|why| anyhow::anyhow!("--rank {rank}: no CUDA device: {why}"))?
        .len();
    let gpu = args.gpu.unwrap_or(rank % found);
    let backend = CudaBackend::new(Device::new(gpu).with_context(|| format!("--rank {rank}"))?);
    let comm = NcclCollective::from_rank(
        &backend,
        rank,
        world,
        init,
        std::time::Duration::from_secs(300),
    )
    .with_context(|| format!("--rank {rank}"))?;
    let group: Vec<Box<dyn Collective<CudaBackend<Device>>>> = vec![Box::new(comm)];
    let keep = backend.clone();
    let _kernels = keep.select_kernels(args.kernels.as_deref())?;
    let note = versions_note(&keep, args.kernels.as_deref());
    run_with(
        backend.clone(),
        args,
        note.as_deref(),
        Ranks::Devices(vec![backend], group),
    )
}

/// `pixelrnn train` on `backend` (rank 0's, with `ranks` data-parallel ranks); `auto_note` is
/// the `--device auto` line, printed when training starts.
fn run_with<B: Backend>(
    backend: B,
    args: TrainArgs,
    auto_note: Option<&str>,
    ranks: Ranks<B>,
) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        let model = args.model.unwrap_or(ModelKind::PixelCnn).name();
        pixelrnn::run_dir::default_run_folder(model, SystemTime::now())
    });
    let (cfg, checkpoint, data, data_note) = if args.resume {
        let resumed = super::resume::resume(&args, &out)?;
        let data = load_dataset_as(
            &resumed.config.data,
            resumed
                .config
                .binarize
                .for_model(resumed.config.model.binary),
        )?;
        (resumed.config, Some(resumed.checkpoint), data, resumed.note)
    } else {
        let spec = args.data.as_deref().unwrap_or(defaults::DATA);
        let asked =
            super::requested_binarize(args.binarize, args.binarize_seed, args.keep_levels, spec)?;
        let data = load_dataset_as(spec, asked)?;
        // What was applied (the embedded stochastic set's seed included), else what was asked
        // (`--keep-levels`, or a binarization that 0/1 data did not need).
        let recorded = match data.binarize {
            Binarize::Auto => asked,
            applied => applied,
        };
        let embedded = [MNIST, BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC].contains(&spec);
        let note = (!embedded && data.binary() && !asked.binarizes()).then(|| {
            format!(
                "data: {spec} holds only 0 and 1: taken as binary (one Bernoulli logit per sub-pixel; --keep-levels keeps 256 levels)"
            )
        });
        (fresh_config(&args, &data, recorded)?, None, data, note)
    };
    let bar = ProgressBar::new(cfg.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps  {msg}  (eta {eta})",
        )
        .expect("valid template"),
    );
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut on_event = |ev: Event<'_>| match ev {
        Event::Start {
            start_step,
            total_steps,
            params,
        } => {
            bar.set_position(start_step);
            if let Some(note) = auto_note {
                say(&bar, note.to_string());
            }
            if let Some(note) = &data_note {
                say(&bar, note.clone());
            }
            say(
                &bar,
                format!(
                    "pixelrnn train: {} on {} ({} train / {} test, {}) on {}, run folder {}",
                    cfg.model.kind.name(),
                    data.name,
                    data.train.n,
                    data.test.n,
                    cfg.model.format_label(),
                    backend.name(),
                    out.display()
                ),
            );
            say(
                &bar,
                format!(
                    "{params} parameters; steps {start_step}..{total_steps}; precision {}",
                    cfg.precision
                ),
            );
        }
        Event::Step {
            step,
            loss_nats,
            images_per_sec,
        } => {
            bar.set_position(step);
            bar.set_message(format!(
                "loss {loss_nats:.2} nats/img | {images_per_sec:.0} img/s"
            ));
        }
        Event::Eval(m) => say(
            &bar,
            format!(
                "step {:>6}  train {:>9}  test {:.3} nats/img  {:.4} bits/dim{}  {}",
                m.step,
                m.train_nll.map_or("-".into(), |v| format!("{v:.3}")),
                m.test_nll_nats,
                m.test_bits_per_dim,
                match (m.stage1_nll_nats, m.stage2_nll_nats) {
                    (Some(a), Some(b)) => format!("  (stage 1 {a:.3} + stage 2 {b:.3})"),
                    _ => String::new(),
                },
                m.images_per_sec
                    .map_or(String::new(), |v| format!("{v:.0} img/s")),
            ),
        ),
    };
    let last = match ranks {
        Ranks::Workers(n) => train_parallel(
            &backend,
            &cfg,
            &data,
            &out,
            checkpoint.as_ref(),
            n,
            &mut on_event,
        )?,
        Ranks::Devices(backends, group) => {
            let group: Vec<&dyn Collective<B>> = group.iter().map(|c| c.as_ref()).collect();
            train_ranks(
                &backends,
                &group,
                &cfg,
                &data,
                &out,
                checkpoint.as_ref(),
                &mut on_event,
            )?
        }
    };
    bar.finish_and_clear();
    println!(
        "done: step {}, test NLL {:.3} nats/image ({:.4} bits/dim); run folder {}",
        last.step,
        last.test_nll_nats,
        last.test_bits_per_dim,
        out.display()
    );
    Ok(())
}
