//! The Row LSTM and Diagonal BiLSTM layers and models (MODELS.md, "Row LSTM layer",
//! "Diagonal BiLSTM layer", "What must be tested"): each layer, every parameter randomised
//! (masked taps included), against its float64 reference (tests/common/reference/layers.rs,
//! written from the spec) and its gradients against central differences of that reference;
//! fused and unfused recurrences agree on layers and whole models; a zero output layer gives
//! exactly 8 bits/dim; tiny models learn binarized MNIST. Tolerances:
//! tests/common/recurrent.rs.
//!
//! The recurrence ops alone are in tests/recurrent_ops.rs, causality and receptive fields in
//! tests/recurrent_causality.rs. Run with `cargo test --release --test recurrent_layers`.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Recurrence;
use pixelrnn::data::{load_dataset, Images};
use pixelrnn::eval::evaluate;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::optim::OptimConfig;
use pixelrnn::run_dir::read_metrics;
use pixelrnn::train::{train, TrainConfig};
use rand::Rng;

use common::helpers::{
    assert_grad, assert_rel, assert_same, dot, f64s, finite_differences, host, rng, t, uniform,
};
use common::layers::{groups_of, TestLayer};
use common::models::{random_input, random_model, zero_output_layer};
use common::recurrent::{FD_EPS, FWD_TOL, GRAD_TOL, RECS, REC_TOL};
use common::reference::layers::{DIAG_PARAMS, ROW_PARAMS};
use common::reference::Dims;

// ---------------------------------------------------------------------------------------------
// The layers
// ---------------------------------------------------------------------------------------------

/// C = 1 and C = 3 with h = 4 (2h = 8 features: groups do not divide it), odd 5 x 7 images.
fn layer_cases() -> Vec<(TestLayer, Dims, &'static str)> {
    let mut v = Vec::new();
    for (groups, seed) in [(1usize, 100u64), (3, 200)] {
        let hidden = 4;
        let d = Dims::new(2, 5, 7, 2 * hidden);
        v.push((TestLayer::row(hidden, 3, groups, seed), d, "row"));
        v.push((TestLayer::diag(hidden, groups, seed + 50), d, "diag"));
    }
    // A 5-wide Row LSTM kernel and a 1-column / 1-row image.
    v.push((
        TestLayer::row(3, 5, 3, 300),
        Dims::new(1, 4, 6, 6),
        "row k=5",
    ));
    v.push((
        TestLayer::diag(3, 3, 310),
        Dims::new(1, 4, 1, 6),
        "diag 4x1",
    ));
    v.push((
        TestLayer::diag(3, 1, 320),
        Dims::new(1, 2, 5, 6),
        "diag 2x5",
    ));
    v
}

#[test]
fn layers_match_f64_reference() {
    for (mut layer, d, name) in layer_cases() {
        let p = layer.params_f64();
        let x = uniform(&mut rng(7), d.len(), -1.0, 1.0);
        let want = layer.reference(&p, &f64s(&x), d);
        for rec in RECS {
            let got = layer.run(&x, d, None, rec).y;
            let what = format!("{name} layer C={} {d:?} {rec:?}", groups_of(&layer));
            assert_rel(&what, &got, &want, FWD_TOL);
            // The residual alone would already be close to x: the recurrent branch must match
            // on its own too.
            let branch_got: Vec<f32> = got.iter().zip(&x).map(|(y, x)| y - x).collect();
            let branch_want: Vec<f64> = want.iter().zip(&x).map(|(y, &x)| y - x as f64).collect();
            assert_rel(
                &format!("{what}: branch"),
                &branch_got,
                &branch_want,
                FWD_TOL,
            );
        }
    }
}

#[test]
fn layer_gradients_match_finite_differences() {
    for (mut layer, d, name) in layer_cases() {
        let p = layer.params_f64();
        let mut r = rng(8);
        let x = uniform(&mut r, d.len(), -1.0, 1.0);
        let dy = uniform(&mut r, d.len(), -1.0, 1.0);
        let dy64 = f64s(&dy);
        let mut vars = vec![f64s(&x)];
        vars.extend(p);
        let fd = finite_differences(&vars, FD_EPS, &|v| {
            dot(&layer.reference(&v[1..], &v[0], d), &dy64)
        });
        let suffixes: Vec<&str> = match layer {
            TestLayer::Row { .. } => ROW_PARAMS.to_vec(),
            TestLayer::Diag { .. } => DIAG_PARAMS.to_vec(),
        };
        for rec in RECS {
            let run = layer.run(&x, d, Some(&dy), rec);
            let what = format!("{name} layer C={} {d:?} {rec:?}", groups_of(&layer));
            assert_grad(&format!("{what}: dx"), &run.dx, &fd[0], GRAD_TOL);
            for (i, g) in run.grads.iter().enumerate() {
                assert_grad(
                    &format!("{what}: d {}", suffixes[i]),
                    g,
                    &fd[i + 1],
                    GRAD_TOL,
                );
            }
        }
    }
}

