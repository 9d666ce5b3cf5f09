//! Precision end to end in the library (issue 18 item 4): a bf16 run of a small PixelCNN on the
//! embedded binarized MNIST reaches the fp32 run's test NLL within 1 % after the same steps from
//! the same seed (CPU), and causality holds exactly at every precision (perturbation: the mask
//! guarantees it whatever the rounding), on the CPU and on the emulated CUDA backend.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, EmuOptions, Emulator};
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::models::{ModelConfig, ModelKind};

use common::models::assert_causal_at;
use common::precision::{assert_bf16_within_one_percent, mnist_nll_at};

#[test]
fn bf16_learns_binarized_mnist_within_one_percent_of_fp32() {
    let steps = 60;
    let cfg = ModelConfig::plain(ModelKind::PixelCnn, (28, 28, 1), true, (2, 8, 16));
    let fp32 = mnist_nll_at(&cfg, Precision::Fp32, steps);
    let bf16 = mnist_nll_at(&cfg, Precision::Bf16, steps);
    assert_bf16_within_one_percent("PixelCNN", steps, fp32, bf16);
}

/// The perturbation probe ([`assert_causal_at`]) on a small PixelCNN of 5 x 5 RGB images.
fn assert_pixelcnn_causal_at<B: Backend>(be: &B, precision: Precision, what: &str) {
    let cfg = ModelConfig::plain(ModelKind::PixelCnn, (5, 5, 3), false, (1, 4, 8));
    assert_causal_at(be, &cfg, precision, what);
}

#[test]
fn causal_at_every_precision_on_the_cpu() {
    let b = CpuBackend::new();
    for p in Precision::ALL {
        assert_pixelcnn_causal_at(&b, p, "cpu");
    }
}

#[test]
fn causal_at_every_precision_on_the_emulator() {
    let e = Emulator::new(EmuOptions {
        seed: 11,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator");
    let g = CudaBackend::new(e);
    for p in Precision::ALL {
        assert_pixelcnn_causal_at(&g, p, "emulator");
    }
}
