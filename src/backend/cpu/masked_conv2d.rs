//! `masked_conv2d` on the CPU: im2col over the taps that exist, then one GEMM.
//!
//! Only the taps that the mask leaves (raster taps before the centre, and the centre when some
//! pair of groups may use it) are gathered, so a 7x7 mask-A layer multiplies 24 (C = 1) or 25
//! taps instead of 49. The centre tap's channel-group mask is applied to the packed weights.
//! The plain-loop reference lives in the tests (`tests/ops_reference.rs`).

use rayon::prelude::*;

use super::gemm::{sgemm, MatRef};
use crate::backend::ConvSpec;

/// Geometry of one convolution call.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeom {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Input features.
    pub cin: usize,
    /// Output features.
    pub cout: usize,
}

impl ConvGeom {
    fn rows(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// Whether the input can be used as the im2col matrix directly (a 1x1 kernel).
fn is_pointwise(spec: &ConvSpec, taps: &[(usize, usize)]) -> bool {
    spec.kh == 1 && spec.kw == 1 && taps.len() == 1
}

/// Packs `[cout, cin, kh, kw]` weights into the GEMM layout `[taps * cin, cout]`, applying the
/// centre tap's group mask.
pub fn pack_weights(
    weight: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
) -> Vec<f32> {
    let mut packed = vec![0.0f32; taps.len() * g.cin * g.cout];
    for (t, &(ky, kx)) in taps.iter().enumerate() {
        for i in 0..g.cin {
            let row = &mut packed[(t * g.cin + i) * g.cout..(t * g.cin + i + 1) * g.cout];
            for (o, slot) in row.iter_mut().enumerate() {
                if spec.allows(o, i, ky, kx) {
                    *slot = weight[((o * g.cin + i) * spec.kh + ky) * spec.kw + kx];
                }
            }
        }
    }
    packed
}

/// Scatters a packed gradient back to `[cout, cin, kh, kw]`, leaving masked entries at exactly
/// zero. Packed entry `(t * cin + i, o)` is read at `packed[(t * cin + i) * rs + o * cs]`: the
/// `[taps * cin, cout]` layout has `(rs, cs) = (cout, 1)`, its transpose `(1, taps * cin)`.
fn unpack_weight_grad(
    packed: &[f32],
    (rs, cs): (usize, usize),
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
) -> Vec<f32> {
    let mut dw = vec![0.0f32; g.cout * g.cin * spec.kh * spec.kw];
    for (t, &(ky, kx)) in taps.iter().enumerate() {
        for i in 0..g.cin {
            for o in 0..g.cout {
                if spec.allows(o, i, ky, kx) {
                    dw[((o * g.cin + i) * spec.kh + ky) * spec.kw + kx] =
                        packed[(t * g.cin + i) * rs + o * cs];
                }
            }
        }
    }
    dw
}

/// `db[o] = sum over rows of dy[row, o]`, in per-thread partial sums.
fn bias_grad(dy: &[f32], cout: usize) -> Vec<f32> {
    let cout = cout.max(1);
    let add_rows = |mut acc: Vec<f32>, rows: &[f32]| {
        for row in rows.chunks_exact(cout) {
            for (d, v) in acc.iter_mut().zip(row) {
                *d += v;
            }
        }
        acc
    };
    dy.par_chunks(cout * 1024)
        .fold(|| vec![0.0f32; cout], add_rows)
        .reduce(
            || vec![0.0f32; cout],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        )
}

/// Input offset of tap `(ky, kx)` for output `(y, x)`, or `None` in the zero padding.
#[inline]
fn source(y: usize, x: usize, ky: usize, kx: usize, spec: &ConvSpec, g: ConvGeom) -> Option<usize> {
    let iy = (y + ky).checked_sub(spec.kh / 2)?;
    let ix = (x + kx).checked_sub(spec.kw / 2)?;
    (iy < g.h && ix < g.w).then_some(iy * g.w + ix)
}

/// Gathers, for every output position, the input vectors under each live tap:
/// `[n * h * w, taps * cin]`. Parallel over images.
fn im2col(x: &[f32], g: ConvGeom, spec: &ConvSpec, taps: &[(usize, usize)]) -> Vec<f32> {
    let tk = taps.len() * g.cin;
    let plane = g.h * g.w;
    let mut cols = vec![0.0f32; g.rows() * tk];
    cols.par_chunks_mut(plane * tk)
        .zip(x.par_chunks(plane * g.cin))
        .for_each(|(cols_img, x_img)| {
            for y in 0..g.h {
                for xx in 0..g.w {
                    let row = &mut cols_img[(y * g.w + xx) * tk..(y * g.w + xx + 1) * tk];
                    for (t, &(ky, kx)) in taps.iter().enumerate() {
                        if let Some(p) = source(y, xx, ky, kx, spec, g) {
                            row[t * g.cin..(t + 1) * g.cin]
                                .copy_from_slice(&x_img[p * g.cin..(p + 1) * g.cin]);
                        }
                    }
                }
            }
        });
    cols
}

/// Adds each gathered column gradient back to the input position it came from. Parallel over
/// images (their regions are disjoint).
fn col2im(dcols: &[f32], g: ConvGeom, spec: &ConvSpec, taps: &[(usize, usize)]) -> Vec<f32> {
    let tk = taps.len() * g.cin;
    let plane = g.h * g.w;
    let mut dx = vec![0.0f32; g.rows() * g.cin];
    dx.par_chunks_mut(plane * g.cin)
        .zip(dcols.par_chunks(plane * tk))
        .for_each(|(dx_img, dcols_img)| {
            for y in 0..g.h {
                for xx in 0..g.w {
                    let row = &dcols_img[(y * g.w + xx) * tk..(y * g.w + xx + 1) * tk];
                    for (t, &(ky, kx)) in taps.iter().enumerate() {
                        if let Some(p) = source(y, xx, ky, kx, spec, g) {
                            let dst = &mut dx_img[p * g.cin..(p + 1) * g.cin];
                            for (d, s) in dst.iter_mut().zip(&row[t * g.cin..(t + 1) * g.cin]) {
                                *d += s;
                            }
                        }
                    }
                }
            }
        });
    dx
}

/// Forward: `y[n, h, w, cout] = conv(x, weight) + bias`.
pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: ConvGeom, spec: &ConvSpec) -> Vec<f32> {
    let taps = spec.taps();
    let tk = taps.len() * g.cin;
    let packed = pack_weights(weight, g, spec, &taps);
    // Filled in parallel: besides the copy, the first touch of a large fresh buffer takes a
    // page fault per 4 KiB, which then also runs on both threads.
    let mut y = vec![0.0f32; g.rows() * g.cout];
    if g.cout > 0 {
        y.par_chunks_mut(g.cout * 256).for_each(|rows| {
            for row in rows.chunks_exact_mut(g.cout) {
                row.copy_from_slice(bias);
            }
        });
    }
    if tk == 0 || g.rows() == 0 {
        // No live taps (1x1 mask A with one group) or an empty map: the output is the bias.
        return y;
    }
    let cols_owned;
    let cols: &[f32] = if is_pointwise(spec, &taps) {
        x
    } else {
        cols_owned = im2col(x, g, spec, &taps);
        &cols_owned
    };
    sgemm(
        g.rows(),
        g.cout,
        tk,
        MatRef::row_major(cols, tk),
        MatRef::row_major(&packed, g.cout),
        &mut y,
        true,
    );
    y
}

/// Backward: returns `(dx if need_dx, dweight [cout, cin, kh, kw], dbias [cout])`.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let taps = spec.taps();
    let tk = taps.len() * g.cin;
    let mut db = bias_grad(dy, g.cout);
    db.truncate(g.cout);
    if tk == 0 || g.rows() == 0 {
        let dw = vec![0.0f32; g.cout * g.cin * spec.kh * spec.kw];
        return (need_dx.then(|| vec![0.0f32; g.rows() * g.cin]), dw, db);
    }
    let pointwise = is_pointwise(spec, &taps);
    let cols_owned;
    let cols: &[f32] = if pointwise {
        x
    } else {
        cols_owned = im2col(x, g, spec, &taps);
        &cols_owned
    };
    // The weight gradient `cols^T . dy` (`[tk, cout]`) or its transpose `dy^T . cols`
    // (`[cout, tk]`), whichever has more rows: the GEMM's micro-kernel is taller than wide, and
    // the head's 1x1 D -> 256 layer runs about 2x faster as `[256, D]` than as `[D, 256]`.
    let mut dpacked = vec![0.0f32; tk * g.cout];
    let layout = if g.cout > tk {
        sgemm(
            g.cout,
            tk,
            g.rows(),
            MatRef::transposed(dy, g.cout),
            MatRef::row_major(cols, tk),
            &mut dpacked,
            false,
        );
        (1, tk)
    } else {
        sgemm(
            tk,
            g.cout,
            g.rows(),
            MatRef::transposed(cols, tk),
            MatRef::row_major(dy, g.cout),
            &mut dpacked,
            false,
        );
        (g.cout, 1)
    };
    let dw = unpack_weight_grad(&dpacked, layout, g, spec, &taps);
    let dx = need_dx.then(|| {
        let packed = pack_weights(weight, g, spec, &taps);
        let mut dcols = vec![0.0f32; g.rows() * tk];
        sgemm(
            g.rows(),
            tk,
            g.cout,
            MatRef::row_major(dy, g.cout),
            MatRef::transposed(&packed, g.cout),
            &mut dcols,
            false,
        );
        if pointwise {
            dcols
        } else {
            col2im(&dcols, g, spec, &taps)
        }
    });
    (dx, dw, db)
}
