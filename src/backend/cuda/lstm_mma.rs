//! Selection and launch shape of the recurrences' tensor-core fused step kernels
//! (kernels/row_lstm_mma.cu, kernels/diag_lstm_mma.cu; bodies in kernels/lstm_mma.cuh), the
//! one place that decides when they run: at tf32 / bf16, for the fused recurrence with the
//! skew folded (`cuda/lstm.rs` calls it there). CPU twin: the CPU recurrences at the same
//! precision (`cpu/lstm.rs`).

use super::launch_args::int;
use super::lstm::scan_op;
use super::{CudaBackend, Executor, LaunchCfg};
use crate::backend::geometry::Geometry;
use crate::backend::{Backend, Precision};
use crate::error::Result;

/// Positions of a tensor-core step kernel's block tile (`MCM_M`, kernels/masked_conv2d_mma.cuh),
/// the units of a forward tile (16 units x 4 gates = `MCM_N` columns, `LSTM_MMA_FWD_UNITS`) and
/// of a backward one (`LSTM_MMA_BWD_UNITS`), and their threads (8 warps).
const MMA_TILE_POSITIONS: usize = 128;
pub(super) const MMA_FWD_UNITS: usize = 16;
pub(super) const MMA_BWD_UNITS: usize = 64;
const MMA_TILE_THREADS: u32 = 256;

/// The tensor-core fused step kernel of `pass` (`step_fwd`, `step_bwd`) for `geo`'s scan at the
/// backend's precision: `<scan>_<pass>_<tf32|bf16>_v<N>` (kernels/row_lstm_mma.cu,
/// kernels/diag_lstm_mma.cu), N from [`super::Variants::lstm_mma`] (default v2: the
/// epilogue's float2 pairs, docs/kernels.md); `None` at fp32, where the fp32 selections apply. The one place
/// that chooses them; the callers run it for the fused recurrence with the skew folded (the
/// materialised layout's scans are in `cuda/diag_lstm_skewed.rs`).
pub(super) fn mma_step<E: Executor>(
    be: &CudaBackend<E>,
    pass: &str,
    geo: &Geometry,
) -> Option<String> {
    let precision = be.precision();
    let version = be.variants().lstm_mma.number();
    (precision != Precision::Fp32)
        .then(|| format!("{}_{pass}_{precision}_v{version}", scan_op(geo)))
}

/// Launch configuration of a tensor-core step kernel: one block of 256 threads per 128
/// positions of the step (`len` per image, the images' positions consecutive) x `units` of
/// `hidden`.
pub(super) fn mma_step_cfg(n: usize, len: usize, hidden: usize, units: usize) -> Result<LaunchCfg> {
    let op = "lstm step mma";
    Ok(LaunchCfg {
        grid: [
            int(op, "position tiles", (n * len).div_ceil(MMA_TILE_POSITIONS))? as u32,
            int(op, "unit tiles", hidden.div_ceil(units))? as u32,
            1,
        ],
        block: [MMA_TILE_THREADS, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    })
}
