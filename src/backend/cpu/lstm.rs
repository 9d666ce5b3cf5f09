//! The LSTM recurrences on the CPU, written once for both scans (Row LSTM rows, Diagonal
//! BiLSTM anti-diagonals) and both paths (fused, unfused): the sweeps, forward and backward,
//! and the packing of the state weight. CPU twins of `kernels/lstm.cu`, `kernels/row_lstm.cu`
//! and `kernels/diag_lstm.cu`.
//!
//! The sweeps run at a [`Precision`]; what is rounded at tf32/bf16, and the entry points that
//! take a precision ([`forward_precision`], [`backward_precision`]), are
//! [`super::lstm_precision`]'s (re-exported here, where callers have always found them).
//!
//! A scan says, for each position, which earlier positions its state-to-state taps read and
//! which position its cell state continues (`backend::geometry::Geometry`). The two paths are
//! described once, with the CUDA ones, in docs/ARCHITECTURE.md, "Recurrence variants".

use rayon::prelude::*;

use super::gemm::{sgemm, sgemm_serial, MatRef};
use super::lstm_cell::{block, cell_backward, cell_forward, unblock, LANES};
use super::lstm_precision::{gather_as, round_in_place};
use super::lstm_tile::rows_times;
use crate::backend::{Precision, Recurrence};
// The entry points at a precision, and the rounded weight pack, where callers have always
// found them (`cpu::lstm::forward_precision`, ...).
pub use super::lstm_precision::{backward_precision, forward_precision, pack_state_weight_as};
// The CPU twins' signatures take the scan's geometry, device-neutral (`backend::geometry`).
pub use crate::backend::geometry::scan::{Geometry, Scan};
// `tanh` is the cell's; tests reach it here.
pub use super::lstm_cell::tanh;

/// Packs `[4h, h, kh, kw]` into `[taps * h, 4h]` (tap-major rows, as the gathers produce).
pub fn pack_state_weight(w: &[f32], geo: &Geometry) -> Vec<f32> {
    let [g, hd, kh, kw] = geo.weight_shape();
    let taps = kh * kw;
    let mut p = vec![0.0f32; taps * hd * g];
    for o in 0..g {
        for u in 0..hd {
            for t in 0..taps {
                p[(t * hd + u) * g + o] = w[(o * hd + u) * taps + t];
            }
        }
    }
    p
}

/// Inverse of [`pack_state_weight`] for the gradient.
pub(super) fn unpack_state_weight(p: &[f32], geo: &Geometry) -> Vec<f32> {
    let [g, hd, kh, kw] = geo.weight_shape();
    let taps = kh * kw;
    let mut w = vec![0.0f32; g * hd * taps];
    for o in 0..g {
        for u in 0..hd {
            for t in 0..taps {
                w[(o * hd + u) * taps + t] = p[(t * hd + u) * g + o];
            }
        }
    }
    w
}

/// `dst.copy_from_slice(src)` for the per-position vectors of the sweeps (h or 4h floats):
/// blocks of [`LANES`] with a fixed-size copy each, so that no `memmove` call is made per
/// position (those calls were a tenth of a Diagonal BiLSTM step).
#[inline(always)]
fn copy_small(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_small: lengths differ");
    let mut d = dst.chunks_exact_mut(LANES);
    let mut s = src.chunks_exact(LANES);
    for (dc, sc) in (&mut d).zip(&mut s) {
        unblock(dc, &block(sc));
    }
    for (a, &b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = b;
    }
}

