//! Class conditioning (`--condition class`) for every model: PixelCNN, Row LSTM, Diagonal
//! BiLSTM, Gated PixelCNN and both stages of Multi-Scale (a stage 2 is tested as the
//! conditioned base model it is). Every parameter, the class tables included, is randomised.
//!
//! - causality holds with a class: perturbing an input sub-pixel changes no output at or
//!   before it (exactly), some later one does;
//! - changing the class changes the output (the first pixel's distribution included);
//! - zero class tables give logits bit-identical to the unconditional model with the same
//!   weights (and nonzero tables do not: the check can fail);
//! - the class tables' gradients against central finite differences;
//! - cached and naive conditional sampling draw the same images, and the class matters;
//! - a model without labels, or a class out of range, is a clear error.
//!
//! Run with `cargo test --release --test conditional`.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::models::{Model, ModelConfig, ModelKind, MultiScaleConfig};
use pixelrnn::sample::{sample, sample_multiscale, Method, SampleOptions};
use pixelrnn::tensor::Tensor;

use common::helpers::{finite_differences, host, rng, t, uniform};
use common::models::{logits_of, random_model};

const K: usize = 3;

/// `kind` on `n x n x c` images with `K` classes; `stage2`: conditioned on the image at
/// stride 2 (a multi-scale stage 2).
fn config(kind: ModelKind, n: usize, c: usize, binary: bool, stage2: bool) -> ModelConfig {
    ModelConfig {
        classes: Some(K),
        multiscale: stage2.then_some(MultiScaleConfig {
            base: kind,
            scale: n / 2,
            cond_features: 3,
        }),
        ..ModelConfig::plain(kind, (n, n, c), binary, (2, 4, 8))
    }
}

/// Every configuration under test, with a name.
fn configs() -> Vec<(String, ModelConfig)> {
    let mut v = Vec::new();
    for (kind, c, binary) in [
        (ModelKind::PixelCnn, 3, false),
        (ModelKind::PixelCnn, 1, true),
        (ModelKind::RowLstm, 3, false),
        (ModelKind::RowLstm, 1, true),
        (ModelKind::DiagBiLstm, 3, false),
        (ModelKind::DiagBiLstm, 1, true),
        (ModelKind::GatedPixelCnn, 3, false),
        (ModelKind::GatedPixelCnn, 1, true),
    ] {
        v.push((
            format!("{} C={c}", kind.name()),
            config(kind, 5, c, binary, false),
        ));
    }
    for kind in [
        ModelKind::PixelCnn,
        ModelKind::RowLstm,
        ModelKind::DiagBiLstm,
    ] {
        let name = format!("{} stage 2", kind.name());
        v.push((name, config(kind, 4, 1, false, true)));
    }
    v
}

/// Logits of images `x` (`n` of them) of classes `classes` (and a stage 2's small images).
fn logits(m: &Model<CpuBackend>, x: &[f32], xs: Option<&[f32]>, classes: &[usize]) -> Vec<f32> {
    let be = CpuBackend::new();
    let c = &m.config;
    let n = classes.len();
    let x = t(&be, &[n, c.height, c.width, c.channels], x);
    let xs = xs.map(|s| t(&be, &[n, c.height / 2, c.width / 2, c.channels], s));
    let labels = m.class_tensor(&be, classes).unwrap();
    host(
        &be,
        &m.forward_with(&be, &x, xs.as_ref(), Some(&labels))
            .unwrap()
            .0,
    )
}

/// Inputs for one image: the image and, for a stage 2, its small image.
fn inputs(cfg: &ModelConfig, n: usize, seed: u64) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut r = rng(seed);
    let bin = |v: Vec<f32>| -> Vec<f32> {
        if cfg.binary {
            v.iter().map(|&x| f32::from(x > 0.0)).collect()
        } else {
            v
        }
    };
    let x = bin(uniform(&mut r, n * cfg.dims(), -1.0, 1.0));
    let xs = cfg
        .multiscale
        .map(|_| bin(uniform(&mut r, n * cfg.dims() / 4, -1.0, 1.0)));
    (x, xs)
}

