//! `masked_conv2d_forward_at` on the CPU: one output position of a masked convolution for the
//! whole batch (incremental sampling). Gathers the input vectors under the live taps into a
//! `[n, taps * cin]` matrix and multiplies it by the weights packed once by
//! `masked_conv2d_pack` (the layout of [`super::masked_conv2d::pack_weights`]: the same
//! columns, in the same order, as the full convolution's im2col).

use super::gemm::{sgemm, MatRef};
use super::masked_conv2d::pack_weights;
use crate::backend::geometry::ConvGeom;
use crate::backend::ConvSpec;

/// Packs `[cout, cin, kh, kw]` into `[taps * cin, cout]` with the centre tap's group mask.
pub fn pack(weight: &[f32], cin: usize, cout: usize, spec: &ConvSpec) -> Vec<f32> {
    let g = ConvGeom {
        n: 0,
        h: 0,
        w: 0,
        cin,
        cout,
    };
    pack_weights(weight, g, spec, &spec.taps())
}

/// `y[b, :] = bias + sum over live taps of x[b, i + ky - kh/2, j + kx - kw/2, :] . W`,
/// zero padding outside the map. `x`: `[n, h, w, cin]`; returns `[n, cout]`.
#[allow(clippy::too_many_arguments)]
pub fn forward_at(
    x: &[f32],
    packed: &[f32],
    bias: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    i: usize,
    j: usize,
) -> Vec<f32> {
    let taps = spec.taps();
    let tk = taps.len() * g.cin;
    let mut y: Vec<f32> = Vec::with_capacity(g.n * g.cout);
    for _ in 0..g.n {
        y.extend_from_slice(bias);
    }
    if tk == 0 || g.n == 0 {
        return y;
    }
    let mut cols = vec![0.0f32; g.n * tk];
    for b in 0..g.n {
        let img = &x[b * g.h * g.w * g.cin..(b + 1) * g.h * g.w * g.cin];
        let row = &mut cols[b * tk..(b + 1) * tk];
        for (t, &(ky, kx)) in taps.iter().enumerate() {
            let iy = (i + ky).checked_sub(spec.kh / 2);
            let ix = (j + kx).checked_sub(spec.kw / 2);
            if let (Some(iy), Some(ix)) = (iy, ix) {
                if iy < g.h && ix < g.w {
                    let p = (iy * g.w + ix) * g.cin;
                    row[t * g.cin..(t + 1) * g.cin].copy_from_slice(&img[p..p + g.cin]);
                }
            }
        }
    }
    sgemm(
        g.n,
        g.cout,
        tk,
        MatRef::row_major(&cols, tk),
        MatRef::row_major(packed, g.cout),
        &mut y,
        true,
    );
    y
}
