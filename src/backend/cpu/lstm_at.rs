//! `row_lstm_forward_at` and `diag_lstm_forward_at` on the CPU: one position of the recurrence
//! of [`super::lstm`] for the whole batch, reading the earlier states from the maps and
//! writing the new ones into them (incremental sampling). Per image the arithmetic is the
//! fused path's: `pre = is + sum over taps of h(neighbour) . W`, then
//! [`super::lstm::cell_forward`].

use super::lstm::{cell_forward, pack_state_weight, Geometry};

/// Position `(i, j)` of every image. `is`: `[n, 4h]`; `w`: `[4h, h, kh, kw]`; `h`, `c`:
/// `[n, H, W, h]` maps, updated at `(i, j)`.
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
    let wp = pack_state_weight(w, geo);
    let hd = geo.hidden;
    let g = 4 * hd;
    let plane = geo.height * geo.width;
    let p = i * geo.width + j;
    let mut pre = vec![0.0f32; g];
    let mut gates = vec![0.0f32; g];
    let mut c_new = vec![0.0f32; hd];
    let mut h_new = vec![0.0f32; hd];
    for b in 0..n {
        let h_img = &h[b * plane * hd..(b + 1) * plane * hd];
        let c_img = &c[b * plane * hd..(b + 1) * plane * hd];
        pre.copy_from_slice(&is[b * g..(b + 1) * g]);
        for t in 0..geo.taps() {
            let Some(src) = geo.neighbour(i, j, t) else {
                continue;
            };
            for u in 0..hd {
                let x = h_img[src * hd + u];
                if x != 0.0 {
                    let q = t * hd + u;
                    for (a, &wv) in pre.iter_mut().zip(&wp[q * g..(q + 1) * g]) {
                        *a += x * wv;
                    }
                }
            }
        }
        let c_prev = geo.cell_prev(i, j).map(|q| &c_img[q * hd..(q + 1) * hd]);
        cell_forward(&pre, c_prev, &mut gates, &mut c_new, &mut h_new);
        let dst = (b * plane + p) * hd;
        h[dst..dst + hd].copy_from_slice(&h_new);
        c[dst..dst + hd].copy_from_slice(&c_new);
    }
}
