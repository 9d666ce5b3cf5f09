//! Class bias (`kernels/class_bias.cu`) against its CPU twin: the forward adds row `label[b]`
//! of the table at every position of image `b`; the backward sums, per class, the gradient over
//! that class's images and positions. Both kernels compute in the CPU twin's order, so the
//! results must agree bit for bit (relative error 0), on every scheduling seed. A label that
//! is not a class gives NaN on CUDA (labels are not read back) and an error on the CPU.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::Backend;

use crate::{assert_close, cpu_tensor, pair, to_gpu};

crate::parity_tests! {
    class_bias => super::check_class_bias,
    class_bias_invalid_labels => super::check_invalid_labels,
}

/// `(n, H, W, F, K)`: one image, one position; a partial block; several blocks of features
/// and images, some classes without images (their gradient rows must be written as zero).
const SHAPES: [(usize, usize, usize, usize, usize); 4] = [
    (1, 1, 1, 1, 1),
    (3, 2, 5, 7, 4),
    (5, 4, 3, 130, 10),
    (2, 7, 1, 300, 3),
];

/// Forward and backward of every shape, bit for bit.
pub fn check_class_bias<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, &(n, h, w, f, k)) in SHAPES.iter().enumerate() {
        let seed = 40 + s as u64;
        let (x, xg) = pair(gpu, &[n, h, w, f], seed, 1.0);
        let (t, tg) = pair(gpu, &[k, f], seed + 100, 1.0);
        let lv: Vec<f32> = (0..n).map(|b| ((b * 7 + s) % k) as f32).collect();
        let l = cpu_tensor(&[n], &lv);
        let lg = to_gpu(gpu, &l);
        let what = format!("class_bias n{n} {h}x{w} F{f} K{k}");
        let want = cpu.class_bias_forward(&x, &t, &l).unwrap();
        let got = gpu.class_bias_forward(&xg, &tg, &lg).unwrap();
        assert_close(&format!("{what} forward"), gpu, &got, &want, 0.0);
        let want = cpu.class_bias_backward(&x, &l, k).unwrap();
        let got = gpu.class_bias_backward(&xg, &lg, k).unwrap();
        assert_close(&format!("{what} backward"), gpu, &got, &want, 0.0);
    }
}

/// Labels that are not classes: NaN outputs for those images on CUDA, the others exact; an
/// error on the CPU; wrong shapes are errors on both.
pub fn check_invalid_labels<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (x, xg) = pair(gpu, &[4, 2, 2, 3], 7, 1.0);
    let (t, tg) = pair(gpu, &[2, 3], 8, 1.0);
    let lv = [0.0, 2.0, 1.5, -1.0];
    let l = cpu_tensor(&[4], &lv);
    let lg = to_gpu(gpu, &l);
    assert!(cpu.class_bias_forward(&x, &t, &l).is_err());
    let got = gpu
        .class_bias_forward(&xg, &tg, &lg)
        .unwrap()
        .to_vec(gpu)
        .unwrap();
    let per = 2 * 2 * 3;
    for (b, img) in got.chunks(per).enumerate() {
        if b == 0 {
            for (i, &v) in img.iter().enumerate() {
                assert_eq!(v, x.data[i] + t.data[i % 3], "image 0 element {i}");
            }
        } else {
            assert!(
                img.iter().all(|v| v.is_nan()),
                "image {b} (label {}) not NaN",
                lv[b]
            );
        }
    }
    let short = cpu_tensor(&[3], &[0.0, 1.0, 0.0]);
    assert!(cpu.class_bias_forward(&x, &t, &short).is_err());
    assert!(gpu
        .class_bias_forward(&xg, &tg, &to_gpu(gpu, &short))
        .is_err());
    let wrong_table = cpu_tensor(&[2, 4], &[0.0; 8]);
    assert!(gpu
        .class_bias_forward(&xg, &to_gpu(gpu, &wrong_table), &lg)
        .is_err());
    assert!(gpu.class_bias_backward(&xg, &lg, 0).is_err());
}
