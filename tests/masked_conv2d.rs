//! The masked convolution (`masked_conv2d_forward` / `_backward` of the CPU backend) against
//! the float64 reference of tests/common/reference/conv.rs, written from the spec (MODELS.md,
//! "Channel groups and masks"), never from the implementation: a loop over every tap of the
//! full kernel with the mask computed by the test. The forward on every convolution shape the
//! models use and more; masked taps skipped, not multiplied; the backward against central
//! differences of the reference and of the op itself; empty inputs. tests/conv_blocks.rs
//! covers maps large enough for several row blocks per thread, tests/ops_reference.rs the shape
//! errors.
//!
//! Tolerances are stated next to each check with the reason. Run with
//! `cargo test --release --test masked_conv2d`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{Backend, ConvSpec, Mask};
use rand::Rng;

use common::helpers::{
    assert_rel, dot, f64s, finite_differences, host, nonzero, panic_text, rng, t, uniform, T,
};
use common::reference::conv::ConvCase;

// ---------------------------------------------------------------------------------------------
// masked_conv2d
// ---------------------------------------------------------------------------------------------

/// Every convolution shape the models use, plus odd sizes, non-square kernels, kernels larger
/// than the image, feature counts that are not multiples of C, and gate maps.
const CASES: &[ConvCase] = &[
    // PixelCNN / every model's first layer, binary and grey images.
    ConvCase::new("7x7 mask A, C=1", (7, 7), Mask::A, 1, (1, 4), (2, 5, 6)),
    // RGB first layer; the 7x7 kernel is taller than the 5-row image.
    ConvCase::new("7x7 mask A, C=3", (7, 7), Mask::A, 3, (3, 8), (2, 5, 6)),
    ConvCase::new(
        "3x3 mask A, C=3, cin=7",
        (3, 3),
        Mask::A,
        3,
        (7, 5),
        (2, 5, 6),
    ),
    // PixelCNN residual 3x3.
    ConvCase::new(
        "3x3 mask B, C=3, cin=5",
        (3, 3),
        Mask::B,
        3,
        (5, 7),
        (2, 5, 6),
    ),
    ConvCase::new(
        "3x3 mask B, C=1, cin=4",
        (3, 3),
        Mask::B,
        1,
        (4, 6),
        (3, 4, 7),
    ),
    // Non-square kernels catch a swapped kh/kw or centre.
    ConvCase::new(
        "5x3 mask B, C=3, cin=6",
        (5, 3),
        Mask::B,
        3,
        (6, 4),
        (2, 5, 6),
    ),
    ConvCase::new(
        "3x5 mask A, C=3, cin=4",
        (3, 5),
        Mask::A,
        3,
        (4, 6),
        (1, 7, 5),
    ),
    // Row LSTM input-to-state (1x3 mask B, 2h -> 4h gates, h = 5 not a multiple of 3).
    ConvCase::new(
        "1x3 mask B, C=1, cin=4",
        (1, 3),
        Mask::B,
        1,
        (4, 5),
        (2, 5, 6),
    ),
    ConvCase::new(
        "1x3 mask B gate map, C=3, h=5",
        (1, 3),
        Mask::B,
        3,
        (10, 20),
        (2, 5, 6),
    )
    .out_block(5),
    // 1x1 residual / output convolutions.
    ConvCase::new(
        "1x1 mask B, C=3, cin=7",
        (1, 1),
        Mask::B,
        3,
        (7, 5),
        (2, 5, 6),
    ),
    ConvCase::new(
        "1x1 mask B, C=1, cin=4",
        (1, 1),
        Mask::B,
        1,
        (4, 6),
        (3, 4, 7),
    ),
    // Diagonal BiLSTM input-to-state (1x1 mask B, 2h -> 4h gates).
    ConvCase::new(
        "1x1 mask B gate map, C=3, h=5",
        (1, 1),
        Mask::B,
        3,
        (10, 20),
        (2, 5, 6),
    )
    .out_block(5),
    ConvCase::new(
        "1x1 mask A, C=3, cin=3",
        (1, 1),
        Mask::A,
        3,
        (3, 6),
        (2, 5, 6),
    ),
    // An input map with a repeating block (the ConvSpec field that the models do not use yet).
    ConvCase::new(
        "1x1 mask B, in_block=4, C=3",
        (1, 1),
        Mask::B,
        3,
        (8, 6),
        (2, 5, 6),
    )
    .in_block(4),
    // Unmasked: state-to-state and conditioning convolutions.
    ConvCase::new(
        "3x3 unmasked, cin=4",
        (3, 3),
        Mask::None,
        3,
        (4, 5),
        (2, 5, 6),
    ),
    // Gated PixelCNN's vertical stack (the rows above and the centre row, every pair).
    ConvCase::new(
        "3x3 vertical, C=3",
        (3, 3),
        Mask::Vertical,
        3,
        (6, 8),
        (2, 5, 6),
    ),
    ConvCase::new(
        "7x7 vertical, C=1",
        (7, 7),
        Mask::Vertical,
        1,
        (1, 4),
        (1, 6, 8),
    ),
    ConvCase::new(
        "1x3 unmasked, cin=5",
        (1, 3),
        Mask::None,
        1,
        (5, 20),
        (2, 1, 6),
    ),
];

