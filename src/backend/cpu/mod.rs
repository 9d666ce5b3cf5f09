//! The CPU backend: the reference for every op, and multi-threaded (rayon) with GEMM-based
//! convolutions so that it is also a usable engine.

mod backend_impl;
pub mod bernoulli_nll;
pub mod class_bias;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod gated;
pub mod gemm;
pub mod logistic_mixture;
pub mod loss_targets;
pub mod lstm;
pub mod lstm_at;
pub mod lstm_cell;
pub mod lstm_precision;
pub mod lstm_tile;
pub mod masked_conv2d;
pub mod masked_conv2d_at;
pub mod masked_conv2d_precision;
pub mod mirror_shift;
pub mod optim;
pub mod position;
pub mod sample_logits;
pub mod skew;
pub mod softmax_nll;

use super::geometry::pointwise::same_shapes;
use super::geometry::{
    ConvGeom, GatedGeom, HeadGeom, LstmGeom, MixtureGeom, PackGeom, PositionGeom, SkewGeom,
    Targets, TransposeGeom,
};
use super::{
    AdamStep, Backend, ConvGrads, ConvSpec, LstmState, Precision, Recurrence, RmsPropStep,
};
use crate::error::Result;
use crate::tensor::Tensor;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Host memory and the rayon thread pool.
#[derive(Clone, Debug, Default)]
pub struct CpuBackend {
    /// [`Backend::precision`] as [`Precision::code`], shared by the backend's clones (as the
    /// CUDA backend's state is).
    precision: Arc<AtomicU8>,
}

impl CpuBackend {
    /// The CPU backend (uses rayon's global pool; set its size with `RAYON_NUM_THREADS` or the
    /// CLI's `--threads`).
    ///
    /// On glibc, this also asks malloc to keep freed memory instead of returning it to the
    /// system (every block from the heap, never `mmap`, no trimming): every op returns fresh
    /// buffers of several MiB, and with glibc's defaults each step paid a page fault per 4 KiB
    /// of them, about a third of a small PixelCNN training step; blocks above 32 MiB (the
    /// 32x32x3 logits) were still mapped and unmapped per step until `mmap` was switched off
    /// (docs/benchmarks.md, runs C and D). The process keeps its peak heap.
    pub fn new() -> Self {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            static ONCE: std::sync::Once = std::sync::Once::new();
            // SAFETY: mallopt only sets allocator parameters (M_TRIM_THRESHOLD = -1,
            // M_MMAP_THRESHOLD = -3; 32 MiB is glibc's largest allowed threshold on 64-bit;
            // M_MMAP_MAX = -4: 0 means no block is ever served by its own mapping, so larger
            // ones too come from the heap and are reused; glibc still maps memory when the
            // heap cannot grow).
            ONCE.call_once(|| unsafe {
                mallopt(-1, i32::MAX);
                mallopt(-3, 32 << 20);
                mallopt(-4, 0);
            });
        }
        CpuBackend::default()
    }
}

fn lstm_forward(
    op: &'static str,
    is: &Tensor<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    rec: Recurrence,
    diagonal: bool,
    precision: Precision,
) -> Result<LstmState<CpuBackend>> {
    let LstmGeom { n, geo } = LstmGeom::forward(op, is, w_ss, diagonal)?;
    let fused = lstm::fused_sweep(rec);
    let (h, c, gates) =
        lstm_precision::forward_precision(&is.data, &w_ss.data, n, &geo, fused, precision);
    let hs = vec![n, geo.height, geo.width, geo.hidden];
    Ok(LstmState {
        h: Tensor {
            shape: hs.clone(),
            data: h,
        },
        c: Tensor { shape: hs, data: c },
        gates: Tensor {
            shape: is.shape.clone(),
            data: gates,
        },
    })
}

fn lstm_backward(
    op: &'static str,
    state: &LstmState<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    dh: &Tensor<CpuBackend>,
    rec: Recurrence,
    diagonal: bool,
    precision: Precision,
) -> Result<(Tensor<CpuBackend>, Tensor<CpuBackend>)> {
    let LstmGeom { n, geo } = LstmGeom::backward(op, state, w_ss, dh, diagonal)?;
    let (d_is, d_w) = lstm_precision::backward_precision(
        &state.h.data,
        &state.c.data,
        &state.gates.data,
        &w_ss.data,
        &dh.data,
        n,
        &geo,
        lstm::fused_sweep(rec),
        precision,
    );
    Ok((
        Tensor {
            shape: state.gates.shape.clone(),
            data: d_is,
        },
        Tensor {
            shape: w_ss.shape.clone(),
            data: d_w,
        },
    ))
}

#[allow(clippy::too_many_arguments)]
fn lstm_forward_at(
    op: &'static str,
    is: &Tensor<CpuBackend>,
    w_ss: &Tensor<CpuBackend>,
    h: &mut Tensor<CpuBackend>,
    c: &mut Tensor<CpuBackend>,
    diagonal: bool,
    i: usize,
    j: usize,
    precision: Precision,
) -> Result<()> {
    let LstmGeom { n, geo } = LstmGeom::at(op, is, w_ss, h, c, diagonal, i, j)?;
    lstm_at::forward_at_precision(
        &is.data,
        &w_ss.data,
        &mut h.data,
        &mut c.data,
        n,
        &geo,
        i,
        j,
        precision,
    );
    Ok(())
}

/// A fused loss `op` with targets of `kind`: the shapes checked, then `kernel(channels, nll,
/// dlogits)` fills the per-target NLL and the logits' gradient and says whether every target
/// was valid (else the error [`Targets::invalid`], as on every backend).
fn fused_loss(
    op: &'static str,
    kind: Targets,
    logits: &Tensor<CpuBackend>,
    targets: &Tensor<CpuBackend>,
    kernel: impl FnOnce(usize, &mut [f32], &mut [f32]) -> bool,
) -> Result<(Tensor<CpuBackend>, Tensor<CpuBackend>)> {
    let channels = HeadGeom::loss(op, logits, targets, kind)?.channels;
    let mut nll = vec![0.0; targets.numel()];
    let mut dlogits = vec![0.0; logits.numel()];
    if !kernel(channels, &mut nll, &mut dlogits) {
        return Err(kind.invalid(op));
    }
    Ok((
        Tensor {
            shape: targets.shape.clone(),
            data: nll,
        },
        Tensor {
            shape: logits.shape.clone(),
            data: dlogits,
        },
    ))
}

/// Buffers of at least this many floats (64 MiB) are allocated fallibly.
const LARGE_ALLOC: usize = 1 << 24;
