//! The Diagonal LSTM's materialised layout on CUDA (layout 2 of `cuda/lstm.rs`, the paper's
//! literal formulation, kept as the comparison variant): the forward and backward scans over
//! skewed maps, host side of the `diag_lstm_skewed_*` kernels of `kernels/diag_lstm_skewed.cu`
//! (and `diag_lstm_skewed_persistent.cu`).
//! `cuda/lstm.rs` checks the operands, chooses the layout and reduces `d_w_ss` afterwards on
//! the unskewed maps, as for layout 1. The stepwise scans run the selected version
//! ([`super::DiagLstm`]: v2 with the state weight packed once per call and the register-tiled
//! `diag_lstm_skewed_*_v2` kernels), so does the persistent one (`cuda/lstm_persistent.rs`);
//! the unfused gate kernels are v1 only.

use super::launch_args::{grid_stride, int};
use super::lstm::{Dims, T};
use super::lstm_persistent::launch_persistent;
use super::lstm_steps::{bwd_step_version, pack_weight, scan_version, step_cfg};
use super::skew::{skew, unskew};
use super::{arg, CudaBackend, Executor};
use crate::backend::geometry::Geometry;
use crate::backend::{skewed_width, LstmState, Recurrence};
use crate::error::Result;

/// The sizes of the materialised layout's kernels: the skewed width `Ws` as an `int`, after
/// checking that the skewed maps' `n * H * Ws` positions fit in one too.
fn skewed_dims(op: &'static str, n: usize, geo: &Geometry) -> Result<(usize, i32)> {
    let ws = skewed_width(geo.height, geo.width);
    int(op, "n * H * Ws", n * geo.height * ws)?;
    Ok((ws, int(op, "Ws", ws)?))
}

/// The Diagonal LSTM's forward in the materialised layout (2) by any path, for `n` images
/// (`n * H * W > 0`): skew `is`, scan the skewed columns with the `diag_lstm_skewed_*`
/// kernels over skewed state maps (written at every image position; no kernel reads the
/// padding), unskew the states into the usual layout.
#[allow(clippy::too_many_arguments)]
pub(super) fn skewed_forward<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    is: &T<E>,
    w_ss: &T<E>,
    rec: Recurrence,
    n: usize,
    geo: &Geometry,
    dims: &Dims,
) -> Result<LstmState<CudaBackend<E>>> {
    let (ws, ws_i) = skewed_dims(op, n, geo)?;
    let hd = geo.hidden;
    let is_s = skew(be, is)?;
    let hs = [n, geo.height, ws, hd];
    // Written at every image position; the padding is never read: the scan kernels skip the
    // taps and cells outside the image, and the unskew reads image positions only.
    let h_s = be.tensor_uninit(&hs)?;
    let c_s = be.tensor_uninit(&hs)?;
    let gates_s = be.tensor_uninit(&is_s.shape)?;
    // The stepwise scans' kernel version; v2 and v8 read the state weight packed once.
    let version = scan_version(be, geo);
    let packed = if version >= 2 && rec != Recurrence::Persistent {
        Some(pack_weight(be, w_ss, geo, false)?)
    } else {
        None
    };
    let w = packed.as_ref().unwrap_or(w_ss);
    let args_for = |extra: &[i32]| {
        let mut args = vec![arg(&is_s), arg(w), arg(&h_s), arg(&c_s), arg(&gates_s)];
        dims.push(&mut args, extra);
        args
    };
    match rec {
        Recurrence::Persistent => {
            let args = args_for(&[ws_i]);
            launch_persistent(be, op, "diag_lstm_skewed_persistent_fwd", n, geo, args)?;
        }
        Recurrence::Fused => {
            for s in 0..geo.steps() {
                let m = n * geo.step_len(s);
                let args = args_for(&[ws_i, int(op, "step", s)?]);
                let cfg =
                    step_cfg(version, n, geo.step_len(s), hd, m * hd)?.with_flops(geo.ss_flops(m));
                be.launch(
                    &format!("diag_lstm_skewed_step_fwd_v{version}"),
                    &cfg,
                    &args,
                )?;
            }
        }
        Recurrence::Unfused => {
            for s in 0..geo.steps() {
                let m = n * geo.step_len(s);
                let step = int(op, "step", s)?;
                let mut args = vec![arg(&is_s), arg(w), arg(&h_s), arg(&gates_s)];
                dims.push(&mut args, &[ws_i, step]);
                let cfg = step_cfg(version, n, geo.step_len(s), hd, m * 4 * hd)?
                    .with_flops(geo.ss_flops(m));
                be.launch(&format!("diag_lstm_skewed_ss_fwd_v{version}"), &cfg, &args)?;
                let mut args = vec![arg(&gates_s), arg(&c_s), arg(&h_s)];
                dims.push(&mut args, &[ws_i, step]);
                be.launch(
                    &be.kernel_name("diag_lstm", "skewed_gates_fwd"),
                    &grid_stride(m * hd),
                    &args,
                )?;
            }
        }
    }
    Ok(LstmState {
        h: unskew(be, &h_s)?,
        c: unskew(be, &c_s)?,
        gates: unskew(be, &gates_s)?,
    })
}

