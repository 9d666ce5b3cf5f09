//! Parity of the gated activation (kernels/gated.cu) against its CPU twin (cpu/gated.rs),
//! forward and backward, on maps with odd sizes and a few special values.
//!
//! Tolerance: `FP32_REL_TOL` (tanhf and expf against Rust's tanh and exp: a few ulp).

use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::Backend;

use crate::{assert_close, cpu_tensor, pair, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    gated => super::check_gated,
    gated_errors => super::check_gated_errors,
}

/// Pre-activation shapes `[.., 2F]`: one unit, odd counts, several blocks plus a tail.
const SHAPES: [&[usize]; 4] = [&[1, 2], &[3, 5, 7, 6], &[2, 9, 10, 16], &[4099, 2]];

pub fn check_gated<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = pixelrnn::backend::cpu::CpuBackend::new();
    for (k, shape) in SHAPES.iter().enumerate() {
        let what = format!("gated {shape:?}");
        let (mut pre_c, _) = pair(gpu, shape, 10 + k as u64, 5.0);
        // Saturated tails: sigmoid gives exact 0 and 1 there, tanh exact -1 and 1.
        let specials = [30.0, -30.0, 100.0, -100.0];
        for (v, s) in pre_c.data.iter_mut().zip(specials) {
            *v = s;
        }
        let pre_g = to_gpu(gpu, &pre_c);
        let y_c = cpu.gated_forward(&pre_c).unwrap();
        let y_g = gpu.gated_forward(&pre_g).unwrap();
        assert_close(&what, gpu, &y_g, &y_c, FP32_REL_TOL);
        let out: Vec<usize> = y_c.shape.clone();
        let (dy_c, dy_g) = pair(gpu, &out, 20 + k as u64, 1.0);
        let d_c = cpu.gated_backward(&pre_c, &dy_c).unwrap();
        let d_g = gpu.gated_backward(&pre_g, &dy_g).unwrap();
        assert_close(&format!("{what} backward"), gpu, &d_g, &d_c, FP32_REL_TOL);
    }
    // NaN in, NaN out (the non-finite check downstream must see it).
    let pre = cpu_tensor(&[1, 2], &[f32::NAN, 0.5]);
    let y = gpu.gated_forward(&to_gpu(gpu, &pre)).unwrap();
    assert!(y.to_vec(gpu).unwrap()[0].is_nan(), "NaN was laundered");
}

pub fn check_gated_errors<E: Executor>(gpu: &CudaBackend<E>) {
    let odd = to_gpu(gpu, &cpu_tensor(&[2, 3], &[0.0; 6]));
    assert!(gpu.gated_forward(&odd).is_err());
    let pre = to_gpu(gpu, &cpu_tensor(&[2, 4], &[0.0; 8]));
    let dy = to_gpu(gpu, &cpu_tensor(&[2, 4], &[0.0; 8]));
    assert!(gpu.gated_backward(&pre, &dy).is_err());
}
