//! Whole training steps on CUDA against the CPU: the same model (same seed, hence the same
//! weights on both backends), the same batch, then forward, loss, backward and one optimizer
//! step; the loss, every parameter gradient and every updated parameter must agree.
//!
//! Tolerance: a model is tens of fp32 ops deep, each agreeing to a few ulp with a different
//! summation order; errors compound to ~1e-6 relative, so `DEEP_REL_TOL` (1e-4, from
//! `pixelrnn::parity`) catches any real bug (those are of order 1) while never failing on
//! rounding.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{Backend, Recurrence};
use pixelrnn::data::Images;
use pixelrnn::models::{Model, ModelConfig, ModelKind, MultiScaleConfig, Stages};
use pixelrnn::optim::{OptimConfig, Optimizer, OptimizerKind};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::{rel_err, DEEP_REL_TOL};

fn config(kind: ModelKind, c: usize, binary: bool) -> ModelConfig {
    ModelConfig {
        kind,
        height: 5,
        width: 6,
        channels: c,
        binary,
        layers: 2,
        hidden: 4,
        head: 8,
        row_kernel: 3,
        multiscale: None,
        likelihood: pixelrnn::models::Likelihood::Softmax,
        classes: None,
    }
}

fn images(cfg: &ModelConfig, n: usize, seed: u64) -> Images {
    let mut rng = Pcg64::seed_from_u64(seed);
    let hi = if cfg.binary { 2 } else { 256 };
    let px = (0..n * cfg.height * cfg.width * cfg.channels)
        .map(|_| rng.random_range(0..hi) as u8)
        .collect();
    let images =
        Images::new(n, cfg.height, cfg.width, cfg.channels, cfg.binary, px).expect("images");
    match cfg.classes {
        // Class-conditional: labels 0, 1, 2, ... mod K, so every class table row is used.
        Some(k) => images
            .with_labels((0..n as u32).map(|i| i % k as u32).collect())
            .expect("labels"),
        None => images,
    }
}

/// Gives every class table the same random values on both backends (they start at zero,
/// which would leave the forward's kernel adding zeros).
fn randomize_class_tables<E: Executor>(
    cpu_model: &mut Model<CpuBackend>,
    gpu_model: &mut Model<CudaBackend<E>>,
    gpu: &CudaBackend<E>,
) {
    let cpu = CpuBackend::new();
    for (i, (c, g)) in cpu_model
        .params_mut()
        .into_iter()
        .zip(gpu_model.params_mut())
        .enumerate()
    {
        if c.name.ends_with("class_bias") {
            let v = crate::random(900 + i as u64, c.value.numel(), 0.5);
            c.value = pixelrnn::tensor::Tensor::from_slice(&cpu, &c.value.shape, &v).unwrap();
            g.value = pixelrnn::tensor::Tensor::from_slice(gpu, &g.value.shape, &v).unwrap();
        }
    }
}

/// One training step of `cfg` on both backends; panics on the first disagreement.
fn check_step<E: Executor>(
    gpu: &CudaBackend<E>,
    cfg: ModelConfig,
    rec: Recurrence,
    optimizer: OptimizerKind,
) {
    let what = format!(
        "{} C={} {rec:?} {optimizer:?}",
        cfg.kind.name(),
        cfg.channels
    );
    let cpu = CpuBackend::new();
    let data = images(&cfg, 3, 11);
    let idx = [0, 1, 2];
    let scale = 1.0 / (idx.len() * cfg.height * cfg.width * cfg.channels) as f32;
    let optim = OptimConfig {
        kind: optimizer,
        lr: 1e-2,
        clip: Some(1.0),
        ..OptimConfig::default()
    };

    let mut on_cpu = Model::new(&cpu, cfg.clone(), 5).expect("cpu model");
    let mut on_gpu = Model::new(gpu, cfg.clone(), 5).expect("gpu model");
    on_cpu.set_recurrence(rec);
    on_gpu.set_recurrence(rec);
    if cfg.classes.is_some() {
        randomize_class_tables(&mut on_cpu, &mut on_gpu, gpu);
    }
    let nll_cpu = on_cpu
        .train_batch(&cpu, &data, &idx, scale, Stages::Both)
        .expect("cpu step");
    let nll_gpu = on_gpu
        .train_batch(gpu, &data, &idx, scale, Stages::Both)
        .unwrap_or_else(|e| panic!("{what}: gpu step: {e}"));
    let loss_err = ((nll_gpu.total - nll_cpu.total) / nll_cpu.total).abs();
    assert!(
        loss_err < DEEP_REL_TOL,
        "{what}: loss {} vs cpu {}",
        nll_gpu.total,
        nll_cpu.total
    );

    let mut opt_cpu = Optimizer::new(optim.clone());
    let mut opt_gpu = Optimizer::new(optim);
    {
        let pc = on_cpu.params_mut();
        let pg = on_gpu.params_mut();
        assert_eq!(pc.len(), pg.len());
        for (c, g) in pc.iter().zip(&pg) {
            let got = g.grad.to_vec(gpu).expect("download");
            let err = rel_err(&c.name, &got, &c.grad.data);
            assert!(
                err < DEEP_REL_TOL,
                "{what}: grad of {}: rel err {err:.2e}",
                c.name
            );
        }
    }
    opt_cpu.step(&cpu, on_cpu.params_mut()).expect("cpu update");
    opt_gpu
        .step(gpu, on_gpu.params_mut())
        .unwrap_or_else(|e| panic!("{what}: gpu update: {e}"));
    for (c, g) in on_cpu.params_mut().iter().zip(on_gpu.params_mut()) {
        let got = g.value.to_vec(gpu).expect("download");
        let err = rel_err(&c.name, &got, &c.value.data);
        assert!(
            err < DEEP_REL_TOL,
            "{what}: updated {}: rel err {err:.2e}",
            c.name
        );
    }
    gpu.synchronize().expect("synchronize");
}

