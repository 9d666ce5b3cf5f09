//! Every model with the logistic mixture likelihood: causality by perturbation (a pixel's whole
//! output depends on no sub-pixel of itself or of later pixels), cached and naive sampling
//! giving the same images, and learning on the embedded MNIST kept at 256 levels.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::data::load_dataset;
use pixelrnn::models::{Likelihood, Model, ModelConfig, ModelKind, MultiScaleConfig};
use pixelrnn::optim::OptimConfig;
use pixelrnn::run_dir::read_metrics;
use pixelrnn::sample::{sample, Method, SampleOptions};
use pixelrnn::train::{train, TrainConfig};

use common::helpers::{host, t};
use common::models::{add_noise, random_input, random_model};

const MIXTURE: Likelihood = Likelihood::LogisticMixture { mixtures: 3 };

/// A small mixture model of `kind` on `side x side x c` images (multi-scale: a Row LSTM base at
/// half the side).
fn config(kind: ModelKind, side: usize, c: usize) -> ModelConfig {
    ModelConfig {
        likelihood: MIXTURE,
        multiscale: (kind == ModelKind::MultiScale).then_some(MultiScaleConfig {
            base: ModelKind::RowLstm,
            scale: side / 2,
            cond_features: 3,
        }),
        ..ModelConfig::plain(kind, (side, side, c), false, (2, 4, 8))
    }
}

const KINDS: [ModelKind; 5] = [
    ModelKind::PixelCnn,
    ModelKind::RowLstm,
    ModelKind::DiagBiLstm,
    ModelKind::MultiScale,
    ModelKind::GatedPixelCnn,
];

/// Perturbs every input sub-pixel in turn: the head outputs of every pixel up to and including
/// its pixel are unchanged bit for bit (the mixture predicts whole pixels, so even the pixel's
/// own R may not reach its G or B parameters), and some later pixel's change.
fn assert_pixel_causal(model: &Model<CpuBackend>, what: &str) {
    let b = CpuBackend::new();
    let cfg = &model.config;
    let (c, per) = (cfg.channels, cfg.logits_per_position());
    let pixels = cfg.height * cfg.width;
    let shape = [1, cfg.height, cfg.width, c];
    let x = random_input(1, cfg, 5);
    // A multi-scale model is its stage 2 here, given a fixed small image.
    let xs = cfg.cond_stride().map(|r| {
        let s = cfg.height / r;
        t(&b, &[1, s, s, c], &random_input(1, cfg, 6)[..s * s * c])
    });
    let run = |x: &[f32]| {
        host(
            &b,
            &model
                .forward_cond(&b, &t(&b, &shape, x), xs.as_ref())
                .unwrap()
                .0,
        )
    };
    let base = run(&x);
    for s in 0..cfg.dims() {
        let p = s / c;
        let mut xp = x.clone();
        xp[s] += 1.5;
        let out = run(&xp);
        assert_eq!(
            base[..(p + 1) * per],
            out[..(p + 1) * per],
            "{what}: an output at or before pixel {p} changed when input sub-pixel {s} was perturbed"
        );
        if p + 1 < pixels {
            assert!(
                base[(p + 1) * per..] != out[(p + 1) * per..],
                "{what}: no later output depends on input sub-pixel {s}"
            );
        }
    }
}

#[test]
fn every_model_is_causal_with_the_mixture() {
    for kind in KINDS {
        for c in [1, 3] {
            let model = random_model(&config(kind, 4, c), 11);
            assert_pixel_causal(&model, &format!("{kind:?} C={c}"));
        }
    }
}

/// The softmax models' channel-group masks would let a pixel's R reach its own G and B
/// parameters: the probe above must see that (so it can fail).
#[test]
fn the_probe_catches_softmax_masks_under_a_mixture_head() {
    let mut cfg = config(ModelKind::PixelCnn, 4, 3);
    // Build with C groups (the softmax's masks), then put the mixture head's width on it.
    cfg.likelihood = Likelihood::Softmax;
    let mut model = random_model(&cfg, 12);
    let mixture = random_model(&config(ModelKind::PixelCnn, 4, 3), 12);
    model.head = mixture.head;
    model.config.likelihood = MIXTURE;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_pixel_causal(&model, "softmax masks")
    }));
    assert!(
        caught.is_err(),
        "the probe passed a model whose masks leak within a pixel"
    );
}