#[test]
fn fused_and_unfused_layers_agree() {
    for (mut layer, d, name) in layer_cases() {
        let mut r = rng(9);
        let x = uniform(&mut r, d.len(), -1.0, 1.0);
        let dy = uniform(&mut r, d.len(), -1.0, 1.0);
        let a = layer.run(&x, d, Some(&dy), Recurrence::Fused);
        let bb = layer.run(&x, d, Some(&dy), Recurrence::Unfused);
        let what = format!("{name} layer C={} {d:?}", groups_of(&layer));
        assert_same(&format!("{what}: y"), &a.y, &bb.y, REC_TOL);
        assert_same(&format!("{what}: dx"), &a.dx, &bb.dx, REC_TOL);
        for (i, (ga, gb)) in a.grads.iter().zip(&bb.grads).enumerate() {
            assert_same(&format!("{what}: grad {i}"), ga, gb, REC_TOL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Whole models
// ---------------------------------------------------------------------------------------------

/// Logits, input gradient and every parameter gradient of one forward/backward.
fn model_run(
    model: &mut Model<CpuBackend>,
    x: &[f32],
    dlogits_seed: u64,
) -> (Vec<f32>, Vec<f32>, Vec<Vec<f32>>) {
    let b = CpuBackend::new();
    let cfg = model.config.clone();
    let shape = [x.len() / cfg.dims(), cfg.height, cfg.width, cfg.channels];
    let (logits, cache) = model.forward(&b, &t(&b, &shape, x)).unwrap();
    let dl = uniform(&mut rng(dlogits_seed), logits.numel(), -1.0, 1.0);
    let dlt = t(&b, &logits.shape.clone(), &dl);
    let dx = model.backward(&b, cache, &dlt, true).unwrap().unwrap();
    let grads = model
        .params_mut()
        .iter()
        .map(|p| host(&b, &p.grad))
        .collect();
    (host(&b, &logits), host(&b, &dx), grads)
}

#[test]
fn fused_and_unfused_models_agree() {
    for kind in [ModelKind::RowLstm, ModelKind::DiagBiLstm] {
        for (c, binary) in [(1, true), (3, false)] {
            let cfg = ModelConfig::plain(kind, (5, 6, c), binary, (2, 4, 8));
            let mut model = random_model(&cfg, 50);
            let x = random_input(2, &cfg, 51);
            model.recurrence = Recurrence::Fused;
            let a = model_run(&mut model, &x, 52);
            model.recurrence = Recurrence::Unfused;
            let u = model_run(&mut model, &x, 52);
            let what = format!("{kind:?} C={c}");
            assert_same(&format!("{what}: logits"), &a.0, &u.0, REC_TOL);
            assert_same(&format!("{what}: input gradient"), &a.1, &u.1, REC_TOL);
            let names: Vec<String> = model.params_mut().iter().map(|p| p.name.clone()).collect();
            for ((ga, gu), name) in a.2.iter().zip(&u.2).zip(&names) {
                assert_same(&format!("{what}: d {name}"), ga, gu, REC_TOL);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Likelihood and learning
// ---------------------------------------------------------------------------------------------

#[test]
fn zero_last_layer_is_exactly_eight_bits_per_dim() {
    let b = CpuBackend::new();
    for kind in [ModelKind::RowLstm, ModelKind::DiagBiLstm] {
        for c in [1, 3] {
            let cfg = ModelConfig::plain(kind, (5, 4, c), false, (2, 4, 8));
            let mut model = random_model(&cfg, 90);
            zero_output_layer(&mut model);
            let mut r = rng(91);
            let px = (0..6 * cfg.dims())
                .map(|_| r.random_range(0..256) as u8)
                .collect();
            let imgs = Images::new(6, 5, 4, c, false, px).unwrap();
            let e = evaluate(&b, &model, &imgs, 4, None, false).unwrap();
            assert!(
                (e.bits_per_dim - 8.0).abs() < 1e-6,
                "{kind:?} C={c}: {} bits/dim",
                e.bits_per_dim
            );
        }
    }
}

/// A tiny model (2 layers, h = 8, D = 16) trained for 150 steps of 16 binarized MNIST images;
/// the test NLL on 100 test images must fall below 0.4 of its value at step 0 (seen: 546 -> 80
/// nats for the Row LSTM, 544 -> 77 for the Diagonal BiLSTM; the data is thresholded MNIST,
/// so these are not the paper's numbers).
fn learns_binarized_mnist(kind: ModelKind) {
    let b = CpuBackend::new();
    let data = load_dataset("binarized-mnist", false).unwrap();
    let steps = 150;
    let cfg = TrainConfig {
        model: ModelConfig::plain(kind, (28, 28, 1), true, (2, 8, 16)),
        data: "binarized-mnist".into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            lr: 3e-3,
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 16,
        steps,
        eval_every: steps,
        eval_images: Some(100),
        seed: 5,
        recurrence: Recurrence::Fused,
        precision: Default::default(),
        stage: None,
    };
    let dir = tempfile::tempdir().unwrap();
    train(&b, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    let m = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(m.iter().map(|m| m.step).collect::<Vec<_>>(), vec![0, steps]);
    let (start, end) = (m[0].test_nll_nats, m[1].test_nll_nats);
    eprintln!("{kind:?}: test NLL {start:.1} -> {end:.1} nats/image in {steps} steps");
    // Untrained: about 784 ln 2 = 543 nats or worse.
    assert!(start > 400.0, "{kind:?}: untrained model scores {start}");
    assert!(end < 0.4 * start, "{kind:?}: test NLL {start} -> {end}");
}

#[test]
fn row_lstm_learns_binarized_mnist() {
    learns_binarized_mnist(ModelKind::RowLstm);
}

#[test]
fn diag_bilstm_learns_binarized_mnist() {
    learns_binarized_mnist(ModelKind::DiagBiLstm);
}