/// Random input, weights (nonzero everywhere, masked taps included) and bias for a case.
fn conv_inputs(c: &ConvCase, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = rng(seed);
    let x = uniform(&mut r, c.x_len(), -1.0, 1.0);
    let w = nonzero(&mut r, c.w_len(), 1.0);
    let b = nonzero(&mut r, c.cout, 1.0);
    (x, w, b)
}

fn conv_forward(be: &CpuBackend, c: &ConvCase, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let y = be
        .masked_conv2d_forward(
            &t(be, &c.x_shape(), x),
            &t(be, &c.w_shape(), w),
            &t(be, &[c.cout], b),
            &c.spec(),
        )
        .unwrap_or_else(|e| panic!("{}: forward failed: {e}", c.name));
    assert_eq!(y.shape, c.y_shape(), "{}: output shape", c.name);
    host(be, &y)
}

#[test]
fn reference_mask_is_the_spec() {
    // The test's own mask on the examples MODELS.md spells out, so that the reference itself is
    // checked against the text and not only against the implementation.
    // C = 1: mask A excludes the centre tap, mask B includes it; 24 of 49 taps before the centre.
    let a1 = ConvCase::new("", (7, 7), Mask::A, 1, (1, 1), (1, 1, 1));
    let m = a1.mask();
    assert_eq!(m.iter().sum::<f64>(), 24.0);
    assert_eq!(m[a1.wi(0, 0, 3, 3)], 0.0);
    assert_eq!(m[a1.wi(0, 0, 3, 2)], 1.0);
    assert_eq!(m[a1.wi(0, 0, 3, 4)], 0.0);
    assert_eq!(m[a1.wi(0, 0, 2, 6)], 1.0);
    let b1 = ConvCase::new("", (7, 7), Mask::B, 1, (1, 1), (1, 1, 1));
    assert_eq!(b1.mask().iter().sum::<f64>(), 25.0);
    // RGB centre tap: G output (feature 4 of 6 is group 1) sees R under mask A, R and G under B.
    let a3 = ConvCase::new("", (3, 3), Mask::A, 3, (3, 6), (1, 1, 1));
    let b3 = ConvCase::new("", (3, 3), Mask::B, 3, (3, 6), (1, 1, 1));
    let (ma, mb) = (a3.mask(), b3.mask());
    let centre = |m: &[f64], c: &ConvCase, i| m[c.wi(4, i, 1, 1)];
    assert_eq!([0, 1, 2].map(|i| centre(&ma, &a3, i)), [1.0, 0.0, 0.0]);
    assert_eq!([0, 1, 2].map(|i| centre(&mb, &b3, i)), [1.0, 1.0, 0.0]);
    // Gate map with h = 5, C = 3: output unit u of every gate block is group u mod 3, so output
    // 5 (unit 0 of the forget gate) is group 0 and must not see input feature 1 (group 1).
    let g = ConvCase::new("", (1, 1), Mask::B, 3, (3, 20), (1, 1, 1)).out_block(5);
    let mg = g.mask();
    assert_eq!([0, 1, 2].map(|i| mg[g.wi(5, i, 0, 0)]), [1.0, 0.0, 0.0]);
    assert_eq!([0, 1, 2].map(|i| mg[g.wi(4, i, 0, 0)]), [1.0, 1.0, 0.0]);
}

