//! The Row LSTM and Diagonal LSTM recurrences on CUDA: host side of `kernels/lstm.cu` (the
//! pointwise gate/cell update shared by both scans), `kernels/row_lstm.cu` and
//! `kernels/diag_lstm.cu`. CPU twin: `cpu/lstm.rs` (the same [`Geometry`] from
//! `backend::geometry`, the same steps); the materialised layout's scans are in
//! `cuda/diag_lstm_skewed.rs`.
//!
//! A step is an image row, or an anti-diagonal `r + j = s` of the image, which is a column of
//! the skewed map: the skew is folded into the kernels' indexing. The unfused and fused
//! variants run the scan on the host, one step of the whole batch per launch, in stream order,
//! so each step sees the previous step's states; the persistent variant runs it on the device.
//! The state maps are allocated once per call.
//!
//! The three variants ([`Recurrence`]) and their kernels are described once, in
//! docs/ARCHITECTURE.md, "Recurrence variants"; the persistent launches are chosen and
//! configured in `cuda/lstm_persistent.rs`.
//!
//! Every backward path ends with one weight gradient: `d_w_ss` is reduced once over every
//! position after the scan. Every dpre is final by then and `h` is kept, so there is no
//! per-step partial buffer and no floating-point atomic: the result is deterministic and
//! independent of the thread schedule.
//!
//! Kernel versions ([`super::RowLstm`], [`super::DiagLstm`] in [`super::Variants`], one per
//! scan; v8 the default): v1 runs one thread per (position, unit) or per gate row, reading the
//! state weight in its PyTorch layout (a lane stride of `h * taps` floats), and one thread per
//! weight element for `d_w_ss` (`<scan>_ss_bwd_weight_v1`). v2 packs the state weight once per
//! call (`lstm_pack_ss_v2`: forward `[taps, h, 4, h]`, backward `[taps, 4h, h]`, consecutive
//! units in consecutive words) and runs register-tiled step kernels (`<scan>_step_fwd_v2`,
//! `_step_bwd_v2`, `_ss_fwd_v2`, `_ss_bwd_data_v2`: a 128-thread block per 16 positions of the
//! step x 32 units, all four gates; `step_cfg`), and the weight gradient as a tiled GEMM over
//! positions, split over blocks in fixed position ranges whose partials a second kernel adds in
//! order (`lstm_ss_bwd_weight_v2`, `lstm_ss_bwd_weight_sum_v2`; `weight_grad_split` in
//! `cuda/lstm_weight.rs`). The
//! materialised layout's stepwise scans follow the selection too (`diag_lstm_skewed_*_v2`, the
//! same bodies over the skewed maps), and so does the persistent recurrence (v2: one
//! thread-block cluster per image over the v2 tile bodies, `cuda/lstm_persistent.rs`).
//! v3 is v2 but for the stepwise backward through time (`_step_bwd_v3`, `_ss_bwd_data_v3`,
//! and the skewed twins: 4 positions x 4 units per thread, 16 x 128 per block, 8 FLOPs per
//! shared word instead of 2; [`bwd_step_version`], which also selects the persistent v3
//! backward, `cuda/lstm_persistent.rs`); its forward, weight gradient and persistent forward
//! are v2's ([`scan_version`]). v4 and v5 are v3 here; v6 and v7 are v2 here (they differ in
//! the persistent kernels only, `cuda/lstm_persistent.rs`). v8 runs stepwise kernels of its own
//! both ways (`<scan>_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8` and the skewed twins,
//! kernels/*_v8.cu: v2's launches, tiles, packed weight and bits, the weight words read 8
//! features at a time) and v7's persistent ones. `lstm_gates_*` (the unfused gate pass) is v1
//! under every version.
//!
//! Precision: at tf32 / bf16 the fused recurrence with the skew folded runs the tensor-core
//! step kernels (`<scan>_step_{fwd,bwd}_{tf32,bf16}_v1`, chosen by `cuda/lstm_mma.rs`,
//! `mma_step`) in place of `_step_fwd_v<N>` / `_step_bwd_v<N>`, on the same packed weight.
//! The unfused recurrence runs the rounded SIMT twins of the newest fp32 state products,
//! `<scan>_ss_fwd_{tf32,bf16}_v2` and `<scan>_ss_bwd_data_{tf32,bf16}_v3` (operands rounded
//! on load, fp32 FMA; [`unfused_product`]), under every selected version, as the weight
//! gradient runs `lstm_ss_bwd_weight_{tf32,bf16}_v2` (tensor cores, kernels/lstm_mma_weight.cu;
//! `_v1`, the rounded SIMT GEMM, with [`LstmWeight::V1`]) under every version.
//! The persistent recurrence (folded) runs its rounded SIMT kernels
//! (`<scan>_persistent_{fwd,bwd}_{tf32,bf16}_v<N>`, `cuda/lstm_persistent.rs`).
//!
//! Layout of the Diagonal LSTM ([`super::DiagLstmLayout`], selected with
//! [`CudaBackend::select`]): `Folded` (1, the default) folds the skew into the kernels'
//! indexing as above; `Materialised` (2) materialises it, the paper's literal formulation, as
//! the comparison variant: the forward skews `is` to
//! `[n, H, Ws, 4h]` (`skew_fwd`), runs the same three recurrences over skewed state maps
//! (`diag_lstm_skewed_*`: skewed column `t` is anti-diagonal `t`; they run the folded kernels'
//! bodies with the skewed maps' row stride, so the padding is never read) and unskews `h`, `c`
//! and the gates into the usual
//! [`LstmState`]; the backward skews the gates, `c` and `dh`, scans the skewed columns in
//! reverse, unskews `d_is` and reduces `d_w_ss` with the folded `diag_lstm_ss_bwd_weight` on the
//! unskewed maps. Both layouts give the same numbers up to fp32 rounding; layout 2 pays for the
//! six skew/unskew passes and the skewed maps' `Ws / W` (about 2x) footprint, which is what the
//! comparison measures. The one-position step of sampling (`diag_lstm_fwd_at`) has no skewed
//! twin: a single position has nothing to skew.

