//! Multi-Scale PixelRNN (MODELS.md, "Multi-Scale PixelRNN"), the stages: stage 2's causality
//! w.r.t. the full image (and its freedom to read all of the small image), a stage 2 with
//! zero conditioning weights = the unconditional model, NLL_total = stage 1 + stage 2, cached
//! = naive sampling, completion in both stages, and training on the embedded MNIST (256 grey
//! levels) lowering both stages' NLL. The gradients are tests/multiscale.rs's.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::data::{load_dataset, Images};
use pixelrnn::models::{subsample, Model, ModelConfig, ModelKind, MultiScaleConfig, Stages};
use pixelrnn::optim::OptimConfig;
use pixelrnn::run_dir::read_metrics;
use pixelrnn::sample::{sample_multiscale, Method, Prefix, SampleOptions};
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use common::helpers::{t, uniform};
use common::multiscale::{config, perturb, KINDS};

/// Stage 2's logits at a position never depend on the full image at that position or after
/// (C = 3: channel groups too), and may depend on any pixel of the small image.
#[test]
fn stage2_is_causal_in_x_and_sees_all_of_the_small_image() {
    let be = CpuBackend::new();
    for kind in KINDS {
        for c in [1, 3] {
            let (n, r) = (6, 2);
            let mut m = Model::new(&be, config(kind, n, c, Some((kind, r))), 7).unwrap();
            perturb(&mut m, 8);
            let mut rng = Pcg64::seed_from_u64(9);
            let xv = uniform(&mut rng, n * n * c, -1.0, 1.0);
            let sdim = (n / r) * (n / r) * c;
            let xsv = uniform(&mut rng, sdim, -1.0, 1.0);
            let xs = t(&be, &[1, n / r, n / r, c], &xsv);
            let run = |xv: &[f32], xs: &Tensor<CpuBackend>| {
                let (l, _) = m
                    .forward_cond(&be, &t(&be, &[1, n, n, c], xv), Some(xs))
                    .unwrap();
                l.to_vec(&be).unwrap()
            };
            let base = run(&xv, &xs);
            let lp = 256 * c;
            for p in 0..n * n * c {
                let mut x2 = xv.clone();
                x2[p] += 1.0;
                let out = run(&x2, &xs);
                let (pix, ch) = (p / c, p % c);
                for q in 0..n * n {
                    for k in 0..lp {
                        let qc = k % c; // logit k of channel k % c
                        let before = q < pix || (q == pix && qc <= ch);
                        let i = q * lp + k;
                        if before {
                            assert_eq!(
                                base[i], out[i],
                                "{kind:?} C={c}: input {p} reached output pixel {q} channel {qc}"
                            );
                        }
                    }
                }
            }
            // The conditioning is unmasked: the first position already sees small pixel (1, 1),
            // which is full pixel (r, r), far in its future.
            let mut xs2 = xsv.clone();
            xs2[((n / r) + 1) * c] += 1.0;
            let out = run(&xv, &t(&be, &[1, n / r, n / r, c], &xs2));
            assert!(
                (0..lp).any(|k| out[k] != base[k]),
                "{kind:?}: position (0, 0) does not see small pixel (1, 1)"
            );
            // ... and not small pixel (2, 2) (3 x 3 neighbourhood, r = 2).
            let mut xs3 = xsv.clone();
            xs3[(2 * (n / r) + 2) * c] += 1.0;
            let out = run(&xv, &t(&be, &[1, n / r, n / r, c], &xs3));
            assert!((0..lp).all(|k| out[k] == base[k]), "{kind:?}");
        }
    }
}

/// A stage 2 whose conditioning weights are all zero computes exactly the unconditional model
/// with the same (shared) weights: the same seed gives the same shared weights.
#[test]
fn zero_conditioning_equals_the_unconditional_model() {
    let be = CpuBackend::new();
    for kind in KINDS {
        let n = 6;
        let plain = Model::new(&be, config(kind, n, 3, None), 11).unwrap();
        let mut cond = Model::new(&be, config(kind, n, 3, Some((kind, 2))), 11).unwrap();
        let mut plain = plain;
        let pv: Vec<(String, Vec<f32>)> = plain
            .params_mut()
            .iter()
            .map(|p| (p.name.clone(), p.value.to_vec(&be).unwrap()))
            .collect();
        for p in cond.params_mut() {
            if p.name.contains("cond") || p.name.starts_with("upsample") {
                p.value = Tensor::zeros(&be, &p.value.shape.clone()).unwrap();
            } else {
                let (_, v) = pv.iter().find(|(n, _)| n == &p.name).unwrap();
                assert_eq!(&p.value.to_vec(&be).unwrap(), v, "{kind:?} {}", p.name);
            }
        }
        let mut rng = Pcg64::seed_from_u64(12);
        let x = t(
            &be,
            &[2, n, n, 3],
            &uniform(&mut rng, 2 * n * n * 3, -1.0, 1.0),
        );
        let xs = t(&be, &[2, 3, 3, 3], &uniform(&mut rng, 2 * 27, -1.0, 1.0));
        let (a, _) = plain.forward(&be, &x).unwrap();
        let (b, _) = cond.forward_cond(&be, &x, Some(&xs)).unwrap();
        assert_eq!(a.to_vec(&be).unwrap(), b.to_vec(&be).unwrap(), "{kind:?}");
    }
}