#[test]
fn causal_with_a_class_every_model() {
    for (name, cfg) in configs() {
        let m = random_model(&cfg, 10);
        let (x, xs) = inputs(&cfg, 1, 11);
        for class in [0, 2] {
            let run = |x: &[f32]| logits(&m, x, xs.as_deref(), &[class]);
            let base = run(&x);
            let dims = cfg.dims();
            for p in 0..dims {
                let mut xp = x.clone();
                xp[p] = if cfg.binary { 1.0 - xp[p] } else { xp[p] + 1.5 };
                let out = run(&xp);
                for q in 0..=p {
                    assert_eq!(
                        logits_of(&base, &cfg, q),
                        logits_of(&out, &cfg, q),
                        "{name} class {class}: output {q} changed when input {p} was perturbed"
                    );
                }
                if p + cfg.channels < dims {
                    assert!(
                        (p + 1..dims)
                            .any(|q| logits_of(&base, &cfg, q) != logits_of(&out, &cfg, q)),
                        "{name} class {class}: no later output depends on input {p}"
                    );
                }
            }
        }
    }
}

#[test]
fn changing_the_class_changes_the_output() {
    for (name, cfg) in configs() {
        let m = random_model(&cfg, 20);
        let (x, xs) = inputs(&cfg, 1, 21);
        let a = logits(&m, &x, xs.as_deref(), &[0]);
        let b = logits(&m, &x, xs.as_deref(), &[1]);
        let per = cfg.logits_per_position();
        // The first position (which sees no pixel) and most others: a position whose head
        // ReLUs are all dead gives its bias whatever the class.
        let positions = cfg.height * cfg.width;
        let differ = (0..positions)
            .filter(|&pos| a[pos * per..(pos + 1) * per] != b[pos * per..(pos + 1) * per])
            .count();
        assert!(
            a[..per] != b[..per],
            "{name}: the first pixel ignores the class"
        );
        assert!(
            differ * 4 >= positions * 3,
            "{name}: {differ} of {positions} positions differ"
        );
        // Images of a batch are conditioned on their own classes.
        let (x2, xs2) = (
            [x.clone(), x.clone()].concat(),
            xs.as_ref().map(|s| [s.clone(), s.clone()].concat()),
        );
        let ab = logits(&m, &x2, xs2.as_deref(), &[0, 1]);
        assert_eq!(ab, [a.clone(), b].concat(), "{name}: batch of classes 0, 1");
    }
}

#[test]
fn zero_class_tables_give_the_unconditional_logits_bit_for_bit() {
    let be = CpuBackend::new();
    for (name, cfg) in configs() {
        let plain_cfg = ModelConfig {
            classes: None,
            ..cfg.clone()
        };
        let mut plain = random_model(&plain_cfg, 30);
        let mut cond = Model::new(&be, cfg.clone(), 30).unwrap();
        let values: std::collections::HashMap<String, Tensor<CpuBackend>> = plain
            .params_mut()
            .into_iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect();
        let mut tables = 0;
        for p in cond.params_mut() {
            match values.get(&p.name) {
                Some(v) => p.value = v.clone(),
                None => {
                    assert!(p.name.ends_with("class_bias"), "{name}: extra {}", p.name);
                    let r = uniform(&mut rng(tables), p.value.numel(), -1.0, 1.0);
                    p.value = t(&be, &p.value.shape.clone(), &r);
                    tables += 1;
                }
            }
        }
        // One table per layer and direction, plus the input layer's (Gated PixelCNN has no
        // input layer: one table per gated layer, shared by its two stacks).
        let (per_layer, input) = match cfg.kind {
            ModelKind::DiagBiLstm => (2, 1),
            ModelKind::GatedPixelCnn => (1, 0),
            _ => (1, 1),
        };
        assert_eq!(tables, input + per_layer * cfg.layers as u64, "{name}");
        let (x, xs) = inputs(&cfg, 2, 31);
        let xt = t(&be, &[2, cfg.height, cfg.width, cfg.channels], &x);
        let xst = xs
            .as_ref()
            .map(|s| t(&be, &[2, cfg.height / 2, cfg.width / 2, cfg.channels], s));
        let want = host(&be, &plain.forward_cond(&be, &xt, xst.as_ref()).unwrap().0);
        // Random tables: different logits (the comparison can fail).
        assert_ne!(logits(&cond, &x, xs.as_deref(), &[1, 2]), want, "{name}");
        for p in cond.params_mut() {
            if p.name.ends_with("class_bias") {
                p.value = Tensor::zeros(&be, &p.value.shape.clone()).unwrap();
            }
        }
        let got = logits(&cond, &x, xs.as_deref(), &[1, 2]);
        let same = got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{name}: zero class tables change the logits");
    }
}

