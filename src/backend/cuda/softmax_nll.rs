//! `softmax_nll` on CUDA: host side of `kernels/softmax_nll.cu` (CPU twin:
//! `cpu/softmax_nll.rs`). Also the shape check shared with the other ops on the output head's
//! logits (bernoulli_nll, sample_logits).
//!
//! Unlike the CPU backend, which checks the targets on the host and returns an error, an
//! invalid target (not an integer in 0..=255, or NaN) gives NaN in that sub-pixel's nll and
//! its dlogits: checking on the host would mean downloading the targets every step. The
//! training loop's non-finite-loss check reports it.

use super::elementwise::int;
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Number of values a sub-pixel can take (`SOFTMAX_NLL_VALUES` in the kernel).
pub(super) const LEVELS: usize = 256;

/// Threads of a warp (`PIXELRNN_WARP`).
pub(super) const WARP: usize = 32;

/// Checks that `logits` is `[.., per_value * c]` for `values` `[.., c]` (same leading
/// dimensions) and returns `(rows, c)`, rows being the product of the leading dimensions.
pub(super) fn head_shapes<E: Executor>(
    op: &'static str,
    logits: &Tensor<CudaBackend<E>>,
    values: &Tensor<CudaBackend<E>>,
    per_value: usize,
    what: &str,
) -> Result<(usize, usize)> {
    let channels = *values.shape.last().unwrap_or(&0);
    let lead_ok = !values.shape.is_empty()
        && logits.shape.len() == values.shape.len()
        && logits.shape[..logits.shape.len() - 1] == values.shape[..values.shape.len() - 1];
    if channels == 0 || !lead_ok || logits.shape.last() != Some(&(per_value * channels)) {
        return Err(Error::shape(
            op,
            format!(
                "logits {:?} do not match {what} {:?} ({per_value} logits per value)",
                logits.shape, values.shape
            ),
        ));
    }
    Ok((values.numel() / channels, channels))
}

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
    let (positions, channels) = head_shapes(OP, logits, targets, LEVELS, "targets")?;
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
