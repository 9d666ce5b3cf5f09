//! `softmax_nll` on CUDA: host side of `kernels/softmax_nll.cu` (CPU twin:
//! `cpu/softmax_nll.rs`). Also the warp-per-row launch shared with sample_logits.
//!
//! An invalid target (not an integer in 0..=255, or NaN) is an error, as on the CPU: the
//! kernel gives NaN in that sub-pixel's nll and dlogits, and the `loss_targets` check launched
//! beside it turns that into [`crate::backend::geometry::Targets::invalid`] (the design and
//! its cost: `cuda/loss_targets.rs`).

use super::launch_args::int;
use super::loss_targets;
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK};
use crate::backend::geometry::{HeadGeom, Targets};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Threads of a warp (`PIXELRNN_WARP`).
pub(super) const WARP: usize = 32;

/// One warp per `(row, channel)`, `BLOCK / 32` warps per block: the launch of the warp-per-row
/// kernels (softmax_nll, sample_logits).
pub(super) fn warp_per_row(op: &'static str, rows: usize) -> Result<LaunchCfg> {
    let blocks = rows.div_ceil(BLOCK as usize / WARP);
    // gridDim.x may be up to 2^31 - 1; these kernels have no grid-stride loop.
    let blocks = u32::try_from(blocks)
        .ok()
        .filter(|&b| b <= i32::MAX as u32)
        .ok_or_else(|| Error::shape(op, format!("{rows} rows need more than 2^31 blocks")))?;
    Ok(LaunchCfg::linear(blocks, BLOCK))
}

/// A loss's output: the per-value NLL and the logits' gradient.
pub(super) type LossAndGrad<E> = (Tensor<CudaBackend<E>>, Tensor<CudaBackend<E>>);

/// Fused 256-way softmax NLL and its gradient (`softmax_nll_fwd_bwd_v<N>`).
pub fn softmax_nll<E: Executor>(
    be: &CudaBackend<E>,
    logits: &Tensor<CudaBackend<E>>,
    targets: &Tensor<CudaBackend<E>>,
    grad_scale: f32,
) -> Result<LossAndGrad<E>> {
    const OP: &str = "softmax_nll";
    let HeadGeom {
        rows: positions,
        channels,
    } = HeadGeom::loss(OP, logits, targets, Targets::Levels)?;
    loss_targets::start(be, OP, targets, Targets::Levels)?;
    let nll = be.tensor_uninit(&targets.shape)?;
    let dlogits = be.tensor_uninit(&logits.shape)?;
    if positions > 0 {
        be.launch(
            &be.kernel_name(OP, "fwd_bwd"),
            &warp_per_row(OP, positions * channels)?,
            &[
                arg(logits),
                arg(targets),
                arg(&nll),
                arg(&dlogits),
                Arg::I32(int(OP, "positions", positions)?),
                Arg::I32(int(OP, "channels", channels)?),
                Arg::F32(grad_scale),
            ],
        )?;
    }
    Ok((nll, dlogits))
}