/// The Diagonal LSTM's backward scan in the materialised layout (2) by any path: skew the
/// gates, `c` and `dh`, scan the skewed columns in reverse into a skewed `d_is` (written at
/// every image position; the consumers outside the image are skipped, so its padding is never
/// read), unskew it. Returns `d_is` in the usual layout.
#[allow(clippy::too_many_arguments)]
pub(super) fn skewed_backward<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    state: &LstmState<CudaBackend<E>>,
    w_ss: &T<E>,
    dh: &T<E>,
    rec: Recurrence,
    n: usize,
    geo: &Geometry,
    dims: &Dims,
) -> Result<T<E>> {
    let (ws, ws_i) = skewed_dims(op, n, geo)?;
    let hd = geo.hidden;
    let gates_s = skew(be, &state.gates)?;
    let c_s = skew(be, &state.c)?;
    let dh_s = skew(be, dh)?;
    let hs = [n, geo.height, ws, hd];
    let d_is_s = be.tensor_uninit(&gates_s.shape)?;
    // The cell gradient handed from each column to the one before; zero where a cell has no
    // successor.
    let dc_carry = be.tensor_zeroed(&hs)?;
    // The stepwise scans' kernel version; v2 and v3 read the state weight packed once
    // (transposed).
    let version = bwd_step_version(be, geo);
    let packed = if version >= 2 && rec != Recurrence::Persistent {
        Some(pack_weight(be, w_ss, geo, true)?)
    } else {
        None
    };
    let w = packed.as_ref().unwrap_or(w_ss);
    let args_for = |extra: &[i32]| {
        let mut args = vec![
            arg(w),
            arg(&gates_s),
            arg(&c_s),
            arg(&dh_s),
            arg(&dc_carry),
            arg(&d_is_s),
        ];
        dims.push(&mut args, extra);
        args
    };
    match rec {
        Recurrence::Persistent => {
            let args = args_for(&[ws_i]);
            launch_persistent(be, op, "diag_lstm_skewed_persistent_bwd", n, geo, args)?;
        }
        Recurrence::Fused => {
            for s in (0..geo.steps()).rev() {
                let m = n * geo.step_len(s);
                let args = args_for(&[ws_i, int(op, "step", s)?]);
                let cfg =
                    step_cfg(version, n, geo.step_len(s), hd, m * hd)?.with_flops(geo.ss_flops(m));
                be.launch(
                    &format!("diag_lstm_skewed_step_bwd_v{version}"),
                    &cfg,
                    &args,
                )?;
            }
        }
        Recurrence::Unfused => {
            // The recurrent part of dh: zero on the last column, which has no consumer.
            let dh_carry = be.tensor_zeroed(&hs)?;
            for s in (0..geo.steps()).rev() {
                let m = n * geo.step_len(s);
                let mut args = vec![
                    arg(&gates_s),
                    arg(&c_s),
                    arg(&dh_s),
                    arg(&dh_carry),
                    arg(&dc_carry),
                    arg(&d_is_s),
                ];
                dims.push(&mut args, &[ws_i, int(op, "step", s)?]);
                be.launch(
                    &be.kernel_name("diag_lstm", "skewed_gates_bwd"),
                    &grid_stride(m * hd),
                    &args,
                )?;
                if s > 0 {
                    let prev = n * geo.step_len(s - 1);
                    let mut args = vec![arg(w), arg(&d_is_s), arg(&dh_carry)];
                    dims.push(&mut args, &[ws_i, int(op, "step", s - 1)?]);
                    let cfg = step_cfg(version, n, geo.step_len(s - 1), hd, prev * hd)?
                        .with_flops(geo.ss_flops(m));
                    be.launch(
                        &format!("diag_lstm_skewed_ss_bwd_data_v{version}"),
                        &cfg,
                        &args,
                    )?;
                }
            }
        }
    }
    unskew(be, &d_is_s)
}