use super::diag_lstm_skewed::{skewed_backward, skewed_forward};
use super::launch_args::{grid_stride, int};
use super::lstm_mma::{mma_step, mma_step_cfg, MMA_BWD_UNITS, MMA_FWD_UNITS};
use super::lstm_persistent::{self, launch_persistent};
use super::lstm_precision::{self, Path};
use super::lstm_steps::{bwd_step_version, pack_weight, scan_version, step_cfg, unfused_product};
use super::lstm_weight::weight_gradient;
use super::{arg, Arg, CudaBackend, DiagLstmLayout, Executor};
use crate::backend::geometry::{Geometry, LstmGeom, Scan};
use crate::backend::{Backend, LstmState, Recurrence};
use crate::error::Result;
use crate::tensor::Tensor;

pub(super) type T<E> = Tensor<CudaBackend<E>>;

/// Whether the selected Diagonal LSTM layout is the materialised one.
fn materialised<E: Executor>(be: &CudaBackend<E>) -> bool {
    be.variants().diag_lstm_layout == DiagLstmLayout::Materialised
}

/// The precision decision for recurrence `op` by `rec` (`cuda/lstm_precision.rs`).
fn check_precision<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    rec: Recurrence,
    diagonal: bool,
) -> Result<()> {
    let path = if diagonal && materialised(be) {
        Path::Materialised
    } else {
        Path::Folded(rec)
    };
    lstm_precision::check(op, path, be.precision())
}

/// The op name of a scan's kernels (`row_lstm_*` or `diag_lstm_*`).
pub(super) fn scan_op(geo: &Geometry) -> &'static str {
    match geo.scan {
        Scan::Row { .. } => "row_lstm",
        Scan::Diagonal => "diag_lstm",
    }
}

/// A recurrence's sizes as the kernels' `int` parameters, checked once per call.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub(super) n: i32,
    pub(super) height: i32,
    pub(super) width: i32,
    pub(super) hidden: i32,
    /// The Row LSTM's kernel width (the diagonal kernels have no `k` parameter).
    k: Option<i32>,
}