fn random_images(n: usize, h: usize, c: usize, seed: u64) -> Images {
    let mut rng = Pcg64::seed_from_u64(seed);
    let px = (0..n * h * h * c)
        .map(|_| rng.random_range(0..=255u8))
        .collect();
    Images::new(n, h, h, c, false, px).unwrap()
}

/// NLL_total is the sum of the stages, each computed independently here: stage 1 scores the
/// subsampled images with its own model; stage 2 scores every sub-pixel not in x_s.
#[test]
fn total_nll_is_the_sum_of_the_stages() {
    let be = CpuBackend::new();
    for kind in KINDS {
        let (n, r) = (6, 2);
        let mut m = Model::new(
            &be,
            config(ModelKind::MultiScale, n, 3, Some((kind, r))),
            13,
        )
        .unwrap();
        perturb(&mut m, 14);
        assert!(m
            .params_mut()
            .iter()
            .all(|p| p.name.starts_with("stage1.") || p.name.starts_with("stage2.")));
        let imgs = random_images(3, n, 3, 15);
        let idx = [0, 1, 2];
        let b = m.score(&be, &imgs, &idx, true).unwrap();
        let [s1, s2] = b.stages.unwrap();
        assert!((b.total - (s1 + s2)).abs() < 1e-9 * b.total.abs());
        let per: f64 = b.per_subpixel.unwrap().iter().map(|&v| v as f64).sum();
        assert!((per - b.total).abs() < 1e-3, "{per} vs {}", b.total);
        // Stage 1 alone.
        let stage1 = m.stage1.as_deref().unwrap();
        let small = subsample(&imgs, r).unwrap();
        let (xs, ts) = stage1.batch(&be, &small, &idx).unwrap();
        let (l, _) = stage1.forward(&be, &xs).unwrap();
        let (nll, _) = stage1.loss(&be, &l, &ts, 0.0).unwrap();
        let e1 = be.sum(&nll).unwrap();
        assert!((e1 - s1).abs() < 1e-6 * s1, "{e1} vs {s1}");
        // Stage 2 alone: all sub-pixels minus those of x_s.
        let (x, tt) = m.batch(&be, &imgs, &idx).unwrap();
        let (l, _) = m.forward_cond(&be, &x, Some(&xs)).unwrap();
        let (nll, _) = m.loss(&be, &l, &tt, 0.0).unwrap();
        let v = nll.to_vec(&be).unwrap();
        let mut e2 = 0.0f64;
        for (k, x) in v.iter().enumerate() {
            let (i, j) = ((k / 3 / n) % n, (k / 3) % n);
            if i % r != 0 || j % r != 0 {
                e2 += *x as f64;
            }
        }
        assert!((e2 - s2).abs() < 1e-6 * s2, "{e2} vs {s2}");
    }
}

/// Cached sampling (conditioning biases read at one position) draws the naive method's
/// images; the full images keep their small images at the strided positions.
#[test]
fn cached_sampling_equals_naive_and_keeps_the_small_image() {
    let be = CpuBackend::new();
    for kind in KINDS {
        let mut m = Model::new(
            &be,
            config(ModelKind::MultiScale, 6, 3, Some((kind, 2))),
            17,
        )
        .unwrap();
        perturb(&mut m, 18);
        let o = |method| SampleOptions {
            method,
            ..SampleOptions::new(3, 19)
        };
        let (s_c, f_c) = sample_multiscale(&be, &m, &o(Method::Cached), &|_| {}).unwrap();
        let (s_n, f_n) = sample_multiscale(&be, &m, &o(Method::Naive), &|_| {}).unwrap();
        assert_eq!(s_c, s_n, "{kind:?}");
        assert_eq!(f_c, f_n, "{kind:?}");
        assert_eq!(subsample(&f_c, 2).unwrap(), s_c);
        assert_eq!(f_c.height, 6);
    }
}

