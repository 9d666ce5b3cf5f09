//! Parity of the multi-tensor optimizer updates (`optim_rmsprop_multi`, `optim_adam_multi`:
//! one launch over every parameter, src/backend/cuda/multi_tensor.rs) against the CPU's
//! per-tensor updates (the trait's defaults): tensors of many sizes (empty, one element, more
//! than one chunk), with and without the clipping scale, over three steps; a tensor shared
//! with a clone is copied, not written through. (One launch per step: tests/counter_gate.rs.)

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{AdamStep, Backend, RmsPropStep};
use pixelrnn::tensor::Tensor;

use crate::{assert_close, cpu_tensor, pair, random, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    rmsprop_update_all => super::check_rmsprop_update_all,
    adam_update_all => super::check_adam_update_all,
}

/// Parameter lengths: empty, tiny, one chunk (16384) exactly, past it, three chunks and a bit.
const SIZES: [usize; 6] = [0, 1, 16384, 16385, 3 * 16384 + 5, 37];

/// A list of tensors of [`SIZES`] on both backends, random in `[-scale, scale)`, made positive
/// when `positive`.
fn list<E: Executor>(
    gpu: &CudaBackend<E>,
    seed: u64,
    scale: f32,
    positive: bool,
) -> (Vec<Tensor<CpuBackend>>, Vec<Tensor<CudaBackend<E>>>) {
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let s = seed + i as u64;
            if positive {
                let data: Vec<f32> = random(s, n, 1.0).iter().map(|v| v * v + 1e-3).collect();
                let c = cpu_tensor(&[n], &data);
                let g = to_gpu(gpu, &c);
                (c, g)
            } else {
                pair(gpu, &[n], s, scale)
            }
        })
        .unzip()
}

fn refs<B: Backend>(v: &mut [Tensor<B>]) -> Vec<&mut Tensor<B>> {
    v.iter_mut().collect()
}

/// Compares every tensor of `got` with `want`.
fn close_all<E: Executor>(
    what: &str,
    gpu: &CudaBackend<E>,
    got: &[Tensor<CudaBackend<E>>],
    want: &[Tensor<CpuBackend>],
) {
    for (k, (g, c)) in got.iter().zip(want).enumerate() {
        assert_close(&format!("{what} [{k}]"), gpu, g, c, FP32_REL_TOL);
    }
}

pub fn check_rmsprop_update_all<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let step = RmsPropStep {
        lr: 1e-2,
        decay: 0.95,
        eps: 1e-8,
    };
    for (s, grad_scale) in [1.0f32, 0.37].into_iter().enumerate() {
        let seed = 700 + 100 * s as u64;
        let (mut p_cpu, mut p_gpu) = list(gpu, seed, 1.0, false);
        let (mut ms_cpu, mut ms_gpu) = list(gpu, seed + 10, 1.0, true);
        let snapshot = ms_gpu[2].clone();
        let snapshot_host = ms_cpu[2].data.clone();
        for k in 0..3 {
            let (mut g_cpu, mut g_gpu) = list(gpu, seed + 20 + 10 * k, 0.5, false);
            cpu.rmsprop_update_all(
                &mut refs(&mut p_cpu),
                &mut refs(&mut g_cpu),
                &mut refs(&mut ms_cpu),
                grad_scale,
                step,
            )
            .unwrap();
            gpu.rmsprop_update_all(
                &mut refs(&mut p_gpu),
                &mut refs(&mut g_gpu),
                &mut refs(&mut ms_gpu),
                grad_scale,
                step,
            )
            .unwrap();
            // The gradients are scaled in place, as scale_inplace would.
            close_all("rmsprop grads", gpu, &g_gpu, &g_cpu);
        }
        let what = format!("rmsprop_update_all, scale {grad_scale}");
        close_all(&format!("{what} param"), gpu, &p_gpu, &p_cpu);
        close_all(&format!("{what} ms"), gpu, &ms_gpu, &ms_cpu);
        assert_eq!(
            snapshot.to_vec(gpu).unwrap(),
            snapshot_host,
            "{what}: clone"
        );
    }
}

pub fn check_adam_update_all<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (beta1, beta2) = (0.9f32, 0.999f32);
    for (s, grad_scale) in [1.0f32, 0.5, 2.0e-3].into_iter().enumerate() {
        let seed = 900 + 100 * s as u64;
        let (mut p_cpu, mut p_gpu) = list(gpu, seed, 1.0, false);
        let (mut m_cpu, mut m_gpu) = list(gpu, seed + 10, 0.1, false);
        let (mut v_cpu, mut v_gpu) = list(gpu, seed + 20, 1.0, true);
        let snapshot = p_gpu[3].clone();
        let snapshot_host = p_cpu[3].data.clone();
        for t in 1..=3 {
            let step = AdamStep {
                lr: 1e-3,
                beta1,
                beta2,
                eps: 1e-8,
                bias_correction1: 1.0 - beta1.powi(t),
                bias_correction2: 1.0 - beta2.powi(t),
            };
            let (mut g_cpu, mut g_gpu) = list(gpu, seed + 30 + 10 * t as u64, 0.5, false);
            cpu.adam_update_all(
                &mut refs(&mut p_cpu),
                &mut refs(&mut g_cpu),
                &mut refs(&mut m_cpu),
                &mut refs(&mut v_cpu),
                grad_scale,
                step,
            )
            .unwrap();
            gpu.adam_update_all(
                &mut refs(&mut p_gpu),
                &mut refs(&mut g_gpu),
                &mut refs(&mut m_gpu),
                &mut refs(&mut v_gpu),
                grad_scale,
                step,
            )
            .unwrap();
            close_all("adam grads", gpu, &g_gpu, &g_cpu);
        }
        let what = format!("adam_update_all, scale {grad_scale}");
        close_all(&format!("{what} param"), gpu, &p_gpu, &p_cpu);
        close_all(&format!("{what} m"), gpu, &m_gpu, &m_cpu);
        close_all(&format!("{what} v"), gpu, &v_gpu, &v_cpu);
        assert_eq!(
            snapshot.to_vec(gpu).unwrap(),
            snapshot_host,
            "{what}: clone"
        );
    }
    // Lists of different lengths are one error, the CPU's.
    let (mut p, _) = list(gpu, 1, 1.0, false);
    let (mut g, _) = list(gpu, 2, 1.0, false);
    let err = cpu
        .adam_update_all(
            &mut refs(&mut p),
            &mut refs(&mut g[..2]),
            &mut [],
            &mut [],
            1.0,
            AdamStep {
                lr: 1e-3,
                beta1,
                beta2,
                eps: 1e-8,
                bias_correction1: 0.1,
                bias_correction2: 0.001,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("adam_update_all"), "{err}");
}