impl Dims {
    /// Checks that `n`, the map and the products the kernels form in `int` (`n * H * W`,
    /// the weight's `4h * h * taps`) fit.
    pub(super) fn new(op: &'static str, n: usize, geo: &Geometry) -> Result<Self> {
        int(op, "n * H * W", n * geo.height * geo.width)?;
        int(
            op,
            "4h * h * taps",
            4 * geo.hidden * geo.hidden * geo.taps(),
        )?;
        Ok(Dims {
            n: int(op, "n", n)?,
            height: int(op, "H", geo.height)?,
            width: int(op, "W", geo.width)?,
            hidden: int(op, "h", geo.hidden)?,
            k: match geo.scan {
                Scan::Row { k } => Some(int(op, "k", k)?),
                Scan::Diagonal => None,
            },
        })
    }

    /// Appends a scan kernel's trailing parameters `n, H, W, h[, k]` and then `extra`.
    pub(super) fn push<'a, E: Executor>(&self, args: &mut Vec<Arg<'a, E>>, extra: &[i32]) {
        args.extend(
            [self.n, self.height, self.width, self.hidden]
                .into_iter()
                .chain(self.k)
                .chain(extra.iter().copied())
                .map(Arg::I32),
        );
    }

    /// Appends the gate kernels' trailing parameters `n, H, W, h, step, diagonal` (no `k`:
    /// the pointwise update does not depend on the taps).
    fn push_gates<'a, E: Executor>(&self, args: &mut Vec<Arg<'a, E>>, step: i32) {
        let diagonal = i32::from(self.k.is_none());
        args.extend(
            [self.n, self.height, self.width, self.hidden, step, diagonal]
                .into_iter()
                .map(Arg::I32),
        );
    }
}

/// The fused (`fused`) or unfused forward: the scan on the host, one step of the whole batch
/// per launch (fused) or two (unfused), into `state`.
#[allow(clippy::too_many_arguments)]
fn stepwise_forward<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    is: &T<E>,
    w_ss: &T<E>,
    state: &LstmState<CudaBackend<E>>,
    n: usize,
    geo: &Geometry,
    dims: &Dims,
    fused: bool,
) -> Result<()> {
    let hd = geo.hidden;
    let scan = scan_op(geo);
    let (ss_kernel, ss_version) = unfused_product(be, "ss_fwd", geo);
    // The fused steps' version; the unfused product's (v2 at tf32 / bf16 whatever the
    // selection) is `ss_version`.
    let version = if fused {
        scan_version(be, geo)
    } else {
        ss_version
    };
    let mma = if fused {
        mma_step(be, "step_fwd", geo)
    } else {
        None
    };
    // v2, v8 and the tensor-core step read the state weight packed once for the whole scan.
    let packed = if version >= 2 || mma.is_some() {
        Some(pack_weight(be, w_ss, geo, false)?)
    } else {
        None
    };
    let w = packed.as_ref().unwrap_or(w_ss);
    for s in 0..geo.steps() {
        let m = n * geo.step_len(s);
        let step = int(op, "step", s)?;
        if fused {
            let mut args = vec![
                arg(is),
                arg(w),
                arg(&state.h),
                arg(&state.c),
                arg(&state.gates),
            ];
            dims.push(&mut args, &[step]);
            let (kernel, cfg) = match &mma {
                Some(k) => (
                    k.clone(),
                    mma_step_cfg(n, geo.step_len(s), hd, MMA_FWD_UNITS)?,
                ),
                None => (
                    format!("{scan}_step_fwd_v{version}"),
                    step_cfg(version, n, geo.step_len(s), hd, m * hd)?,
                ),
            };
            be.launch(&kernel, &cfg.with_flops(geo.ss_flops(m)), &args)?;
        } else {
            let mut args = vec![arg(is), arg(w), arg(&state.h), arg(&state.gates)];
            dims.push(&mut args, &[step]);
            let cfg =
                step_cfg(version, n, geo.step_len(s), hd, m * 4 * hd)?.with_flops(geo.ss_flops(m));
            be.launch(&ss_kernel, &cfg, &args)?;
            let mut args = vec![arg(&state.gates), arg(&state.c), arg(&state.h)];
            dims.push_gates(&mut args, step);
            be.launch(
                &be.kernel_name("lstm", "gates_fwd"),
                &grid_stride(m * hd),
                &args,
            )?;
        }
    }
    Ok(())
}