#[test]
fn class_table_gradients_match_finite_differences() {
    let be = CpuBackend::new();
    for (name, cfg) in configs() {
        let mut m = random_model(&cfg, 40);
        let (x, xs) = inputs(&cfg, 2, 41);
        let classes = [2, 0];
        let n = classes.len();
        let xt = t(&be, &[n, cfg.height, cfg.width, cfg.channels], &x);
        let xst = xs
            .as_ref()
            .map(|s| t(&be, &[n, cfg.height / 2, cfg.width / 2, cfg.channels], s));
        let labels = m.class_tensor(&be, &classes).unwrap();
        let (l, cache) = m
            .forward_with(&be, &xt, xst.as_ref(), Some(&labels))
            .unwrap();
        let g = uniform(&mut rng(42), l.numel(), -1.0, 1.0);
        m.backward(&be, cache, &t(&be, &l.shape, &g), false)
            .unwrap();
        let tables: Vec<(String, Vec<f32>, Vec<f64>)> = m
            .params_mut()
            .into_iter()
            .filter(|p| p.name.ends_with("class_bias"))
            .map(|p| {
                let v = host(&be, &p.value).iter().map(|&v| v as f64).collect();
                (p.name.clone(), host(&be, &p.grad), v)
            })
            .collect();
        for (pname, grad, value) in tables {
            let loss = |v: &[Vec<f64>]| -> f64 {
                let mut m2 = random_model(&cfg, 40);
                for p in m2.params_mut() {
                    if p.name == pname {
                        let f: Vec<f32> = v[0].iter().map(|&x| x as f32).collect();
                        p.value = t(&be, &p.value.shape.clone(), &f);
                    }
                }
                let out = logits(&m2, &x, xs.as_deref(), &classes);
                out.iter().zip(&g).map(|(&a, &b)| a as f64 * b as f64).sum()
            };
            // Central differences at two steps: where they disagree the loss has a ReLU kink
            // within a step of the point (FD is meaningless there), elsewhere the gradient
            // must match. Most entries are smooth (an input-layer table moves every ReLU of the model,
            // so a third may not be); the count is asserted.
            let fd = finite_differences(std::slice::from_ref(&value), 4e-3, &loss);
            let fd2 = finite_differences(&[value], 2e-3, &loss);
            let mut smooth = 0;
            for (i, ((&g, &a), &b)) in grad.iter().zip(&fd[0]).zip(&fd2[0]).enumerate() {
                let scale = a.abs().max(1.0);
                if (a - b).abs() > 5e-3 * scale {
                    continue;
                }
                smooth += 1;
                assert!(
                    (g as f64 - b).abs() <= 1e-2 * scale,
                    "{name} {pname}[{i}]: gradient {g}, finite differences {b}"
                );
            }
            assert!(
                smooth * 3 >= grad.len() * 2,
                "{name} {pname}: {smooth} of {} smooth",
                grad.len()
            );
            // The class without images (1) has a structurally zero gradient row.
            // (perturbing it changes nothing: its differences are exactly zero).
            let f = grad.len() / K;
            assert!(
                fd[0][f..2 * f].iter().all(|&v| v == 0.0),
                "{name} {pname}: class 1 fd"
            );
            assert!(
                grad[f..2 * f].iter().all(|&v| v == 0.0),
                "{name} {pname}: class 1"
            );
            assert!(
                grad[..f].iter().any(|&v| v != 0.0),
                "{name} {pname}: class 0"
            );
        }
    }
}

#[test]
fn cached_and_naive_conditional_sampling_agree() {
    let be = CpuBackend::new();
    let mut plain = configs();
    plain.retain(|(_, c)| c.multiscale.is_none());
    for (name, cfg) in plain {
        let m = random_model(&cfg, 50);
        let o = |method, classes: Vec<usize>| SampleOptions {
            method,
            classes: Some(classes),
            ..SampleOptions::new(3, 51)
        };
        let cached = sample(&be, &m, &o(Method::Cached, vec![0, 1, 2]), &|_| {}).unwrap();
        let naive = sample(&be, &m, &o(Method::Naive, vec![0, 1, 2]), &|_| {}).unwrap();
        assert_eq!(cached.pixels, naive.pixels, "{name}");
        // Same draws, other classes: other images.
        let other = sample(&be, &m, &o(Method::Cached, vec![2, 2, 2]), &|_| {}).unwrap();
        assert_ne!(
            cached.pixels, other.pixels,
            "{name}: the class changes nothing"
        );
    }
    // Multi-scale, both stages conditional.
    for base in [ModelKind::PixelCnn, ModelKind::DiagBiLstm] {
        let cfg = ModelConfig {
            kind: ModelKind::MultiScale,
            ..config(base, 4, 1, false, true)
        };
        let mut m = {
            let mut m = Model::new(&be, cfg.clone(), 52).unwrap();
            common::models::randomize(m.params_mut(), 53, 0.5);
            m
        };
        let o = |method| SampleOptions {
            method,
            classes: Some(vec![1, 0]),
            ..SampleOptions::new(2, 54)
        };
        let (sc, fc) = sample_multiscale(&be, &m, &o(Method::Cached), &|_| {}).unwrap();
        let (sn, f_n) = sample_multiscale(&be, &m, &o(Method::Naive), &|_| {}).unwrap();
        assert_eq!(
            (sc.pixels, fc.pixels),
            (sn.pixels, f_n.pixels),
            "multiscale {}",
            base.name()
        );
        assert!(m
            .params_mut()
            .iter()
            .any(|p| p.name.starts_with("stage1.") && p.name.ends_with("class_bias")));
    }
}

