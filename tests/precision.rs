//! `--precision` through whole models on the CPU (issue 18 item 4): causality holds exactly at
//! every precision for every model kind (the masks zero the taps, whatever the rounding of the
//! operands), the precision changes the numbers (so the setting reaches the GEMMs), and a bf16
//! training run on the embedded binarized MNIST ends within 1 % of the fp32 run's test NLL
//! after the same steps from the same seed.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::data::load_dataset;
use pixelrnn::models::{ModelConfig, ModelKind};
use pixelrnn::optim::OptimConfig;
use pixelrnn::train::{train, TrainConfig};

use common::helpers::{host, t};
use common::models::{assert_causal_at, random_input, random_model};

const KINDS: [ModelKind; 4] = [
    ModelKind::PixelCnn,
    ModelKind::GatedPixelCnn,
    ModelKind::RowLstm,
    ModelKind::DiagBiLstm,
];

/// A small model of `kind` for 5x4 images with `c` channels (not square: a swapped H and W
/// would show).
fn small(kind: ModelKind, c: usize, binary: bool) -> ModelConfig {
    ModelConfig::plain(kind, (5, 4, c), binary, (2, 6, 8))
}

/// Perturbing an input sub-pixel never changes an output at or before it, at tf32 and bf16
/// (and fp32), for every model kind, one and three channels.
#[test]
fn causality_holds_exactly_at_every_precision() {
    for kind in KINDS {
        for (c, binary) in [(1, true), (1, false), (3, false)] {
            let cfg = small(kind, c, binary);
            let model = random_model(&cfg, 5);
            let x = random_input(1, &cfg, 6);
            for p in Precision::ALL {
                assert_causal_at(&model, &x, &format!("{} C={c} {p}", kind.name()), p);
            }
        }
    }
}

/// The precision reaches the GEMMs: a PixelCNN's logits at tf32 and at bf16 differ from
/// fp32's and from each other, and by no more than the operand rounding explains (bf16 keeps 8
/// significant bits: a relative error of a few 2^-8 on logits of order 1).
#[test]
fn precision_changes_the_logits_by_the_rounding() {
    let cfg = small(ModelKind::PixelCnn, 3, false);
    let model = random_model(&cfg, 7);
    let x = random_input(2, &cfg, 8);
    let shape = [2, cfg.height, cfg.width, cfg.channels];
    let logits = |p: Precision| {
        let b = CpuBackend::new();
        b.set_precision(p);
        host(&b, &model.forward(&b, &t(&b, &shape, &x)).unwrap().0)
    };
    let fp32 = logits(Precision::Fp32);
    let scale = fp32.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (p, bound) in [(Precision::Tf32, 2e-2), (Precision::Bf16, 1e-1)] {
        let got = logits(p);
        assert_ne!(got, fp32, "{p}: the logits are fp32's");
        let worst = got
            .iter()
            .zip(&fp32)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(worst < bound, "{p}: max diff {worst} of the logits' scale");
    }
    assert_ne!(logits(Precision::Tf32), logits(Precision::Bf16));
}

/// Issue 18's learning test: the same PixelCNN (L4 h16 D32), seed, data order and steps at
/// fp32 and at bf16 on the embedded binarized MNIST; the bf16 run's test NLL is within 1 % of
/// the fp32 run's, and both learned (far below the untrained score).
#[test]
fn bf16_training_matches_fp32_within_one_percent() {
    let data = load_dataset("binarized-mnist", false).unwrap();
    let run = |precision: Precision| {
        let model = ModelConfig::plain(ModelKind::PixelCnn, (28, 28, 1), true, (4, 16, 32));
        let steps = 150;
        let cfg = TrainConfig {
            model,
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
            seed: 4,
            recurrence: Default::default(),
            precision,
            stage: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let b = CpuBackend::new();
        train(&b, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
        assert_eq!(
            b.precision(),
            precision,
            "training set the backend's precision"
        );
        let metrics = pixelrnn::run_dir::read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
        (
            metrics[0].test_nll_nats,
            metrics.last().unwrap().test_nll_nats,
        )
    };
    let (start, fp32) = run(Precision::Fp32);
    let (_, bf16) = run(Precision::Bf16);
    assert!(fp32 < 0.5 * start, "fp32 did not learn: {start} -> {fp32}");
    let rel = (bf16 - fp32).abs() / fp32;
    eprintln!(
        "test NLL: start {start:.3}, fp32 {fp32:.4}, bf16 {bf16:.4} ({:.3} %)",
        100.0 * rel
    );
    assert!(
        rel <= 0.01,
        "bf16 {bf16} vs fp32 {fp32} nats/image: {:.2} % apart",
        100.0 * rel
    );
    assert_ne!(bf16, fp32, "bf16 training ran at fp32");
}
