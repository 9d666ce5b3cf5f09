//! The recurrences' stepwise kernel choices on CUDA: which version of the step kernels a scan
//! runs ([`scan_version`], [`bwd_step_version`]), the unfused state product at each precision
//! ([`unfused_product`]), the packed state weight of the v2+ kernels ([`pack_weight`],
//! `lstm_pack_ss_v2` in kernels/lstm.cu) and the step kernels' launch configuration
//! ([`step_cfg`]). The versions themselves are described once, in `cuda/lstm.rs`'s header;
//! the callers are `cuda/lstm.rs`, `cuda/diag_lstm_skewed.rs` and `cuda/lstm_persistent.rs`.

use super::launch_args::{grid_stride, int};
use super::lstm::{scan_op, T};
use super::variants::{persistent_kernel_version, stepwise_kernel_version};
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg};
use crate::backend::geometry::{Geometry, Scan};
use crate::backend::{Backend, Precision};
use crate::error::Result;

/// The unfused recurrence's state-to-state product of `pass` (`"ss_fwd"` or
/// `"ss_bwd_data"`) for `geo`'s scan at the backend's precision: `(kernel, version)`, the
/// version its launch configuration ([`step_cfg`]) and weight layout follow. At fp32 the
/// selected version's kernel (`<scan>_<pass>_v<N>`, [`scan_version`] forward,
/// [`bwd_step_version`] backward); at tf32 / bf16, whatever the selection, the rounded twin of
/// the newest fp32 kernel, `<scan>_ss_fwd_<p>_v2` / `<scan>_ss_bwd_data_<p>_v3` (v1 has no
/// rounded twin, and v3's forward is v2's), on the packed weight.
pub(super) fn unfused_product<E: Executor>(
    be: &CudaBackend<E>,
    pass: &str,
    geo: &Geometry,
) -> (String, u32) {
    let scan = scan_op(geo);
    let backward = pass == "ss_bwd_data";
    match be.precision() {
        Precision::Fp32 => {
            let v = if backward {
                bwd_step_version(be, geo)
            } else {
                scan_version(be, geo)
            };
            (format!("{scan}_{pass}_v{v}"), v)
        }
        p => {
            let v = if backward { 3 } else { 2 };
            (format!("{scan}_{pass}_{p}_v{v}"), v)
        }
    }
}

/// Version of the selected recurrence kernels of `geo`'s scan but the backward step kernels
/// (1, 2 or 8; the mapping: [`stepwise_kernel_version`]): the version of the stepwise forward
/// kernels (`<scan>_step_fwd`, `<scan>_ss_fwd`, the materialised layout's
/// `diag_lstm_skewed_*_fwd`), of the weight gradient and its pack, and of the persistent v1 /
/// v2 kernels
/// (`cuda/lstm_persistent.rs`; the persistent forward and backward have a v4 to v7 too:
/// [`persistent_fwd_version`], [`persistent_bwd_version`]).
pub(super) fn scan_version<E: Executor>(be: &CudaBackend<E>, geo: &Geometry) -> u32 {
    stepwise_kernel_version(selected_version(be, geo), false)
}

/// Version of the selected backward step kernels of `geo`'s scan (1, 2, 3 or 8;
/// [`stepwise_kernel_version`]: v4 and v5 run v3's, v6 and v7 v2's, the H200's fastest; v8 its
/// own):
/// `<scan>_step_bwd`, `<scan>_ss_bwd_data` and the materialised layout's
/// `diag_lstm_skewed_{step_bwd,ss_bwd_data}`.
pub(super) fn bwd_step_version<E: Executor>(be: &CudaBackend<E>, geo: &Geometry) -> u32 {
    stepwise_kernel_version(selected_version(be, geo), true)
}

/// Version of the selected recurrence kernels of `geo`'s scan as the persistent forward takes
/// it (1, 2, 4, 5, 6 or 7: `<scan>_persistent_fwd_v<N>`, before `cuda/lstm_persistent.rs`'s
/// fallbacks; [`persistent_kernel_version`]: selection v3 is v2 here).
pub(super) fn persistent_fwd_version<E: Executor>(be: &CudaBackend<E>, geo: &Geometry) -> u32 {
    persistent_kernel_version(selected_version(be, geo), false)
}

/// Version of the selected recurrence kernels of `geo`'s scan as the persistent backward
/// takes it (1 to 7: `<scan>_persistent_bwd_v<N>`, before `cuda/lstm_persistent.rs`'s
/// fallbacks); with [`persistent_fwd_version`] the only users of the selection's v4 to v7.
pub(super) fn persistent_bwd_version<E: Executor>(be: &CudaBackend<E>, geo: &Geometry) -> u32 {
    persistent_kernel_version(selected_version(be, geo), true)
}

/// The number of `geo`'s scan's selected recurrence version ([`super::RowLstm`],
/// [`super::DiagLstm`]).
fn selected_version<E: Executor>(be: &CudaBackend<E>, geo: &Geometry) -> u32 {
    let v = be.variants();
    match geo.scan {
        Scan::Row { .. } => v.row_lstm.number(),
        Scan::Diagonal => v.diag_lstm.number(),
    }
}

/// The state weight packed once per call for the v2 step kernels (`lstm_pack_ss_v2`):
/// `[taps, h, 4, h]` for the forward product, `[taps, 4h, h]` (`transposed`) for the
/// backward's, consecutive units in consecutive words.
pub(super) fn pack_weight<E: Executor>(
    be: &CudaBackend<E>,
    w_ss: &T<E>,
    geo: &Geometry,
    transposed: bool,
) -> Result<T<E>> {
    let op = "lstm_pack_ss_v2";
    let packed = be.tensor_uninit(&[w_ss.numel()])?;
    let args = vec![
        arg(w_ss),
        arg(&packed),
        Arg::I32(int(op, "h", geo.hidden)?),
        Arg::I32(int(op, "taps", geo.taps())?),
        Arg::I32(i32::from(transposed)),
    ];
    be.launch(op, &grid_stride(w_ss.numel()), &args)?;
    Ok(packed)
}

/// Positions and units of one v2 step kernel's block tile (`LSTM_V2_POS`, `LSTM_V2_UNITS` in
/// kernels/lstm_v2.cuh), the units of a v3 backward tile (`LSTM_V3_UNITS`, lstm_v3.cuh), and
/// their threads.
const STEP_TILE_POSITIONS: usize = 16;
const STEP_TILE_UNITS: usize = 32;
const STEP_TILE_UNITS_V3: usize = 128;
const STEP_TILE_THREADS: u32 = 128;

/// Launch configuration of a step kernel: v1 grid-stride over `elements` threads' work; v2
/// and v8 one block per (image, 16 positions of the step's `len`) x 32 units of `hidden`; v3
/// (the backward step kernels) the same per 128 units.
pub(super) fn step_cfg(
    version: u32,
    n: usize,
    len: usize,
    hidden: usize,
    elements: usize,
) -> Result<LaunchCfg> {
    if version == 1 {
        return Ok(grid_stride(elements));
    }
    let op = "lstm step v2";
    let blocks = n * len.div_ceil(STEP_TILE_POSITIONS);
    // v3's backward tiles are 128 units wide, v2's and v8's 32.
    let units = if version == 3 {
        STEP_TILE_UNITS_V3
    } else {
        STEP_TILE_UNITS
    };
    Ok(LaunchCfg {
        grid: [
            int(op, "n * position tiles", blocks)? as u32,
            int(op, "unit tiles", hidden.div_ceil(units))? as u32,
            1,
        ],
        block: [STEP_TILE_THREADS, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    })
}