/// Cached and naive sampling draw the same images for every model (C = 1 and 3).
#[test]
fn cached_equals_naive_for_every_model() {
    let b = CpuBackend::new();
    for kind in KINDS {
        for c in [1, 3] {
            let cfg = config(kind, 4, c);
            let mut model = Model::new(&b, cfg, 21).unwrap();
            add_noise(model.params_mut(), 22, 0.3);
            let run = |method| {
                let opts = SampleOptions {
                    method,
                    ..SampleOptions::new(3, 7)
                };
                sample(&b, &model, &opts, &|_| {}).unwrap()
            };
            let (cached, naive) = (run(Method::Cached), run(Method::Naive));
            assert_eq!(cached.pixels, naive.pixels, "{kind:?} C={c}");
            let distinct: std::collections::BTreeSet<u8> = cached.pixels.iter().copied().collect();
            assert!(
                distinct.len() > 3,
                "{kind:?} C={c}: degenerate samples {distinct:?}"
            );
        }
    }
}

/// A few hundred steps of a small PixelCNN with the mixture on the embedded MNIST at 256 grey
/// levels lower the test NLL far below its start.
#[test]
fn training_on_mnist_lowers_the_test_nll() {
    let be = CpuBackend::new();
    let data = load_dataset("mnist", false).unwrap();
    let steps = 300;
    let cfg = TrainConfig {
        model: ModelConfig {
            likelihood: Likelihood::LogisticMixture { mixtures: 5 },
            ..ModelConfig::plain(ModelKind::PixelCnn, (28, 28, 1), false, (2, 8, 16))
        },
        data: "mnist".into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            lr: 3e-3,
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 8,
        steps,
        eval_every: steps,
        eval_images: Some(100),
        seed: 1,
        recurrence: Default::default(),
        precision: Default::default(),
        stage: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    train(&be, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    let m = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let (a, z) = (&m[0], &m[m.len() - 1]);
    eprintln!(
        "logistic mixture K5: {:.1} -> {:.1} nats/image ({:.3} bits/dim) in {:.1} s",
        a.test_nll_nats,
        z.test_nll_nats,
        z.test_bits_per_dim,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        z.test_nll_nats < 0.6 * a.test_nll_nats,
        "{} -> {}",
        a.test_nll_nats,
        z.test_nll_nats
    );
}

/// A multi-scale model with the mixture: both stages score with it (stage 2 leaves the small
/// image's pixels unscored), the parts add up, and one training step gives both stages' heads
/// finite, non-zero gradients.
#[test]
fn multiscale_stages_both_use_the_mixture() {
    let b = CpuBackend::new();
    let cfg = config(ModelKind::MultiScale, 4, 3);
    let mut model = Model::new(&b, cfg.clone(), 31).unwrap();
    assert_eq!(model.stage1.as_ref().unwrap().config.likelihood, MIXTURE);
    let px: Vec<u8> = (0..2 * cfg.dims()).map(|i| (i * 37 % 256) as u8).collect();
    let imgs = pixelrnn::data::Images::new(2, 4, 4, 3, false, px).unwrap();
    let scored = model.score(&b, &imgs, &[0, 1], true).unwrap();
    let [s1, s2] = scored.stages.unwrap();
    assert!((s1 + s2 - scored.total).abs() < 1e-9 * scored.total.abs());
    let per: f64 = scored.per_subpixel.unwrap().iter().map(|&v| v as f64).sum();
    assert!(
        (per - scored.total).abs() < 1e-4 * scored.total,
        "{per} vs {}",
        scored.total
    );
    model
        .train_batch(&b, &imgs, &[0, 1], 1e-2, pixelrnn::models::Stages::Both)
        .unwrap();
    for p in model.params_mut() {
        if p.name.ends_with("head.logits.weight") {
            let g = host(&b, &p.grad);
            assert!(
                g.iter().all(|v| v.is_finite()) && g.iter().any(|&v| v != 0.0),
                "{}",
                p.name
            );
        }
    }
}
