//! Multi-Scale PixelRNN (MODELS.md, "Multi-Scale PixelRNN"): the gradients: the transposed convolution
//! against a float64 reference and finite differences, the conditioning parameters of a
//! stand-alone stage 2 and of one conditioned residual block against finite differences. The
//! stages (causality, NLL, sampling, training) are tests/multiscale_stages.rs's.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::models::{Model, ModelKind};
use rand::SeedableRng;
use rand_pcg::Pcg64;

use common::helpers::{t, uniform};
use common::multiscale::{config, perturb, KINDS};

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