#[test]
fn missing_labels_and_bad_classes_are_clear_errors() {
    let be = CpuBackend::new();
    let cfg = config(ModelKind::PixelCnn, 4, 1, false, false);
    let m = random_model(&cfg, 60);
    let x = t(&be, &[1, 4, 4, 1], &[0.0; 16]);
    let err = m.forward(&be, &x).err().unwrap().to_string();
    assert!(err.contains("class-conditional"), "{err}");
    let err = m.class_tensor(&be, &[3]).err().unwrap().to_string();
    assert!(
        err.contains("class 3 is out of range: the model has 3 classes"),
        "{err}"
    );
    let images = pixelrnn::data::Images::new(1, 4, 4, 1, false, vec![0; 16]).unwrap();
    let err = m.labels(&be, &images, &[0]).err().unwrap().to_string();
    assert!(err.contains("no class labels"), "{err}");
    let err = m
        .labels(&be, &images.clone().with_labels(vec![7]).unwrap(), &[0])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("class 7 is out of range"), "{err}");
    // Sampling: classes required, counted and in range.
    let o = SampleOptions::new(2, 0);
    assert!(sample(&be, &m, &o, &|_| {}).is_err());
    let o = SampleOptions {
        classes: Some(vec![0]),
        ..SampleOptions::new(2, 0)
    };
    assert!(sample(&be, &m, &o, &|_| {}).is_err());
    let o = SampleOptions {
        classes: Some(vec![0, 3]),
        ..SampleOptions::new(2, 0)
    };
    let err = sample(&be, &m, &o, &|_| {}).err().unwrap().to_string();
    assert!(err.contains("out of range"), "{err}");
    // An unconditional model takes no classes.
    let plain = random_model(
        &ModelConfig {
            classes: None,
            ..cfg
        },
        61,
    );
    let o = SampleOptions {
        classes: Some(vec![0, 0]),
        ..SampleOptions::new(2, 0)
    };
    assert!(sample(&be, &plain, &o, &|_| {}).is_err());
}

#[test]
fn labels_follow_their_images_into_data_parallel_shards() {
    // A batch split into two shards (as the data-parallel step splits it: index slices of
    // the same images) gives the class tables the gradient of the whole batch.
    let be = CpuBackend::new();
    let cfg = config(ModelKind::RowLstm, 4, 1, true, false);
    let mut m = random_model(&cfg, 70);
    let (x, _) = inputs(&cfg, 4, 71);
    let px: Vec<u8> = x.iter().map(|&v| v as u8).collect();
    let images = pixelrnn::data::Images::new(4, 4, 4, 1, true, px)
        .unwrap()
        .with_labels(vec![2, 0, 2, 1])
        .unwrap();
    let grads = |m: &mut Model<CpuBackend>| -> Vec<(String, Vec<f32>)> {
        m.params_mut()
            .into_iter()
            .filter(|p| p.name.ends_with("class_bias"))
            .map(|p| (p.name.clone(), host(&be, &p.grad)))
            .collect()
    };
    let stages = pixelrnn::models::Stages::Both;
    m.train_batch(&be, &images, &[3, 1, 0, 2], 1.0, stages)
        .unwrap();
    let whole = grads(&mut m);
    m.train_batch(&be, &images, &[3, 1], 1.0, stages).unwrap();
    let a = grads(&mut m);
    m.train_batch(&be, &images, &[0, 2], 1.0, stages).unwrap();
    let b = grads(&mut m);
    for ((name, w), ((_, a), (_, b))) in whole.iter().zip(a.iter().zip(&b)) {
        let sum: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x + y) as f64).collect();
        common::helpers::assert_rel(name, w, &sum, 1e-5);
    }
    // And the shards see their own labels: the shard of images 3 and 1 (classes 1 and 0)
    // leaves class 2's rows untouched.
    let f = a[0].1.len() / K;
    assert!(a[0].1[2 * f..].iter().all(|&v| v == 0.0));
    assert!(b[0].1[f..2 * f].iter().all(|&v| v == 0.0));
}
