//! Parity of the skew family (kernels/{skew,mirror_shift}.cu) against the CPU twins: skew /
//! unskew (wide, square and tall maps, and their round trip), mirror and the shifts; and the
//! shape errors of the recurrences and the moves (bad operands are errors, never launches).
//!
//! Tolerance: the moves are copies and must match bit for bit.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{Backend, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::{assert_close, pair};

crate::parity_tests! {
    skew_unskew => super::check_skew,
    mirror_shift => super::check_mirror_shift,
    lstm_shape_errors => super::check_shape_errors,
}

/// Copies must be exact.
const EXACT: f64 = 0.0;

/// Skew and unskew, wide, square and tall maps, against the CPU.
pub fn check_skew<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let shapes: [[usize; 4]; 5] = [
        [2, 3, 5, 4],
        [1, 4, 4, 1],
        [1, 6, 3, 2],
        [2, 1, 1, 3],
        [1, 7, 2, 5],
    ];
    for (k, shape) in shapes.into_iter().enumerate() {
        let (x_c, x_g) = pair(gpu, &shape, 200 + k as u64, 1.0);
        let want = cpu.skew(&x_c).expect("cpu skew");
        let got = gpu.skew(&x_g).expect("gpu skew");
        assert_close(&format!("skew {shape:?}"), gpu, &got, &want, EXACT);

        // unskew of a skewed map full of values (padding too), and round trip.
        let (s_c, s_g) = pair(gpu, &want.shape, 300 + k as u64, 1.0);
        let want = cpu.unskew(&s_c).expect("cpu unskew");
        let got = gpu.unskew(&s_g).expect("gpu unskew");
        assert_close(&format!("unskew {:?}", s_c.shape), gpu, &got, &want, EXACT);
        let back = gpu.unskew(&gpu.skew(&x_g).expect("skew")).expect("unskew");
        assert_close(&format!("unskew(skew) {shape:?}"), gpu, &back, &x_c, EXACT);
    }
}

/// Mirror, shift down and shift up against the CPU, including H > W and one-row maps.
pub fn check_mirror_shift<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let shapes: [[usize; 4]; 4] = [[2, 3, 5, 4], [1, 6, 3, 2], [1, 1, 7, 3], [3, 4, 1, 1]];
    for (k, shape) in shapes.into_iter().enumerate() {
        let (x_c, x_g) = pair(gpu, &shape, 400 + k as u64, 1.0);
        for name in ["mirror_width", "shift_down", "shift_up"] {
            let (want, got) = match name {
                "mirror_width" => (cpu.mirror_width(&x_c), gpu.mirror_width(&x_g)),
                "shift_down" => (cpu.shift_down(&x_c), gpu.shift_down(&x_g)),
                _ => (cpu.shift_up(&x_c), gpu.shift_up(&x_g)),
            };
            let want = want.expect("cpu");
            let got = got.unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
            assert_close(&format!("{name} {shape:?}"), gpu, &got, &want, EXACT);
        }
    }
}

/// Bad operands are shape errors, never launches.
pub fn check_shape_errors<E: Executor>(gpu: &CudaBackend<E>) {
    let zeros = |shape: &[usize]| Tensor::zeros(gpu, shape).expect("zeros");
    let is = zeros(&[1, 3, 4, 8]);
    let rec = Recurrence::Fused;
    let is_shape = |r: pixelrnn::error::Result<_>, what: &str| match r {
        Err(pixelrnn::error::Error::Shape { .. }) => {}
        Err(e) => panic!("{what}: expected a shape error, got {e}"),
        Ok(_) => panic!("{what}: expected a shape error, got a result"),
    };
    is_shape(
        gpu.row_lstm_forward(&is, &zeros(&[8, 2, 1, 2]), rec)
            .map(|_| ()),
        "even k",
    );
    is_shape(
        gpu.row_lstm_forward(&is, &zeros(&[8, 3, 1, 3]), rec)
            .map(|_| ()),
        "weight of another h",
    );
    is_shape(
        gpu.diag_lstm_forward(&is, &zeros(&[8, 2, 1, 3]), rec)
            .map(|_| ()),
        "row weight for the diagonal scan",
    );
    is_shape(
        gpu.diag_lstm_forward(&zeros(&[1, 3, 4, 6]), &zeros(&[8, 2, 2, 1]), rec)
            .map(|_| ()),
        "features not 4h",
    );
    let state = gpu
        .diag_lstm_forward(&is, &zeros(&[8, 2, 2, 1]), rec)
        .expect("forward");
    is_shape(
        gpu.diag_lstm_backward(&state, &zeros(&[8, 2, 2, 1]), &zeros(&[1, 3, 4, 3]), rec)
            .map(|_| ()),
        "dh of another shape",
    );
    let (mut h, mut c) = (zeros(&[1, 3, 4, 2]), zeros(&[1, 3, 4, 2]));
    is_shape(
        gpu.row_lstm_forward_at(&zeros(&[1, 8]), &zeros(&[8, 2, 1, 3]), &mut h, &mut c, 3, 0),
        "position outside",
    );
    is_shape(
        gpu.diag_lstm_forward_at(&zeros(&[1, 4]), &zeros(&[8, 2, 2, 1]), &mut h, &mut c, 0, 0),
        "pre-activations of another h",
    );
    is_shape(
        gpu.skew(&zeros(&[1, 3, 0, 2])).map(|_| ()),
        "skew of width 0",
    );
    is_shape(
        gpu.unskew(&zeros(&[1, 3, 6, 2])).map(|_| ()),
        "unskew of no image's width",
    );
    is_shape(
        gpu.mirror_width(&zeros(&[3, 4])).map(|_| ()),
        "mirror of a matrix",
    );
    is_shape(
        gpu.shift_down(&zeros(&[3, 4, 5])).map(|_| ()),
        "shift of a 3-d tensor",
    );
}