/// Asks the CPU to start loading the cache lines of `v` (a hint; no effect on results). The
/// fused backward reads each step's gates, cells and gradients at positions far apart in
/// memory (a Diagonal step's positions are `W - 1` pixels apart), which the hardware
/// prefetchers do not follow: prefetching the next step while the current one is computed
/// hides those misses.
#[inline(always)]
fn prefetch(v: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < v.len() {
            // SAFETY: `off < v.len()`, so the address lies inside `v`; a prefetch never faults
            // and does not change memory.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(v.as_ptr().add(off).cast::<i8>()) };
            off += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Gathers the state-to-state input of position `(r, j)` from one image's hidden states
/// (zeros for taps outside the image).
#[inline]
pub(super) fn gather(geo: &Geometry, h_img: &[f32], r: usize, j: usize, col: &mut [f32]) {
    let hd = geo.hidden;
    for t in 0..geo.taps() {
        let dst = &mut col[t * hd..(t + 1) * hd];
        match geo.neighbour(r, j, t) {
            Some(p) => copy_small(dst, &h_img[p * hd..(p + 1) * hd]),
            None => dst.fill(0.0),
        }
    }
}

/// Whether recurrence variant `rec` runs as the fused sweep on the CPU (else the unfused
/// per-step GEMMs). [`Recurrence::Persistent`] is the fused sweep: that sweep already makes one
/// pass per image with the packed weights in cache, which is what the persistent variant adds
/// on CUDA.
pub fn fused_sweep(rec: Recurrence) -> bool {
    match rec {
        Recurrence::Fused | Recurrence::Persistent => true,
        Recurrence::Unfused => false,
    }
}

/// Outputs of a forward recurrence: `(h, c, gates)`, NHWC.
pub type Forward = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Forward over a batch of `n` images at fp32. `is`: `[n, H, W, 4h]`; `w`: the state weight
/// in `[4h, h, kh, kw]` layout.
pub fn forward(is: &[f32], w: &[f32], n: usize, geo: &Geometry, fused: bool) -> Forward {
    forward_precision(is, w, n, geo, fused, Precision::Fp32)
}

/// The fused sweep: each image on its own thread, its steps in order; per step one small
/// product for all the step's positions ([`rows_times`], the arithmetic `forward_at` shares),
/// then the gates position by position.
pub(super) fn forward_fused(
    is: &[f32],
    wp: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> Forward {
    let (hd, plane) = (geo.hidden, geo.height * geo.width);
    let g = 4 * hd;
    let tk = geo.taps() * hd;
    let mut h = vec![0.0f32; n * plane * hd];
    let mut c = vec![0.0f32; n * plane * hd];
    let mut gates = vec![0.0f32; n * plane * g];
    h.par_chunks_mut(plane * hd)
        .zip(c.par_chunks_mut(plane * hd))
        .zip(
            gates
                .par_chunks_mut(plane * g)
                .zip(is.par_chunks(plane * g)),
        )
        .for_each(|((h_img, c_img), (g_img, is_img))| {
            let maxp = geo.max_step_len();
            let mut cols = vec![0.0f32; maxp * tk];
            let mut pre = vec![0.0f32; maxp * g];
            for s in 0..geo.steps() {
                let (p0, m, stride) = geo.step_span(s);
                for q in 0..m {
                    let (r, j) = geo.step_position(s, q);
                    let p = p0 + q * stride;
                    gather_as(geo, h_img, r, j, &mut cols[q * tk..(q + 1) * tk], pr);
                    copy_small(&mut pre[q * g..(q + 1) * g], &is_img[p * g..(p + 1) * g]);
                }
                rows_times(&cols, tk, m, tk, wp, g, g, &mut pre, g);
                step_cells(geo, s, &pre, c_img, g_img, h_img);
            }
        });
    (h, c, gates)
}

/// Gates and cell update of the positions of step `s` of one image, from their
/// pre-activations `pre` (`[positions of the step, 4h]`, in step order), into the image's maps
/// (the fused and the unfused forward both end each step with this).
fn step_cells(
    geo: &Geometry,
    s: usize,
    pre: &[f32],
    c_img: &mut [f32],
    g_img: &mut [f32],
    h_img: &mut [f32],
) {
    let (hd, g) = (geo.hidden, 4 * geo.hidden);
    let (p0, m, stride) = geo.step_span(s);
    for q in 0..m {
        let (r, j) = geo.step_position(s, q);
        let p = p0 + q * stride;
        // The previous cell is earlier in raster order: split there to borrow it.
        let (c_done, c_rest) = c_img.split_at_mut(p * hd);
        let c_prev = geo.cell_prev(r, j).map(|q| &c_done[q * hd..(q + 1) * hd]);
        cell_forward(
            &pre[q * g..(q + 1) * g],
            c_prev,
            &mut g_img[p * g..(p + 1) * g],
            &mut c_rest[..hd],
            &mut h_img[p * hd..(p + 1) * hd],
        );
    }
}

/// The unfused path: per step, one GEMM over the step's positions in the whole batch (rows
/// `b * m + q`: image `b`, `q`-th position of the step), then a separate gate pass, run per
/// image, that writes straight into the outputs. The step buffers are allocated once.
pub(super) fn forward_unfused(
    is: &[f32],
    wp: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> Forward {
    let (hd, plane) = (geo.hidden, geo.height * geo.width);
    let g = 4 * hd;
    let tk = geo.taps() * hd;
    let mut h = vec![0.0f32; n * plane * hd];
    let mut c = vec![0.0f32; n * plane * hd];
    let mut gates = vec![0.0f32; n * plane * g];
    let rows_max = n * geo.max_step_len();
    let mut pre = vec![0.0f32; rows_max * g];
    let mut cols = vec![0.0f32; rows_max * tk];
    for s in 0..geo.steps() {
        let (p0, m, stride) = geo.step_span(s);
        let rows = n * m;
        // The step's pre-activations: input-to-state part, then one GEMM for state-to-state.
        for b in 0..n {
            let h_img = &h[b * plane * hd..(b + 1) * plane * hd];
            for q in 0..m {
                let (r, j) = geo.step_position(s, q);
                let (row, p) = (b * m + q, b * plane + p0 + q * stride);
                copy_small(&mut pre[row * g..(row + 1) * g], &is[p * g..(p + 1) * g]);
                gather_as(geo, h_img, r, j, &mut cols[row * tk..(row + 1) * tk], pr);
            }
        }
        sgemm(
            rows,
            g,
            tk,
            MatRef::row_major(&cols[..rows * tk], tk),
            MatRef::row_major(wp, g),
            &mut pre[..rows * g],
            true,
        );
        // Separate pass: gates and cell update of the whole step, one task per image.
        h.par_chunks_mut(plane * hd)
            .zip(c.par_chunks_mut(plane * hd))
            .zip(gates.par_chunks_mut(plane * g))
            .zip(pre[..rows * g].par_chunks(m * g))
            .for_each(|(((h_img, c_img), g_img), pre_img)| {
                step_cells(geo, s, pre_img, c_img, g_img, h_img);
            });
    }
    (h, c, gates)
}

/// Backward through time at fp32. `h`, `c`, `gates` from the forward; `dh` `[n, H, W, h]` is
/// the gradient reaching the hidden states from outside the recurrence. Returns `(d_is, d_w)`
/// with `d_w` in `[4h, h, kh, kw]` layout.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    h: &[f32],
    c: &[f32],
    gates: &[f32],
    w: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
    fused: bool,
) -> (Vec<f32>, Vec<f32>) {
    backward_precision(h, c, gates, w, dh, n, geo, fused, Precision::Fp32)
}

/// Transposes the packed `[taps * h, 4h]` state weight to `[4h, taps * h]`.
fn transpose_packed(wp: &[f32], tk: usize, g: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; g * tk];
    for q in 0..tk {
        for o in 0..g {
            t[o * tk + q] = wp[q * g + o];
        }
    }
    t
}

/// The fused backward: each image on its own thread, its steps in reverse. Per step: the gate
/// backward of every position, then one small product `d_pre . W^T` for the gradient reaching
/// the previous step's states. The weight gradient waits until the image is done: one GEMM
/// `cols^T . d_pre` over all its positions.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_fused(
    h: &[f32],
    c: &[f32],
    gates: &[f32],
    wp: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> (Vec<f32>, Vec<f32>) {
    let (hd, plane) = (geo.hidden, geo.height * geo.width);
    let g = 4 * hd;
    let tk = geo.taps() * hd;
    let wpt = transpose_packed(wp, tk, g);
    let mut d_is = vec![0.0f32; n * plane * g];
    let dwps: Vec<Vec<f32>> = d_is
        .par_chunks_mut(plane * g)
        .enumerate()
        .map(|(b, d_is_img)| {
            let (h_img, c_img) = (
                &h[b * plane * hd..(b + 1) * plane * hd],
                &c[b * plane * hd..(b + 1) * plane * hd],
            );
            let g_img = &gates[b * plane * g..(b + 1) * plane * g];
            let dh_img = &dh[b * plane * hd..(b + 1) * plane * hd];
            let mut dh_carry = vec![0.0f32; plane * hd];
            let mut dc_carry = vec![0.0f32; plane * hd];
            let mut dcols = vec![0.0f32; geo.max_step_len() * tk];
            // The step's d_pre rows rounded as GEMM operands (tf32/bf16 only).
            let mut dpre_r = if pr == Precision::Fp32 {
                Vec::new()
            } else {
                vec![0.0f32; geo.max_step_len() * g]
            };
            let (mut dh_tot, mut dc_prev) = (vec![0.0f32; hd], vec![0.0f32; hd]);
            for s in (0..geo.steps()).rev() {
                let (p0, m, stride) = geo.step_span(s);
                // Two steps ahead: step s already reads the cells of step s - 1.
                if s > 1 {
                    let (p0, m, stride) = geo.step_span(s - 2);
                    for q in 0..m {
                        let p = p0 + q * stride;
                        prefetch(&g_img[p * g..(p + 1) * g]);
                        prefetch(&c_img[p * hd..(p + 1) * hd]);
                        prefetch(&dh_img[p * hd..(p + 1) * hd]);
                        prefetch(&d_is_img[p * g..(p + 1) * g]);
                    }
                }
                for q in 0..m {
                    let (r, j) = geo.step_position(s, q);
                    let p = p0 + q * stride;
                    for u in 0..hd {
                        dh_tot[u] = dh_img[p * hd + u] + dh_carry[p * hd + u];
                    }
                    let cp = geo.cell_prev(r, j);
                    let c_prev = cp.map(|q| &c_img[q * hd..(q + 1) * hd]);
                    cell_backward(
                        &g_img[p * g..(p + 1) * g],
                        &c_img[p * hd..(p + 1) * hd],
                        c_prev,
                        &dh_tot,
                        &dc_carry[p * hd..(p + 1) * hd],
                        &mut d_is_img[p * g..(p + 1) * g],
                        &mut dc_prev,
                    );
                    if let Some(q) = cp {
                        copy_small(&mut dc_carry[q * hd..(q + 1) * hd], &dc_prev);
                    }
                }
                if s == 0 {
                    break; // the first step reads no earlier state
                }
                // The step's d_pre rows are `stride` positions apart in d_is: no gather at
                // fp32; at tf32/bf16 a rounded copy (d_is itself stays unrounded).
                dcols[..m * tk].fill(0.0);
                if pr == Precision::Fp32 {
                    rows_times(
                        &d_is_img[p0 * g..],
                        stride * g,
                        m,
                        g,
                        &wpt,
                        tk,
                        tk,
                        &mut dcols,
                        tk,
                    );
                } else {
                    for q in 0..m {
                        let p = p0 + q * stride;
                        let dst = &mut dpre_r[q * g..(q + 1) * g];
                        copy_small(dst, &d_is_img[p * g..(p + 1) * g]);
                        round_in_place(dst, pr);
                    }
                    rows_times(&dpre_r, g, m, g, &wpt, tk, tk, &mut dcols, tk);
                }
                for q in 0..m {
                    let (r, j) = geo.step_position(s, q);
                    for t in 0..geo.taps() {
                        if let Some(src) = geo.neighbour(r, j, t) {
                            let d = &dcols[q * tk + t * hd..q * tk + (t + 1) * hd];
                            for (a, &v) in dh_carry[src * hd..(src + 1) * hd].iter_mut().zip(d) {
                                *a += v;
                            }
                        }
                    }
                }
            }
            // Weight gradient of the image: cols^T . d_pre over all its positions.
            let mut cols = vec![0.0f32; plane * tk];
            for r in 0..geo.height {
                for j in 0..geo.width {
                    let p = r * geo.width + j;
                    gather_as(geo, h_img, r, j, &mut cols[p * tk..(p + 1) * tk], pr);
                }
            }
            let d_pre_r;
            let d_pre: &[f32] = if pr == Precision::Fp32 {
                d_is_img
            } else {
                d_pre_r = pr.round_all(d_is_img);
                &d_pre_r
            };
            let mut dwp = vec![0.0f32; tk * g];
            sgemm_serial(
                tk,
                g,
                plane,
                MatRef::transposed(&cols, tk),
                MatRef::row_major(d_pre, g),
                &mut dwp,
                false,
            );
            dwp
        })
        .collect();
    let mut dwp = vec![0.0f32; tk * g];
    for part in dwps {
        for (a, b) in dwp.iter_mut().zip(part) {
            *a += b;
        }
    }
    (d_is, dwp)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn backward_unfused(
    h: &[f32],
    c: &[f32],
    gates: &[f32],
    wp: &[f32],
    dh: &[f32],
    n: usize,
    geo: &Geometry,
    pr: Precision,
) -> (Vec<f32>, Vec<f32>) {
    let (hd, plane) = (geo.hidden, geo.height * geo.width);
    let g = 4 * hd;
    let tk = geo.taps() * hd;
    let mut d_is = vec![0.0f32; n * plane * g];
    let mut dwp = vec![0.0f32; tk * g];
    let mut dh_carry = vec![0.0f32; n * plane * hd];
    let mut dc_carry = vec![0.0f32; n * plane * hd];
    let rows_max = n * geo.max_step_len();
    let mut d_pre = vec![0.0f32; rows_max * g];
    let mut dcols = vec![0.0f32; rows_max * tk];
    for s in (0..geo.steps()).rev() {
        let (p0, m, stride) = geo.step_span(s);
        let rows = n * m;
        // Gate pass of the whole step, one task per image; d_pre goes to d_is and to the
        // step's row-major buffer for the GEMMs.
        d_is.par_chunks_mut(plane * g)
            .zip(dc_carry.par_chunks_mut(plane * hd))
            .zip(d_pre[..rows * g].par_chunks_mut(m * g))
            .enumerate()
            .for_each(|(b, ((d_is_img, dc_img), dp_img))| {
                let base = b * plane;
                let mut dh_tot = vec![0.0f32; hd];
                let mut dc_prev = vec![0.0f32; hd];
                for q in 0..m {
                    let (r, j) = geo.step_position(s, q);
                    let p = p0 + q * stride;
                    let at = (base + p) * hd;
                    for u in 0..hd {
                        dh_tot[u] = dh[at + u] + dh_carry[at + u];
                    }
                    let cp = geo.cell_prev(r, j);
                    let c_prev = cp.map(|q| &c[(base + q) * hd..(base + q + 1) * hd]);
                    cell_backward(
                        &gates[(base + p) * g..(base + p + 1) * g],
                        &c[at..at + hd],
                        c_prev,
                        &dh_tot,
                        &dc_img[p * hd..(p + 1) * hd],
                        &mut d_is_img[p * g..(p + 1) * g],
                        &mut dc_prev,
                    );
                    if let Some(q) = cp {
                        copy_small(&mut dc_img[q * hd..(q + 1) * hd], &dc_prev);
                    }
                    let dst = &mut dp_img[q * g..(q + 1) * g];
                    copy_small(dst, &d_is_img[p * g..(p + 1) * g]);
                    round_in_place(dst, pr);
                }
            });
        // State gradient of the step: one GEMM.
        if s == 0 {
            break; // the first step reads no earlier state
        }
        sgemm(
            rows,
            tk,
            g,
            MatRef::row_major(&d_pre[..rows * g], g),
            MatRef::transposed(wp, g),
            &mut dcols[..rows * tk],
            false,
        );
        for b in 0..n {
            for q in 0..m {
                let (r, j) = geo.step_position(s, q);
                let row = b * m + q;
                for t in 0..geo.taps() {
                    if let Some(src) = geo.neighbour(r, j, t) {
                        let dst = (b * plane + src) * hd;
                        let d = &dcols[row * tk + t * hd..row * tk + (t + 1) * hd];
                        for (a, &v) in dh_carry[dst..dst + hd].iter_mut().zip(d) {
                            *a += v;
                        }
                    }
                }
            }
        }
    }
    // Weight gradient: one GEMM `cols^T . d_pre` over every position of the batch (one product
    // per step had an inner dimension of a few hundred rows and spent its time waking threads).
    let mut cols = vec![0.0f32; n * plane * tk];
    cols.par_chunks_mut(plane * tk)
        .zip(h.par_chunks(plane * hd))
        .for_each(|(cols_img, h_img)| {
            for r in 0..geo.height {
                for j in 0..geo.width {
                    let p = r * geo.width + j;
                    gather_as(geo, h_img, r, j, &mut cols_img[p * tk..(p + 1) * tk], pr);
                }
            }
        });
    let d_pre_r;
    let d_pre_all: &[f32] = if pr == Precision::Fp32 {
        &d_is
    } else {
        d_pre_r = pr.round_all(&d_is);
        &d_pre_r
    };
    sgemm(
        tk,
        g,
        n * plane,
        MatRef::transposed(&cols, tk),
        MatRef::row_major(d_pre_all, g),
        &mut dwp,
        false,
    );
    (d_is, dwp)
}
