//! The precision of the CPU LSTM recurrences (twins of the tensor-core recurrence kernels):
//! which operands of the state-to-state GEMMs are rounded at tf32/bf16, the helpers that round
//! them, and the entry points at a [`Precision`] ([`forward_precision`],
//! [`backward_precision`]) that hand the rounded weight to [`super::lstm`]'s sweeps.
//!
//! At tf32/bf16 the state-to-state GEMMs round their operands and accumulate in fp32, as the
//! tensor-core kernels do: forward, the gathered previous states and the packed state weight;
//! backward data, the gate gradients (d_pre) and the state weight; weight gradient, d_pre and
//! the gathered states. Cell state, gates, nonlinearities and the outputs (h, c, gates, d_is)
//! stay fp32. Each operand is rounded once: the weight once per call ([`pack_state_weight_as`]),
//! the states as they are gathered ([`gather_as`]), d_pre as it is copied for its product
//! ([`round_in_place`]). At fp32 nothing is rounded and the arithmetic is the fp32 path's, bit
//! for bit.

use super::lstm::{
    backward_fused, backward_unfused, forward_fused, forward_unfused, gather, pack_state_weight,
    unpack_state_weight, Forward, Geometry,
};
use crate::backend::Precision;

/// [`gather`], then the gathered states rounded as GEMM operands of `precision` (nothing done
/// at fp32).
#[inline]
pub(super) fn gather_as(
    geo: &Geometry,
    h_img: &[f32],
    r: usize,
    j: usize,
    col: &mut [f32],
    precision: Precision,
) {
    gather(geo, h_img, r, j, col);
    round_in_place(col, precision);
}

/// Rounds `v` in place as GEMM operands of `precision` (nothing done at fp32).
#[inline]
pub(super) fn round_in_place(v: &mut [f32], precision: Precision) {
    if precision != Precision::Fp32 {
        for x in v {
            *x = precision.round(*x);
        }
    }
}

/// [`pack_state_weight`], rounded as a GEMM operand of `precision`: the packed weight that
/// every state-to-state product reads (rounded once per call).
pub fn pack_state_weight_as(w: &[f32], geo: &Geometry, precision: Precision) -> Vec<f32> {
    let mut wp = pack_state_weight(w, geo);
    round_in_place(&mut wp, precision);
    wp
}

/// [`super::lstm::forward`] at `precision`: the gathered previous states and the packed state
/// weight rounded (module comment), fp32 accumulation, everything else fp32.
pub fn forward_precision(
    is: &[f32],
    w: &[f32],
    n: usize,
    geo: &Geometry,
    fused: bool,
    precision: Precision,
) -> Forward {
    let wp = pack_state_weight_as(w, geo, precision);
    if fused {
        forward_fused(is, &wp, n, geo, precision)
    } else {
        forward_unfused(is, &wp, n, geo, precision)
    }
}

/// [`super::lstm::backward`] at `precision`: the state gradient `d_pre . W^T` with d_pre and
/// the packed weight rounded, the weight gradient `cols^T . d_pre` with the gathered states
/// and d_pre rounded, fp32 accumulation; `d_is` (= d_pre) itself is returned unrounded.
#[allow(clippy::too_many_arguments)]
pub fn backward_precision(
    h: &[f32],
    c: &[f32],
    gates: &[f32],
    w: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
    fused: bool,
    precision: Precision,
) -> (Vec<f32>, Vec<f32>) {
    let wp = pack_state_weight_as(w, geo, precision);
    let (d_is, dwp) = if fused {
        backward_fused(h, c, gates, &wp, dh, n, geo, precision)
    } else {
        backward_unfused(h, c, gates, &wp, dh, n, geo, precision)
    };
    (d_is, unpack_state_weight(&dwp, geo))
}
