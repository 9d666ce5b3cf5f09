//! Precision end to end in the library (issue 18 item 4): a bf16 run of a small PixelCNN on the
//! embedded binarized MNIST reaches the fp32 run's test NLL within 1 % after the same steps from
//! the same seed (CPU), and causality holds exactly at every precision (perturbation: the mask
//! guarantees it whatever the rounding), on the CPU and on the emulated CUDA backend.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, EmuOptions, Emulator};
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::data::load_dataset;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::optim::OptimConfig;
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

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

/// Overwrites every parameter (masked taps included) with uniform values in [-0.6, 0.6): the
/// masks must hold structurally.
fn randomize<B: Backend>(be: &B, model: &mut Model<B>, seed: u64) {
    let mut r = Pcg64::seed_from_u64(seed);
    for p in model.params_mut() {
        let v: Vec<f32> = (0..p.value.numel())
            .map(|_| r.random_range(-0.6f32..0.6))
            .collect();
        p.value = Tensor::from_slice(be, &p.value.shape.clone(), &v).unwrap();
    }
}

/// Perturbs each input sub-pixel p in turn; no output at or before p may change (bit for bit),
/// and some later one must, at `precision` on `be`.
fn assert_causal_at<B: Backend>(be: &B, precision: Precision, what: &str) {
    be.set_precision(precision);
    let cfg = ModelConfig::plain(ModelKind::PixelCnn, (5, 5, 3), false, (1, 4, 8));
    let mut model = Model::new(be, cfg.clone(), 1).unwrap();
    randomize(be, &mut model, 2);
    let mut r = Pcg64::seed_from_u64(3);
    let x: Vec<f32> = (0..cfg.dims())
        .map(|_| r.random_range(0.0f32..1.0))
        .collect();
    let shape = [1, cfg.height, cfg.width, cfg.channels];
    let run = |x: &[f32]| {
        let t = Tensor::from_slice(be, &shape, x).unwrap();
        model.forward(be, &t).unwrap().0.to_vec(be).unwrap()
    };
    let base = run(&x);
    let (c, per) = (cfg.channels, cfg.logits_per_position());
    let of = |l: &[f32], s: usize| -> Vec<u32> {
        (0..per / c)
            .map(|k| l[(s / c) * per + k * c + s % c].to_bits())
            .collect()
    };
    let dims = cfg.dims();
    for p in 0..dims {
        let mut xp = x.clone();
        xp[p] += 1.5;
        let out = run(&xp);
        for q in 0..=p {
            assert_eq!(
                of(&base, q),
                of(&out, q),
                "{what} at {precision}: output {q} changed when input {p} was perturbed"
            );
        }
        if p + c < dims {
            assert!(
                (p + 1..dims).any(|q| of(&base, q) != of(&out, q)),
                "{what} at {precision}: no later output depends on input {p}"
            );
        }
    }
    be.set_precision(Precision::Fp32);
}

#[test]
fn causal_at_every_precision_on_the_cpu() {
    let b = CpuBackend::new();
    for p in Precision::ALL {
        assert_causal_at(&b, p, "cpu");
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
        assert_causal_at(&g, p, "emulator");
    }
}