#[test]
fn masked_conv2d_forward_matches_f64_reference() {
    let be = CpuBackend::new();
    for (k, c) in CASES.iter().enumerate() {
        let (x, w, b) = conv_inputs(c, 100 + k as u64);
        let mask = c.mask();
        let want = c.forward(&f64s(&x), &f64s(&w), &f64s(&b));
        let got = conv_forward(&be, c, &x, &w, &b);
        // fp32 accumulation of at most 49 * 7 products of magnitude <= 1: a few 1e-7 relative
        // to the largest output; a tap the mask should drop (|w| >= 0.1) costs >= 1e-2.
        assert_rel(&format!("{}: forward", c.name), &got, &want, 1e-5);

        // Masked taps are skipped, not multiplied: replacing them by huge values (and by NaN)
        // must leave the output bit-identical.
        for poison in [1.0e6f32, f32::NAN] {
            let w2: Vec<f32> = w
                .iter()
                .zip(&mask)
                .map(|(&v, &m)| if m == 0.0 { poison } else { v })
                .collect();
            let got2 = conv_forward(&be, c, &x, &w2, &b);
            let same = got
                .iter()
                .zip(&got2)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{}: output changed when masked taps were set to {poison}",
                c.name
            );
        }
    }
}

#[test]
fn masked_conv2d_backward_matches_finite_differences() {
    let be = CpuBackend::new();
    for (k, c) in CASES.iter().enumerate() {
        let (x, w, b) = conv_inputs(c, 200 + k as u64);
        let mut r = rng(300 + k as u64);
        let dy = uniform(&mut r, c.y_len(), -1.0, 1.0);
        let mask = c.mask();
        let (xd, wd, bd, dyd) = (f64s(&x), f64s(&w), f64s(&b), f64s(&dy));

        let spec = c.spec();
        let (tx, tw, tdy) = (
            t(&be, &c.x_shape(), &x),
            t(&be, &c.w_shape(), &w),
            t(&be, &c.y_shape(), &dy),
        );
        let grads = be
            .masked_conv2d_backward(&tx, &tw, &tdy, &spec, true)
            .unwrap_or_else(|e| panic!("{}: backward failed: {e}", c.name));
        let dx = host(&be, grads.dx.as_ref().expect("dx was asked for"));
        let dw = host(&be, &grads.dw);
        let db = host(&be, &grads.db);
        assert_eq!(
            grads.dx.as_ref().unwrap().shape,
            c.x_shape(),
            "{}: dx shape",
            c.name
        );
        assert_eq!(grads.dw.shape, c.w_shape(), "{}: dw shape", c.name);
        assert_eq!(grads.db.shape, [c.cout], "{}: db shape", c.name);

        // Central differences of L = sum(dy * reference forward) in f64. L is linear in each
        // argument, so the difference quotient is exact up to f64 rounding (~1e-12 relative):
        // the reference gradient is as good as analytic, yet derived from the forward only.
        let fd = finite_differences(&[xd.clone(), wd.clone(), bd.clone()], 1e-3, &|v| {
            dot(&dyd, &c.forward(&v[0], &v[1], &v[2]))
        });
        let (fd_x, fd_w, fd_b) = (&fd[0], &fd[1], &fd[2]);
        // fp32 sums of at most n*h*w = 84 (dw, db) or taps*cout = 49*8 (dx) products: a few
        // 1e-7 relative to the largest gradient.
        assert_rel(&format!("{}: dx", c.name), &dx, fd_x, 1e-5);
        assert_rel(&format!("{}: dw", c.name), &dw, fd_w, 1e-5);
        assert_rel(&format!("{}: db", c.name), &db, fd_b, 1e-5);

        // dw is exactly zero at masked taps (not merely small): optimizers must never move them.
        let mut masked = 0;
        for (j, (&g, &m)) in dw.iter().zip(&mask).enumerate() {
            if m == 0.0 {
                masked += 1;
                assert!(g == 0.0, "{}: dw[{j}] = {g} at a masked tap", c.name);
            }
        }
        if c.mask != Mask::None && (c.kh > 1 || c.kw > 1 || c.groups > 1) {
            assert!(
                masked > 0,
                "{}: the case has no masked tap to check",
                c.name
            );
        }

        // need_dx = false: no dx, and the same dw and db bit for bit.
        let g2 = be
            .masked_conv2d_backward(&tx, &tw, &tdy, &spec, false)
            .unwrap();
        assert!(
            g2.dx.is_none(),
            "{}: dx returned though not asked for",
            c.name
        );
        assert_eq!(host(&be, &g2.dw), dw, "{}: dw depends on need_dx", c.name);
        assert_eq!(host(&be, &g2.db), db, "{}: db depends on need_dx", c.name);

        // Spot checks against central differences of the f32 op itself (forward and backward of
        // the implementation agree, independently of the reference). The op is linear, so a
        // large step is exact; the only error is fp32 rounding of y (~1e-7 |y| per output)
        // divided by 2 * eps = 0.5: 1e-3 of max(1, largest gradient) is ample.
        let op_loss = |x: &[f32], w: &[f32], b: &[f32]| -> f64 {
            dot(&dyd, &f64s(&conv_forward(&be, c, x, w, b)))
        };
        let eps32 = 0.25f32;
        let mut r = rng(400 + k as u64);
        let check = |what: &str, j: usize, analytic: f32, all: &[f32], up: f64, down: f64| {
            let num = (up - down) / (2.0 * eps32 as f64);
            let scale = all.iter().fold(1.0f64, |m, v| m.max(v.abs() as f64));
            assert!(
                (num - analytic as f64).abs() < 1e-3 * scale,
                "{}: {what}[{j}]: backward {analytic} vs f32 finite difference {num}",
                c.name
            );
        };
        for _ in 0..6 {
            let j = r.random_range(0..c.w_len());
            let (mut up, mut down) = (w.clone(), w.clone());
            up[j] += eps32;
            down[j] -= eps32;
            check(
                "dw",
                j,
                dw[j],
                &dw,
                op_loss(&x, &up, &b),
                op_loss(&x, &down, &b),
            );
            let j = r.random_range(0..c.x_len());
            let (mut up, mut down) = (x.clone(), x.clone());
            up[j] += eps32;
            down[j] -= eps32;
            check(
                "dx",
                j,
                dx[j],
                &dx,
                op_loss(&up, &w, &b),
                op_loss(&down, &w, &b),
            );
        }
        let j = r.random_range(0..c.cout);
        let (mut up, mut down) = (b.clone(), b.clone());
        up[j] += eps32;
        down[j] -= eps32;
        check(
            "db",
            j,
            db[j],
            &db,
            op_loss(&x, &w, &up),
            op_loss(&x, &w, &down),
        );
    }
}