/// The forward recurrence of either scan (`diagonal`) by any path.
fn forward<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    is: &T<E>,
    w_ss: &T<E>,
    rec: Recurrence,
    diagonal: bool,
) -> Result<LstmState<CudaBackend<E>>> {
    let lg = LstmGeom::forward(op, is, w_ss, diagonal)?;
    check_precision(be, op, rec, diagonal)?;
    let (n, geo) = (lg.n, lg.geo);
    if rec == Recurrence::Persistent {
        // At tf32 / bf16 the persistent path runs where a cluster fits (refusal: here).
        lstm_persistent::check_precision(be, op, n, &geo, false)?;
    }
    let hs = lg.state_shape();
    // Every position is written by its step, so none of the maps needs clearing.
    let state = LstmState {
        h: be.tensor_uninit(&hs)?,
        c: be.tensor_uninit(&hs)?,
        gates: be.tensor_uninit(&is.shape)?,
    };
    if lg.positions() == 0 {
        return Ok(state);
    }
    let dims = Dims::new(op, n, &geo)?;
    if diagonal && materialised(be) {
        return skewed_forward(be, op, is, w_ss, rec, n, &geo, &dims);
    }
    match rec {
        Recurrence::Persistent => {
            let mut args = vec![
                arg(is),
                arg(w_ss),
                arg(&state.h),
                arg(&state.c),
                arg(&state.gates),
            ];
            dims.push(&mut args, &[]);
            let stem = format!("{}_persistent_fwd", scan_op(&geo));
            launch_persistent(be, op, &stem, n, &geo, args)?;
        }
        Recurrence::Fused => stepwise_forward(be, op, is, w_ss, &state, n, &geo, &dims, true)?,
        Recurrence::Unfused => stepwise_forward(be, op, is, w_ss, &state, n, &geo, &dims, false)?,
    }
    Ok(state)
}

/// Backward through time of either scan by any path; returns `(d_is, d_w_ss)`.
fn backward<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    state: &LstmState<CudaBackend<E>>,
    w_ss: &T<E>,
    dh: &T<E>,
    rec: Recurrence,
    diagonal: bool,
) -> Result<(T<E>, T<E>)> {
    let lg = LstmGeom::backward(op, state, w_ss, dh, diagonal)?;
    check_precision(be, op, rec, diagonal)?;
    let (n, geo) = (lg.n, lg.geo);
    if rec == Recurrence::Persistent {
        lstm_persistent::check_precision(be, op, n, &geo, true)?;
    }
    if lg.positions() == 0 {
        return Ok((
            be.tensor_uninit(&state.gates.shape)?,
            be.tensor_zeroed(&w_ss.shape)?,
        ));
    }
    let dims = Dims::new(op, n, &geo)?;
    let d_is = if diagonal && materialised(be) {
        skewed_backward(be, op, state, w_ss, dh, rec, n, &geo, &dims)?
    } else {
        folded_backward(be, op, state, w_ss, dh, rec, n, &geo, &dims)?
    };
    // d_w_ss from the unskewed maps whatever the layout.
    let dw = weight_gradient(be, &state.h, &d_is, w_ss, n, &geo, &dims)?;
    Ok((d_is, dw))
}

