//! Precision end to end in the library (issue 18 item 4): a bf16 run of a small PixelCNN on the
//! embedded binarized MNIST reaches the fp32 run's test NLL within 1 % after the same steps from
//! the same seed (CPU), and causality holds exactly at every precision (perturbation: the mask
//! guarantees it whatever the rounding), on the CPU and on the emulated CUDA backend.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, EmuOptions, Emulator};
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::data::load_dataset;
use pixelrnn::models::{ModelConfig, ModelKind};
use pixelrnn::optim::OptimConfig;
use pixelrnn::train::{train, TrainConfig};

use common::models::assert_causal_at;

/// The final test NLL (nats/image) of a small PixelCNN trained `steps` steps at `precision`.
fn trained_nll(precision: Precision, steps: u64) -> (f64, f64) {
    let b = CpuBackend::new();
    let data = load_dataset("binarized-mnist", false).unwrap();
    let cfg = TrainConfig {
        model: ModelConfig::plain(ModelKind::PixelCnn, (28, 28, 1), true, (2, 8, 16)),
        data: "binarized-mnist".into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 16,
        steps,
        eval_every: steps,
        eval_images: Some(200),
        seed: 5,
        recurrence: Default::default(),
        precision,
        stage: None,
    };
    let dir = tempfile::tempdir().unwrap();
    train(&b, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    assert_eq!(b.precision(), precision, "train sets the run's precision");
    let m = pixelrnn::run_dir::read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    (m[0].test_nll_nats, m.last().unwrap().test_nll_nats)
}

#[test]
fn bf16_learns_binarized_mnist_within_one_percent_of_fp32() {
    let steps = 60;
    let (start32, end32) = trained_nll(Precision::Fp32, steps);
    let (start16, end16) = trained_nll(Precision::Bf16, steps);
    assert!(
        end32 < 0.8 * start32,
        "fp32 did not learn: {start32} -> {end32}"
    );
    assert!(
        end16 < 0.8 * start16,
        "bf16 did not learn: {start16} -> {end16}"
    );
    // Same seed, same batches: only the rounding differs, and it must have been applied.
    assert_ne!(
        end16, end32,
        "bf16 gave fp32's numbers bit for bit: no rounding applied"
    );
    let rel = (end16 - end32).abs() / end32;
    eprintln!("test NLL after {steps} steps: fp32 {start32:.3} -> {end32:.3}, bf16 {start16:.3} -> {end16:.3} nats/image");
    assert!(
        rel <= 0.01,
        "bf16 test NLL {end16:.3} vs fp32 {end32:.3}: {:.2} % apart (> 1 %)",
        100.0 * rel
    );
}

/// The perturbation probe ([`assert_causal_at`]) on a small PixelCNN of 5 x 5 RGB images.
fn assert_pixelcnn_causal_at<B: Backend>(be: &B, precision: Precision, what: &str) {
    let cfg = ModelConfig::plain(ModelKind::PixelCnn, (5, 5, 3), false, (1, 4, 8));
    assert_causal_at(be, &cfg, precision, what);
}

#[test]
fn causal_at_every_precision_on_the_cpu() {
    let b = CpuBackend::new();
    for p in Precision::ALL {
        assert_pixelcnn_causal_at(&b, p, "cpu");
    }
}

#[test]
fn causal_at_every_precision_on_the_emulator() {
    let e = Emulator::new(EmuOptions {
        seed: 11,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator");
    let g = CudaBackend::new(e);
    for p in Precision::ALL {
        assert_pixelcnn_causal_at(&g, p, "emulator");
    }
}
