//! What the precision tests (tests/precision_learning.rs, tests/recurrent_precision.rs) share:
//! a small model trained in the library on the embedded binarized MNIST at a precision, and
//! the verdict that bf16 learns within 1 % of fp32.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::data::{load_dataset, Binarize};
use pixelrnn::models::ModelConfig;
use pixelrnn::optim::OptimConfig;
use pixelrnn::train::{train, TrainConfig};

/// The test NLL (nats/image) before and after `steps` steps of a `model` trained on the CPU
/// at `precision` on the embedded binarized MNIST (batch 16, seed 5, 200 test images, one
/// evaluation at the start and one at the end). Also checks that training set the backend's
/// precision to the run's.
pub fn mnist_nll_at(model: &ModelConfig, precision: Precision, steps: u64) -> (f64, f64) {
    let b = CpuBackend::new();
    let data = load_dataset("binarized-mnist", false).unwrap();
    let cfg = TrainConfig {
        model: model.clone(),
        data: "binarized-mnist".into(),
        binarize: Binarize::Auto,
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

/// `(start, end)` test NLLs of the same run at fp32 and bf16 ([`mnist_nll_at`]): both learned
/// (end below 0.8 x start), bf16's differs from fp32's (same seed, same batches: only the
/// rounding differs, and it must have been applied) and ends within 1 % of it. Prints the
/// numbers under `what` (the model).
pub fn assert_bf16_within_one_percent(
    what: &str,
    steps: u64,
    (start32, end32): (f64, f64),
    (start16, end16): (f64, f64),
) {
    eprintln!(
        "{what} test NLL after {steps} steps: fp32 {start32:.3} -> {end32:.3}, \
         bf16 {start16:.3} -> {end16:.3} nats/image"
    );
    assert!(
        end32 < 0.8 * start32,
        "fp32 did not learn: {start32} -> {end32}"
    );
    assert!(
        end16 < 0.8 * start16,
        "bf16 did not learn: {start16} -> {end16}"
    );
    assert_ne!(
        end16, end32,
        "bf16 gave fp32's numbers bit for bit: no rounding applied"
    );
    let rel = (end16 - end32).abs() / end32;
    assert!(
        rel <= 0.01,
        "bf16 test NLL {end16:.3} vs fp32 {end32:.3}: {:.2} % apart (> 1 %)",
        100.0 * rel
    );
}
