//! `row_lstm_forward_at` and `diag_lstm_forward_at` on the CPU: one position of the recurrence
//! of [`super::lstm`] for the whole batch, reading the earlier states from the maps and
//! writing the new ones into them (incremental sampling). The arithmetic is the fused path's,
//! through the same code: the zero-filled gather, [`super::lstm_tile::rows_times`] (here one
//! row per image) and [`super::lstm_cell::cell_forward`], so that sampling reproduces the training
//! forward bit for bit, at every [`Precision`] (the same operands rounded the same way).

use super::lstm_cell::cell_forward;
use super::lstm_precision::{gather_as, pack_state_weight_as};
use super::lstm_tile::rows_times;
use crate::backend::geometry::Geometry;
use crate::backend::Precision;

/// Position `(i, j)` of every image at fp32. `is`: `[n, 4h]`; `w`: `[4h, h, kh, kw]`; `h`,
/// `c`: `[n, H, W, h]` maps, updated at `(i, j)`.
#[allow(clippy::too_many_arguments)]
pub fn forward_at(
    is: &[f32],
    w: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    n: usize,
    geo: &Geometry,
    i: usize,
    j: usize,
) {
    forward_at_precision(is, w, h, c, n, geo, i, j, Precision::Fp32);
}

/// [`forward_at`] at `precision`: the gathered states and the packed weight rounded as in
/// [`super::lstm_precision::forward_precision`], so that it reproduces that training forward bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn forward_at_precision(
    is: &[f32],
    w: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    n: usize,
    geo: &Geometry,
    i: usize,
    j: usize,
    precision: Precision,
) {
    let wp = pack_state_weight_as(w, geo, precision);
    let hd = geo.hidden;
    let g = 4 * hd;
    let tk = geo.taps() * hd;
    let plane = geo.height * geo.width;
    let p = i * geo.width + j;
    let mut cols = vec![0.0f32; n * tk];
    for b in 0..n {
        let h_img = &h[b * plane * hd..(b + 1) * plane * hd];
        gather_as(geo, h_img, i, j, &mut cols[b * tk..(b + 1) * tk], precision);
    }
    let mut pre = is[..n * g].to_vec();
    rows_times(&cols, tk, n, tk, &wp, g, g, &mut pre, g);
    let mut gates = vec![0.0f32; g];
    let mut c_new = vec![0.0f32; hd];
    let mut h_new = vec![0.0f32; hd];
    for b in 0..n {
        let c_img = &c[b * plane * hd..(b + 1) * plane * hd];
        let c_prev = geo.cell_prev(i, j).map(|q| &c_img[q * hd..(q + 1) * hd]);
        cell_forward(
            &pre[b * g..(b + 1) * g],
            c_prev,
            &mut gates,
            &mut c_new,
            &mut h_new,
        );
        let dst = (b * plane + p) * hd;
        h[dst..dst + hd].copy_from_slice(&h_new);
        c[dst..dst + hd].copy_from_slice(&c_new);
    }
}
