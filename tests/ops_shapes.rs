//! Every CPU op's shape checks: a tensor of the wrong rank, shape or length is an `Err` naming
//! the op, never a panic and never an `Ok` (the checks live above the backends, in
//! src/backend/geometry/, so the CUDA backend makes the same ones: tests/geometry.rs). The
//! ops' values are tests/ops_reference.rs.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{AdamStep, Backend, ConvSpec, Mask, RmsPropStep};

use common::helpers::{panic_text, t, T};

// ---------------------------------------------------------------------------------------------
// Shape errors: an Err, never a panic
// ---------------------------------------------------------------------------------------------

/// Runs `f`, recording in `failures` an `Ok` or a panic (a shape error must be an `Err`).
fn expect_err<R>(failures: &mut Vec<String>, what: &str, f: impl FnOnce() -> pixelrnn::Result<R>) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Err(_)) => {}
        Ok(Ok(_)) => failures.push(format!("{what}: returned Ok")),
        Err(p) => failures.push(format!("{what}: panicked: {}", panic_text(p))),
    }
}

#[test]
fn shape_errors_are_errors() {
    let be = CpuBackend::new();
    let mut f = Vec::new();
    let z = |shape: &[usize]| T::zeros(&be, shape).unwrap();
    let spec = ConvSpec::new(3, 3, Mask::B, 3, 3, 5);
    let (x, w, b, dy) = (
        z(&[1, 4, 4, 3]),
        z(&[5, 3, 3, 3]),
        z(&[5]),
        z(&[1, 4, 4, 5]),
    );
    // The well-formed call works, so every error below comes from the one bad argument.
    be.masked_conv2d_forward(&x, &w, &b, &spec).unwrap();
    be.masked_conv2d_backward(&x, &w, &dy, &spec, true).unwrap();

    let fwd = |x: &T, w: &T, b: &T, s: &ConvSpec| be.masked_conv2d_forward(x, w, b, s);
    let bwd = |x: &T, w: &T, dy: &T, s: &ConvSpec| be.masked_conv2d_backward(x, w, dy, s, true);
    expect_err(&mut f, "conv fwd: weight in-features 2 vs input 3", || {
        fwd(&x, &z(&[5, 2, 3, 3]), &b, &spec)
    });
    expect_err(&mut f, "conv fwd: weight 1x3 vs spec 3x3", || {
        fwd(&x, &z(&[5, 3, 1, 3]), &b, &spec)
    });
    expect_err(&mut f, "conv fwd: weight 3x1 vs spec 3x3", || {
        fwd(&x, &z(&[5, 3, 3, 1]), &b, &spec)
    });
    expect_err(&mut f, "conv fwd: 3-D weight", || {
        fwd(&x, &z(&[5, 3, 9]), &b, &spec)
    });
    expect_err(&mut f, "conv fwd: bias [4] for 5 outputs", || {
        fwd(&x, &w, &z(&[4]), &spec)
    });
    expect_err(&mut f, "conv fwd: bias [1, 5]", || {
        fwd(&x, &w, &z(&[1, 5]), &spec)
    });
    expect_err(&mut f, "conv fwd: 3-D input", || {
        fwd(&z(&[4, 4, 3]), &w, &b, &spec)
    });
    expect_err(&mut f, "conv fwd: input features 4 vs weight 3", || {
        fwd(&z(&[1, 4, 4, 4]), &w, &b, &spec)
    });
    let even = ConvSpec::new(2, 2, Mask::B, 3, 3, 5);
    expect_err(&mut f, "conv fwd: even 2x2 kernel", || {
        fwd(&x, &z(&[5, 3, 2, 2]), &b, &even)
    });
    let no_groups = ConvSpec::new(3, 3, Mask::B, 0, 3, 5);
    expect_err(&mut f, "conv fwd: zero groups", || {
        fwd(&x, &w, &b, &no_groups)
    });
    expect_err(&mut f, "conv bwd: dy features 4 vs 5 outputs", || {
        bwd(&x, &w, &z(&[1, 4, 4, 4]), &spec)
    });
    expect_err(&mut f, "conv bwd: dy width 3 vs input 4", || {
        bwd(&x, &w, &z(&[1, 4, 3, 5]), &spec)
    });
    expect_err(&mut f, "conv bwd: dy batch 2 vs input 1", || {
        bwd(&x, &w, &z(&[2, 4, 4, 5]), &spec)
    });
    expect_err(&mut f, "conv bwd: weight in-features 2 vs input 3", || {
        bwd(&x, &z(&[5, 2, 3, 3]), &dy, &spec)
    });
    expect_err(&mut f, "conv bwd: 3-D input", || {
        bwd(&z(&[4, 4, 3]), &w, &dy, &spec)
    });

    expect_err(&mut f, "relu_backward: [4] vs [5]", || {
        be.relu_backward(&z(&[4]), &z(&[5]))
    });
    expect_err(&mut f, "relu_backward: [2, 3] vs [3, 2]", || {
        be.relu_backward(&z(&[2, 3]), &z(&[3, 2]))
    });
    expect_err(&mut f, "add: [4] vs [5]", || be.add(&z(&[4]), &z(&[5])));
    expect_err(&mut f, "add: [2, 3] vs [6]", || {
        be.add(&z(&[2, 3]), &z(&[6]))
    });

    expect_err(&mut f, "softmax_nll: 255 logits per channel", || {
        be.softmax_nll(&z(&[2, 255]), &z(&[2, 1]), 1.0)
    });
    expect_err(&mut f, "softmax_nll: 256 logits for 3 channels", || {
        be.softmax_nll(&z(&[2, 256]), &z(&[2, 3]), 1.0)
    });
    expect_err(&mut f, "softmax_nll: leading [2] vs [3]", || {
        be.softmax_nll(&z(&[2, 256]), &z(&[3, 1]), 1.0)
    });
    expect_err(&mut f, "softmax_nll: rank 3 vs rank 2", || {
        be.softmax_nll(&z(&[1, 2, 256]), &z(&[2, 1]), 1.0)
    });
    expect_err(&mut f, "softmax_nll: zero channels", || {
        be.softmax_nll(&z(&[2, 0]), &z(&[2, 0]), 1.0)
    });
    expect_err(&mut f, "bernoulli_nll: [4, 1] vs [5, 1]", || {
        be.bernoulli_nll(&z(&[4, 1]), &z(&[5, 1]), 1.0)
    });
    expect_err(&mut f, "bernoulli_nll: [4, 2] vs [4, 1]", || {
        be.bernoulli_nll(&z(&[4, 2]), &z(&[4, 1]), 1.0)
    });

    let rms = RmsPropStep {
        lr: 0.1,
        decay: 0.9,
        eps: 1e-8,
    };
    expect_err(&mut f, "rmsprop: grad [5] vs param [4]", || {
        be.rmsprop_update(&mut z(&[4]), &z(&[5]), &mut z(&[4]), rms)
    });
    expect_err(&mut f, "rmsprop: ms [5] vs param [4]", || {
        be.rmsprop_update(&mut z(&[4]), &z(&[4]), &mut z(&[5]), rms)
    });
    let adam = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        bias_correction1: 0.1,
        bias_correction2: 0.001,
    };
    expect_err(&mut f, "adam: grad [5] vs param [4]", || {
        be.adam_update(&mut z(&[4]), &z(&[5]), &mut z(&[4]), &mut z(&[4]), adam)
    });
    expect_err(&mut f, "adam: m [5] vs param [4]", || {
        be.adam_update(&mut z(&[4]), &z(&[4]), &mut z(&[5]), &mut z(&[4]), adam)
    });
    expect_err(&mut f, "adam: v [2, 2] vs param [4]", || {
        be.adam_update(&mut z(&[4]), &z(&[4]), &mut z(&[4]), &mut z(&[2, 2]), adam)
    });
    assert!(f.is_empty(), "shape errors not reported as Err: {f:#?}");
}

#[test]
fn loss_ops_reject_rank0_tensors() {
    // A 0-d tensor (shape [], one element) has no channel axis: an Err, not a panic.
    let be = CpuBackend::new();
    let mut f = Vec::new();
    let s = || t(&be, &[], &[0.0]);
    expect_err(&mut f, "softmax_nll: rank-0 logits and targets", || {
        be.softmax_nll(&s(), &s(), 1.0)
    });
    expect_err(&mut f, "bernoulli_nll: rank-0 logits and targets", || {
        be.bernoulli_nll(&s(), &s(), 1.0)
    });
    assert!(f.is_empty(), "{f:#?}");
}