/// The backward scan of either scan with the skew folded into the indexing (every Row LSTM,
/// the Diagonal LSTM's layout 1) by any path; returns `d_is`.
#[allow(clippy::too_many_arguments)]
fn folded_backward<E: Executor>(
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
    let hd = geo.hidden;
    let hs = [n, geo.height, geo.width, hd];
    // Every position's dpre is written by its step.
    let d_is = be.tensor_uninit(&state.gates.shape)?;
    let scan = scan_op(geo);
    // The cell gradient handed from each step to the one before; zero where a cell has no
    // successor (the last row / the last column).
    let dc_carry = be.tensor_zeroed(&hs)?;
    // The stepwise paths' kernel version (the unfused product's: v3 at tf32 / bf16 whatever
    // the selection); v2 and v3 read the state weight packed once (transposed).
    let (ss_kernel, ss_version) = unfused_product(be, "ss_bwd_data", geo);
    let version = if rec == Recurrence::Unfused {
        ss_version
    } else {
        bwd_step_version(be, geo)
    };
    let mma = if rec == Recurrence::Fused {
        mma_step(be, "step_bwd", geo)
    } else {
        None
    };
    let packed = if (version >= 2 || mma.is_some()) && rec != Recurrence::Persistent {
        Some(pack_weight(be, w_ss, geo, true)?)
    } else {
        None
    };
    let w = packed.as_ref().unwrap_or(w_ss);
    match rec {
        Recurrence::Persistent => {
            // One launch for the whole scan, the steps in reverse inside the kernel.
            let mut args = vec![
                arg(w_ss),
                arg(&state.gates),
                arg(&state.c),
                arg(dh),
                arg(&dc_carry),
                arg(&d_is),
            ];
            dims.push(&mut args, &[]);
            launch_persistent(be, op, &format!("{scan}_persistent_bwd"), n, geo, args)?;
        }
        Recurrence::Fused => {
            for s in (0..geo.steps()).rev() {
                let m = n * geo.step_len(s);
                let mut args = vec![
                    arg(w),
                    arg(&state.gates),
                    arg(&state.c),
                    arg(dh),
                    arg(&dc_carry),
                    arg(&d_is),
                ];
                dims.push(&mut args, &[int(op, "step", s)?]);
                let (kernel, cfg) = match &mma {
                    Some(k) => (
                        k.clone(),
                        mma_step_cfg(n, geo.step_len(s), hd, MMA_BWD_UNITS)?,
                    ),
                    None => (
                        format!("{scan}_step_bwd_v{version}"),
                        step_cfg(version, n, geo.step_len(s), hd, m * hd)?,
                    ),
                };
                be.launch(&kernel, &cfg.with_flops(geo.ss_flops(m)), &args)?;
            }
        }
        Recurrence::Unfused => {
            // The recurrent part of dh: zero on the last step, which has no consumer.
            let dh_carry = be.tensor_zeroed(&hs)?;
            for s in (0..geo.steps()).rev() {
                let m = n * geo.step_len(s);
                let mut args = vec![
                    arg(&state.gates),
                    arg(&state.c),
                    arg(dh),
                    arg(&dh_carry),
                    arg(&dc_carry),
                    arg(&d_is),
                ];
                dims.push_gates(&mut args, int(op, "step", s)?);
                be.launch(
                    &be.kernel_name("lstm", "gates_bwd"),
                    &grid_stride(m * hd),
                    &args,
                )?;
                if s > 0 {
                    // The previous step's recurrent dh, from this step's dpre.
                    let prev = n * geo.step_len(s - 1);
                    let mut args = vec![arg(w), arg(&d_is), arg(&dh_carry)];
                    dims.push(&mut args, &[int(op, "step", s - 1)?]);
                    let cfg = step_cfg(version, n, geo.step_len(s - 1), hd, prev * hd)?
                        .with_flops(geo.ss_flops(m));
                    be.launch(&ss_kernel, &cfg, &args)?;
                }
            }
        }
    }
    Ok(d_is)
}

/// [`crate::backend::Backend::row_lstm_forward`] on CUDA.
pub fn row_forward<E: Executor>(
    be: &CudaBackend<E>,
    is: &T<E>,
    w_ss: &T<E>,
    rec: Recurrence,
) -> Result<LstmState<CudaBackend<E>>> {
    forward(be, "row_lstm_forward", is, w_ss, rec, false)
}

/// [`crate::backend::Backend::row_lstm_backward`] on CUDA.
pub fn row_backward<E: Executor>(
    be: &CudaBackend<E>,
    state: &LstmState<CudaBackend<E>>,
    w_ss: &T<E>,
    dh: &T<E>,
    rec: Recurrence,
) -> Result<(T<E>, T<E>)> {
    backward(be, "row_lstm_backward", state, w_ss, dh, rec, false)
}

/// [`crate::backend::Backend::diag_lstm_forward`] on CUDA.
pub fn diag_forward<E: Executor>(
    be: &CudaBackend<E>,
    is: &T<E>,
    w_ss: &T<E>,
    rec: Recurrence,
) -> Result<LstmState<CudaBackend<E>>> {
    forward(be, "diag_lstm_forward", is, w_ss, rec, true)
}

/// [`crate::backend::Backend::diag_lstm_backward`] on CUDA.
pub fn diag_backward<E: Executor>(
    be: &CudaBackend<E>,
    state: &LstmState<CudaBackend<E>>,
    w_ss: &T<E>,
    dh: &T<E>,
    rec: Recurrence,
) -> Result<(T<E>, T<E>)> {
    backward(be, "diag_lstm_backward", state, w_ss, dh, rec, true)
}