/// Completion of a multi-scale model: the given rows are kept in the full image and, where
/// they hold small-image rows, in the small image too; the rest of both is drawn (cached and
/// naive alike); `full[::r, ::r] == small` still holds; 0 given rows is plain sampling with
/// the same draws.
#[test]
fn completion_keeps_the_given_rows_in_both_stages() {
    let be = CpuBackend::new();
    let (n, r) = (6, 2);
    let mut rng = Pcg64::seed_from_u64(40);
    let given = Images::new(
        2,
        n,
        n,
        3,
        false,
        (0..2 * n * n * 3).map(|_| rng.random()).collect(),
    )
    .unwrap();
    for kind in KINDS {
        let mut m = Model::new(
            &be,
            config(ModelKind::MultiScale, n, 3, Some((kind, r))),
            41,
        )
        .unwrap();
        perturb(&mut m, 42);
        for rows in [0, 1, 3, n] {
            let o = |method| SampleOptions {
                method,
                prefix: Some(Prefix {
                    images: given.clone(),
                    rows,
                }),
                ..SampleOptions::new(4, 43)
            };
            let (s_c, f_c) = sample_multiscale(&be, &m, &o(Method::Cached), &|_| {}).unwrap();
            let (s_n, f_n) = sample_multiscale(&be, &m, &o(Method::Naive), &|_| {}).unwrap();
            assert_eq!((&s_c, &f_c), (&s_n, &f_n), "{kind:?} rows {rows}");
            assert_eq!(subsample(&f_c, r).unwrap(), s_c, "{kind:?} rows {rows}");
            let small_given = subsample(&given, r).unwrap();
            let (keep, keep_s) = (rows * n * 3, rows.div_ceil(r) * (n / r) * 3);
            for b in 0..4 {
                assert_eq!(&f_c.image(b)[..keep], &given.image(b % 2)[..keep]);
                assert_eq!(&s_c.image(b)[..keep_s], &small_given.image(b % 2)[..keep_s]);
            }
            if rows < n {
                assert_ne!(
                    f_c.image(0)[keep..].to_vec(),
                    given.image(0)[keep..].to_vec(),
                    "{kind:?} rows {rows}: the rest was copied, not drawn"
                );
            }
            if rows == 0 {
                let plain = sample_multiscale(&be, &m, &SampleOptions::new(4, 43), &|_| {});
                assert_eq!(plain.unwrap(), (s_c, f_c), "{kind:?}");
            }
        }
    }
}

/// A few hundred steps on the embedded MNIST (256 grey levels) with a tiny Row LSTM at scale
/// 14 (r = 2) lower both stages' test NLL.
#[test]
fn training_on_mnist_lowers_both_stages() {
    let be = CpuBackend::new();
    let data = load_dataset("mnist", false).unwrap();
    let steps = 200;
    let model = ModelConfig {
        multiscale: Some(MultiScaleConfig {
            base: ModelKind::RowLstm,
            scale: 14,
            cond_features: 4,
        }),
        ..ModelConfig::plain(ModelKind::MultiScale, (28, 28, 1), false, (1, 4, 16))
    };
    let cfg = TrainConfig {
        model,
        data: "mnist".into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            lr: 1e-2,
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 8,
        steps,
        eval_every: steps,
        eval_images: Some(50),
        seed: 1,
        recurrence: Default::default(),
        precision: Default::default(),
        stage: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    train(&be, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    let m = read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let (a, b) = (&m[0], &m[m.len() - 1]);
    eprintln!(
        "stage 1 {:.1} -> {:.1}, stage 2 {:.1} -> {:.1}, total {:.1} -> {:.1} nats/image ({:.1} s)",
        a.stage1_nll_nats.unwrap(),
        b.stage1_nll_nats.unwrap(),
        a.stage2_nll_nats.unwrap(),
        b.stage2_nll_nats.unwrap(),
        a.test_nll_nats,
        b.test_nll_nats,
        t0.elapsed().as_secs_f64()
    );
    assert!(b.stage1_nll_nats.unwrap() < 0.8 * a.stage1_nll_nats.unwrap());
    assert!(b.stage2_nll_nats.unwrap() < 0.8 * a.stage2_nll_nats.unwrap());
    // Training one stage leaves the other's weights alone.
    let _ = Stages::One;
}