#[test]
fn masked_conv2d_1x1_mask_a_single_group_is_bias_only() {
    // A 1x1 mask-A convolution with C = 1 has no tap at all (its only tap is the centre, which
    // mask A removes when there is one group). ConvSpec::validate accepts it; the output must be
    // the bias, dw and dx zero, db the sum of dy.
    let be = CpuBackend::new();
    let c = ConvCase::new("1x1 mask A, C=1", (1, 1), Mask::A, 1, (3, 4), (2, 3, 5));
    let (x, w, b) = conv_inputs(&c, 7);
    let dy = uniform(&mut rng(8), c.y_len(), -1.0, 1.0);
    let y = conv_forward(&be, &c, &x, &w, &b);
    let want: Vec<f32> = (0..c.y_len()).map(|j| b[j % c.cout]).collect();
    assert_eq!(y, want);
    let g = be
        .masked_conv2d_backward(
            &t(&be, &c.x_shape(), &x),
            &t(&be, &c.w_shape(), &w),
            &t(&be, &c.y_shape(), &dy),
            &c.spec(),
            true,
        )
        .unwrap();
    assert!(host(&be, g.dx.as_ref().unwrap()).iter().all(|&v| v == 0.0));
    assert!(host(&be, &g.dw).iter().all(|&v| v == 0.0));
    let mut db = vec![0.0f64; c.cout];
    for (j, &v) in dy.iter().enumerate() {
        db[j % c.cout] += v as f64;
    }
    assert_rel("1x1 mask A, C=1: db", &host(&be, &g.db), &db, 1e-6);
}

#[test]
fn masked_conv2d_empty_inputs_do_not_panic() {
    // Empty batches or images are either an empty result or an Err; never a panic.
    let be = CpuBackend::new();
    let mut f = Vec::new();
    let spec = ConvSpec::new(3, 3, Mask::B, 3, 3, 5);
    let z = |shape: &[usize]| T::zeros(&be, shape).unwrap();
    for xs in [[0usize, 4, 4, 3], [1, 0, 4, 3], [1, 4, 0, 3]] {
        let ys = [xs[0], xs[1], xs[2], 5];
        let what = format!("conv on input {xs:?}");
        match catch_unwind(AssertUnwindSafe(|| {
            let _ = be.masked_conv2d_forward(&z(&xs), &z(&[5, 3, 3, 3]), &z(&[5]), &spec);
            let _ = be.masked_conv2d_backward(&z(&xs), &z(&[5, 3, 3, 3]), &z(&ys), &spec, true);
        })) {
            Ok(()) => {}
            Err(p) => f.push(format!("{what}: panicked: {}", panic_text(p))),
        }
    }
    assert!(f.is_empty(), "{f:#?}");
}
