//! Gated PixelCNN (docs/gated-pixelcnn.md): the gated activation against its float64 formula
//! and finite differences; the stack's gradients against finite differences; causality by
//! perturbation (C = 1 and 3, binary); the exact receptive field, computed here from the
//! documented semantics, at every output position, with no blind spot for a deep enough
//! stack, next to the plain PixelCNN's blind spot at the very same input; the uniform
//! likelihood of a zero output layer; learning on the embedded MNIST.
//!
//! Run with `cargo test --release --test gated_pixelcnn`.

// The receptive-field loops walk image positions (i, j) and index several grids with them.
#![allow(clippy::needless_range_loop)]

mod common;

use std::cell::RefCell;
use std::collections::HashSet;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::data::{load_dataset, Images};
use pixelrnn::eval::evaluate;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::nn::GatedStack;
use pixelrnn::optim::OptimConfig;
use pixelrnn::train::{train, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use common::helpers::{assert_grad, assert_rel, f64s, finite_differences, host, rng, t, uniform};
use common::models::{assert_causal, random_input, randomize_uniform, zero_output_layer};

fn config(
    (h, w, c): (usize, usize, usize),
    binary: bool,
    layers: usize,
    hidden: usize,
) -> ModelConfig {
    ModelConfig::plain(
        ModelKind::GatedPixelCnn,
        (h, w, c),
        binary,
        (layers, hidden, 16),
    )
}

// ---------------------------------------------------------------------------------------------
// The gated activation
// ---------------------------------------------------------------------------------------------

/// `tanh(f) * sigmoid(g)` in float64, from the paper's formula (f: first half, g: second).
fn gated_reference(pre: &[f64], f: usize) -> Vec<f64> {
    pre.chunks(2 * f)
        .flat_map(|p| (0..f).map(move |u| p[u].tanh() / (1.0 + (-p[f + u]).exp())))
        .collect()
}

#[test]
fn gated_activation_matches_its_formula_and_finite_differences() {
    let b = CpuBackend::new();
    for (rows, f) in [(1usize, 1usize), (7, 3), (300, 5)] {
        let mut r = rng(rows as u64);
        // Tails included: |x| up to 6, where tanh and sigmoid saturate.
        let pre = uniform(&mut r, rows * 2 * f, -6.0, 6.0);
        let tp = t(&b, &[rows, 2 * f], &pre);
        let y = host(&b, &b.gated_forward(&tp).unwrap());
        // fp32 tanh, exp and a division: a few ulp.
        assert_rel(
            &format!("gated {rows}x{f}"),
            &y,
            &gated_reference(&f64s(&pre), f),
            1e-6,
        );
        // Backward against central differences of the float64 formula: d(sum dy . y).
        let dy = uniform(&mut r, rows * f, -1.0, 1.0);
        let d = host(&b, &b.gated_backward(&tp, &t(&b, &[rows, f], &dy)).unwrap());
        let dy64 = f64s(&dy);
        let fd = finite_differences(&[f64s(&pre)], 1e-6, &|v| {
            gated_reference(&v[0], f)
                .iter()
                .zip(&dy64)
                .map(|(a, b)| a * b)
                .sum()
        });
        // Central differences of a float64 function with step 1e-6: ~1e-9 relative.
        assert_rel(&format!("gated backward {rows}x{f}"), &d, &fd[0], 1e-5);
    }
    // Shapes: an odd last dimension and a mismatched gradient are one clear error each.
    let odd = t(&b, &[2, 3], &[0.0; 6]);
    let e = b.gated_forward(&odd).unwrap_err().to_string();
    assert!(e.contains("gated_forward") && e.contains("even"), "{e}");
    let pre = t(&b, &[2, 4], &[0.0; 8]);
    let e = b
        .gated_backward(&pre, &t(&b, &[2, 4], &[0.0; 8]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gated_backward"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The stack's gradients
// ---------------------------------------------------------------------------------------------

/// A parameter's name, value, gradient and shape.
type NamedGrad = (String, Vec<f32>, Vec<f32>, Vec<usize>);

/// `sum r . skip(x)`: the scalar the finite differences differentiate.
fn stack_loss(stack: &GatedStack<CpuBackend>, x: &[f32], shape: &[usize], r: &[f32]) -> f64 {
    let b = CpuBackend::new();
    let (skip, _) = stack.forward(&b, &t(&b, shape, x)).unwrap();
    host(&b, &skip)
        .iter()
        .zip(r)
        .map(|(&s, &w)| s as f64 * w as f64)
        .sum()
}

#[test]
fn stack_gradients_match_finite_differences() {
    let b = CpuBackend::new();
    let (n, h, w, c, hidden) = (2, 4, 5, 3, 2);
    let shape = [n, h, w, c];
    let mut model = Model::new(&b, config((h, w, c), false, 2, hidden), 1).unwrap();
    // Every weight random, masked taps included: their gradient must stay exactly 0.
    randomize_uniform(model.params_mut(), 2, 0.5);
    let Some(pixelrnn::models::Layer::Gated(stack)) = model.layers.pop() else {
        panic!("a gated model holds one gated stack");
    };
    let mut rr = rng(3);
    let x = uniform(&mut rr, n * h * w * c, -1.0, 1.0);
    let r = uniform(&mut rr, n * h * w * 2 * hidden, -1.0, 1.0);
    let mut stack = stack;
    let (_, cache) = stack.forward(&b, &t(&b, &shape, &x)).unwrap();
    let dskip = t(&b, &[n, h, w, 2 * hidden], &r);
    let dx = stack
        .backward(&b, cache, &dskip, None, &mut |_| Ok(()))
        .unwrap();
    let dx = host(&b, &dx);
    let grads: Vec<NamedGrad> = stack
        .params_mut()
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                host(&b, &p.value),
                host(&b, &p.grad),
                p.value.shape.clone(),
            )
        })
        .collect();
    // fp32 forward, step 1e-2 on O(1) inputs: rounding ~1e-5 relative, truncation ~1e-4.
    let eps = 1e-2;
    let tol = 2e-3;
    let fd_x = finite_differences(&[f64s(&x)], eps, &|v| {
        let xv: Vec<f32> = v[0].iter().map(|&a| a as f32).collect();
        stack_loss(&stack, &xv, &shape, &r)
    });
    assert_grad("dx", &dx, &fd_x[0], tol);
    let cell = RefCell::new(stack);
    for (k, (name, value, grad, pshape)) in grads.iter().enumerate() {
        let fd = finite_differences(&[f64s(value)], eps, &|v| {
            let pv: Vec<f32> = v[0].iter().map(|&a| a as f32).collect();
            let mut s = cell.borrow_mut();
            s.params_mut()[k].value = t(&b, pshape, &pv);
            let loss = stack_loss(&s, &x, &shape, &r);
            s.params_mut()[k].value = t(&b, pshape, value);
            loss
        });
        assert_grad(name, grad, &fd[0], tol);
    }
    // Every parameter the layers name is there (docs/CHECKPOINTS.md): the last layer has no
    // residual projection.
    let names: Vec<&str> = grads.iter().map(|g| g.0.as_str()).collect();
    assert!(names.contains(&"layers.0.res_conv.weight"));
    assert!(!names.iter().any(|n| n.starts_with("layers.1.res_conv")));
}

// ---------------------------------------------------------------------------------------------
// Causality and the receptive field
// ---------------------------------------------------------------------------------------------

#[test]
fn causal_grey_rgb_and_binary() {
    let b = CpuBackend::new();
    for (cfg, seed) in [
        (config((6, 7, 1), false, 3, 4), 1),
        (config((5, 6, 3), false, 2, 5), 2),
        (config((6, 6, 1), true, 2, 4), 3),
    ] {
        let mut model = Model::new(&b, cfg.clone(), seed).unwrap();
        randomize_uniform(model.params_mut(), seed + 10, 0.6);
        let x = random_input(1, &cfg, seed + 20);
        assert_causal(
            &model,
            &x,
            &format!("Gated PixelCNN C={} binary={}", cfg.channels, cfg.binary),
        );
    }
}

type Pos = (usize, usize);

/// The input positions that reach the skip sum at every output position, from the semantics
/// of docs/gated-pixelcnn.md (C = 1, so the first layer's mask A has no centre tap):
/// layer 0: vertical pre-activation `V0(i, j)` = rows i-3..i, columns j-3..j+3 (the 4 x 7 upper
/// part of a 7x7 kernel), horizontal `H0(i, j)` = (i, j-3..j-1) and `V0(i-1, j)` (the link
/// from one row up); layer l: `Vl(i, j)` = union of `V(l-1)` over rows i-1..i, columns
/// j-1..j+1; `Hl(i, j)` = `H(l-1)` at (i, j-1) and (i, j) and `Vl(i-1, j)`. The head reads
/// the union of every `Hl(i, j)` (the skip sum).
fn receptive_fields(h: usize, w: usize, layers: usize) -> Vec<Vec<HashSet<Pos>>> {
    let at = |m: &Vec<Vec<HashSet<Pos>>>, i: i64, j: i64| -> HashSet<Pos> {
        if i < 0 || j < 0 || i >= h as i64 || j >= w as i64 {
            HashSet::new()
        } else {
            m[i as usize][j as usize].clone()
        }
    };
    let empty = vec![vec![HashSet::new(); w]; h];
    let mut v = empty.clone();
    let mut hz = empty.clone();
    let mut out = empty.clone();
    for l in 0..layers {
        let (mut nv, mut nh) = (empty.clone(), empty.clone());
        for i in 0..h {
            for j in 0..w {
                let (ii, jj) = (i as i64, j as i64);
                let mut s = HashSet::new();
                if l == 0 {
                    for y in (ii - 3).max(0)..=ii {
                        for x in (jj - 3).max(0)..=(jj + 3).min(w as i64 - 1) {
                            s.insert((y as usize, x as usize));
                        }
                    }
                } else {
                    for dy in -1..=0 {
                        for dx in -1..=1 {
                            s.extend(at(&v, ii + dy, jj + dx));
                        }
                    }
                }
                nv[i][j] = s;
            }
        }
        for i in 0..h {
            for j in 0..w {
                let (ii, jj) = (i as i64, j as i64);
                let mut s = at(&nv, ii - 1, jj);
                if l == 0 {
                    for x in (jj - 3).max(0)..jj {
                        s.insert((i, x as usize));
                    }
                } else {
                    s.extend(at(&hz, ii, jj - 1));
                    s.extend(at(&hz, ii, jj));
                }
                out[i][j].extend(s.iter().copied());
                nh[i][j] = s;
            }
        }
        v = nv;
        hz = nh;
    }
    out
}

/// The gradient of `r . skip(x)[p]` (random weights on the features of channel group `group`
/// at output position `p`) w.r.t. the input `[H, W, C]`.
fn stack_input_grad(
    stack: &mut GatedStack<CpuBackend>,
    x: &[f32],
    (h, w, c): (usize, usize, usize),
    p: Pos,
    group: usize,
) -> Vec<f32> {
    let b = CpuBackend::new();
    let (skip, cache) = stack.forward(&b, &t(&b, &[1, h, w, c], x)).unwrap();
    let f = skip.shape[3];
    let mut d = vec![0.0f32; skip.numel()];
    let mut r = rng((p.0 * w + p.1) as u64);
    for u in (group..f).step_by(c) {
        d[(p.0 * w + p.1) * f + u] = r.random_range(0.5..1.0);
    }
    let dx = stack
        .backward(&b, cache, &t(&b, &skip.shape, &d), None, &mut |_| Ok(()))
        .unwrap();
    host(&b, &dx)
}

fn gated_stack(cfg: &ModelConfig, seed: u64) -> GatedStack<CpuBackend> {
    let b = CpuBackend::new();
    let mut model = Model::new(&b, cfg.clone(), seed).unwrap();
    // Small weights: no gate saturates, so no gradient vanishes by rounding.
    randomize_uniform(model.params_mut(), seed + 1, 0.3);
    match model.layers.pop() {
        Some(pixelrnn::models::Layer::Gated(s)) => s,
        _ => panic!("a gated model holds one gated stack"),
    }
}

#[test]
fn receptive_field_is_exact_and_has_no_blind_spot() {
    let (h, w) = (7, 7);
    for layers in [1, 2, 4] {
        let cfg = config((h, w, 1), false, layers, 3);
        let mut stack = gated_stack(&cfg, 40 + layers as u64);
        let x = random_input(1, &cfg, 7);
        let fields = receptive_fields(h, w, layers);
        for i in 0..h {
            for j in 0..w {
                let g = stack_input_grad(&mut stack, &x, (h, w, 1), (i, j), 0);
                for y in 0..h {
                    for xx in 0..w {
                        let inside = fields[i][j].contains(&(y, xx));
                        let v = g[y * w + xx];
                        assert!(
                            (v != 0.0) == inside,
                            "L={layers}: output ({i},{j}), input ({y},{xx}): gradient {v}, in the receptive field: {inside}"
                        );
                        assert!(!inside || (y, xx) < (i, j), "the field reaches ({y},{xx})");
                    }
                }
                // Four layers cover a 7x7 image: every earlier position, no blind spot.
                if layers == 4 {
                    assert_eq!(
                        fields[i][j].len(),
                        i * w + j,
                        "L=4: output ({i},{j}) does not see every earlier position"
                    );
                }
            }
        }
    }
}

#[test]
fn rgb_receptive_field_is_every_earlier_sub_pixel() {
    // Three layers cover a 5x5 image; at the pixel itself, output group g sees the input
    // channels c < g (mask A in the first layer, B after).
    let (h, w, c) = (5, 5, 3);
    let cfg = config((h, w, c), false, 3, 3);
    let mut stack = gated_stack(&cfg, 50);
    let x = random_input(1, &cfg, 8);
    for i in 0..h {
        for j in 0..w {
            for group in 0..c {
                let g = stack_input_grad(&mut stack, &x, (h, w, c), (i, j), group);
                for q in 0..h * w {
                    for ch in 0..c {
                        let earlier = q < i * w + j || (q == i * w + j && ch < group);
                        let v = g[q * c + ch];
                        assert!(
                            (v != 0.0) == earlier,
                            "output ({i},{j}) group {group}, input pixel {q} channel {ch}: gradient {v}"
                        );
                    }
                }
            }
        }
    }
}

/// The gradient w.r.t. the input of random weights on the logits at output position `p`,
/// through a whole model.
fn model_input_grad(model: &mut Model<CpuBackend>, x: &[f32], p: Pos) -> Vec<f32> {
    let b = CpuBackend::new();
    let cfg = model.config.clone();
    let (logits, cache) = model
        .forward(&b, &t(&b, &[1, cfg.height, cfg.width, 1], x))
        .unwrap();
    let per = cfg.logits_per_position();
    let mut d = vec![0.0f32; logits.numel()];
    let mut r = rng(9);
    for k in 0..per {
        d[(p.0 * cfg.width + p.1) * per + k] = r.random_range(-1.0..1.0);
    }
    let dl = t(&b, &logits.shape, &d);
    host(&b, &model.backward(&b, cache, &dl, true).unwrap().unwrap())
}

#[test]
fn pixelcnn_has_the_blind_spot_that_gated_pixelcnn_does_not() {
    // The same output, the same depth, the same input: PixelCNN (7x7 mask A, then 3x3 mask B)
    // sees only 3 pixels to the right in the row above, whatever its depth; Gated PixelCNN's
    // vertical stack sees the whole row above.
    let (h, w) = (7, 7);
    let b = CpuBackend::new();
    let p = (5, 1);
    for (kind, layers) in [(ModelKind::PixelCnn, 4), (ModelKind::GatedPixelCnn, 4)] {
        let cfg = ModelConfig::plain(kind, (h, w, 1), false, (layers, 4, 16));
        let mut model = Model::new(&b, cfg.clone(), 60).unwrap();
        randomize_uniform(model.params_mut(), 61, 0.3);
        let x = random_input(1, &cfg, 62);
        let g = model_input_grad(&mut model, &x, p);
        let earlier: Vec<Pos> = (0..h)
            .flat_map(|y| (0..w).map(move |xx| (y, xx)))
            .filter(|&q| q < p)
            .collect();
        let blind: Vec<Pos> = earlier
            .iter()
            .copied()
            .filter(|&(y, xx)| g[y * w + xx] == 0.0)
            .collect();
        match kind {
            ModelKind::GatedPixelCnn => {
                assert!(blind.is_empty(), "Gated PixelCNN is blind at {blind:?}")
            }
            _ => {
                // The row above, 4 and more to the right: (4, 5), (4, 6); further up, more.
                assert!(
                    blind.contains(&(4, 5)) && blind.contains(&(4, 6)),
                    "PixelCNN's blind spot: {blind:?}"
                );
            }
        }
        // Nothing at or after the output position.
        for y in 0..h {
            for xx in 0..w {
                if (y, xx) >= p {
                    assert_eq!(g[y * w + xx], 0.0, "{}: ({y},{xx})", kind.name());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Likelihood and learning
// ---------------------------------------------------------------------------------------------

fn random_images(n: usize, (h, w, c): (usize, usize, usize), binary: bool, seed: u64) -> Images {
    let mut r = Pcg64::seed_from_u64(seed);
    let hi = if binary { 2 } else { 256 };
    let px = (0..n * h * w * c)
        .map(|_| r.random_range(0..hi) as u8)
        .collect();
    Images::new(n, h, w, c, binary, px).unwrap()
}

#[test]
fn zero_last_layer_is_exactly_eight_bits_per_dim() {
    let b = CpuBackend::new();
    for c in [1, 3] {
        let cfg = config((5, 4, c), false, 2, 4);
        let mut model = Model::new(&b, cfg, 7).unwrap();
        randomize_uniform(model.params_mut(), 8, 0.6);
        zero_output_layer(&mut model);
        let imgs = random_images(6, (5, 4, c), false, 9);
        let r = evaluate(&b, &model, &imgs, 4, None, true).unwrap();
        assert!(
            (r.bits_per_dim - 8.0).abs() < 1e-6,
            "C={c}: {}",
            r.bits_per_dim
        );
    }
}

#[test]
fn learns_binarized_mnist_in_200_steps() {
    let b = CpuBackend::new();
    let data = load_dataset("binarized-mnist", false).unwrap();
    let steps = 200;
    let mut model = config((28, 28, 1), true, 3, 8);
    model.head = 32;
    let cfg = TrainConfig {
        model,
        data: "binarized-mnist".into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            lr: 3e-3,
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 16,
        steps,
        eval_every: 100,
        eval_images: Some(200),
        seed: 3,
        recurrence: Default::default(),
        precision: Default::default(),
        stage: None,
    };
    let dir = tempfile::tempdir().unwrap();
    train(&b, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    let m = pixelrnn::run_dir::read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    let (start, mid, end) = (m[0].test_nll_nats, m[1].test_nll_nats, m[2].test_nll_nats);
    assert!(start > 400.0, "untrained model scores {start}");
    assert!(end < mid && end < 0.4 * start, "{start} -> {mid} -> {end}");
}