/// PixelCNN, 256-way softmax with C = 3 and Bernoulli with C = 1, RMSProp and Adam.
pub fn check_pixelcnn_step<E: Executor>(gpu: &CudaBackend<E>) {
    let rec = Recurrence::Unfused;
    check_step(
        gpu,
        config(ModelKind::PixelCnn, 3, false),
        rec,
        OptimizerKind::RmsProp,
    );
    check_step(
        gpu,
        config(ModelKind::PixelCnn, 1, true),
        rec,
        OptimizerKind::Adam,
    );
}

/// Row LSTM, every recurrence variant.
pub fn check_row_lstm_step<E: Executor>(gpu: &CudaBackend<E>) {
    for rec in [
        Recurrence::Unfused,
        Recurrence::Fused,
        Recurrence::Persistent,
    ] {
        check_step(
            gpu,
            config(ModelKind::RowLstm, 3, false),
            rec,
            OptimizerKind::RmsProp,
        );
    }
}

/// Diagonal BiLSTM, every recurrence variant.
pub fn check_diag_bilstm_step<E: Executor>(gpu: &CudaBackend<E>) {
    for rec in [
        Recurrence::Unfused,
        Recurrence::Fused,
        Recurrence::Persistent,
    ] {
        check_step(
            gpu,
            config(ModelKind::DiagBiLstm, 1, true),
            rec,
            OptimizerKind::Adam,
        );
    }
}

/// Multi-scale (both stages, the transposed convolution and the conditioning biases).
pub fn check_multiscale_step<E: Executor>(gpu: &CudaBackend<E>) {
    let mut cfg = config(ModelKind::MultiScale, 1, false);
    cfg.height = 6;
    cfg.width = 6;
    cfg.layers = 1;
    cfg.multiscale = Some(MultiScaleConfig {
        base: ModelKind::RowLstm,
        scale: 3,
        cond_features: 4,
    });
    check_step(gpu, cfg, Recurrence::Unfused, OptimizerKind::Adam);
}

/// The logistic mixture likelihood (PixelCNN, C = 3; Row LSTM, C = 1): the mixture loss and
/// its gradient on CUDA inside a whole step.
pub fn check_logistic_mixture_step<E: Executor>(gpu: &CudaBackend<E>) {
    for (kind, c) in [(ModelKind::PixelCnn, 3), (ModelKind::RowLstm, 1)] {
        let cfg = ModelConfig {
            likelihood: pixelrnn::models::Likelihood::LogisticMixture { mixtures: 4 },
            ..config(kind, c, false)
        };
        check_step(gpu, cfg, Recurrence::Fused, OptimizerKind::Adam);
    }
}

/// Gated PixelCNN (vertical and horizontal stacks, the gated activation, skips), 256-way
/// softmax with C = 3 and Bernoulli with C = 1.
pub fn check_gated_pixelcnn_step<E: Executor>(gpu: &CudaBackend<E>) {
    let rec = Recurrence::default();
    check_step(
        gpu,
        config(ModelKind::GatedPixelCnn, 3, false),
        rec,
        OptimizerKind::Adam,
    );
    check_step(
        gpu,
        config(ModelKind::GatedPixelCnn, 1, true),
        rec,
        OptimizerKind::RmsProp,
    );
}

/// Class-conditional (`--condition class`, 3 classes): PixelCNN with C = 3, Row LSTM, the
/// Diagonal BiLSTM (both directions' tables), Gated PixelCNN and both stages of Multi-Scale, with random
/// class tables: the class-bias kernels forward and backward inside whole training steps.
pub fn check_conditional_step<E: Executor>(gpu: &CudaBackend<E>) {
    let cond = |mut cfg: ModelConfig| {
        cfg.classes = Some(3);
        cfg
    };
    let rec = Recurrence::Fused;
    let k = OptimizerKind::Adam;
    check_step(gpu, cond(config(ModelKind::PixelCnn, 3, false)), rec, k);
    check_step(gpu, cond(config(ModelKind::RowLstm, 1, true)), rec, k);
    check_step(gpu, cond(config(ModelKind::DiagBiLstm, 1, false)), rec, k);
    // Gated PixelCNN: each layer's table joins both stacks' pre-activations.
    check_step(
        gpu,
        cond(config(ModelKind::GatedPixelCnn, 3, false)),
        rec,
        k,
    );
    let mut ms = cond(config(ModelKind::MultiScale, 1, true));
    (ms.height, ms.width, ms.layers) = (6, 6, 1);
    ms.multiscale = Some(MultiScaleConfig {
        base: ModelKind::PixelCnn,
        scale: 3,
        cond_features: 4,
    });
    check_step(gpu, ms, rec, k);
}

crate::parity_tests! {
    logistic_mixture_training_step => super::check_logistic_mixture_step,
    gated_pixelcnn_training_step => super::check_gated_pixelcnn_step,
    conditional_training_step => super::check_conditional_step,
    pixelcnn_training_step => super::check_pixelcnn_step,
    row_lstm_training_step => super::check_row_lstm_step,
    diag_bilstm_training_step => super::check_diag_bilstm_step,
    multiscale_training_step => super::check_multiscale_step,
}
