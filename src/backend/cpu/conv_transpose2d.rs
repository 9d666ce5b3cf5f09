//! Transposed 2-D convolution, stride r, kernel k x k with `k - r` even, padding
//! `p = (k - r) / 2`, so that an `s x s` input gives an `s*r x s*r` output (PyTorch's
//! `ConvTranspose2d(cin, cout, k, stride=r, padding=p)`; weight `[cin, cout, k, k]`):
//! `out[i*r + a - p, j*r + b - p, f] += x[i, j, c] * w[c, f, a, b]`, plus `bias[f]`
//! everywhere. The Multi-Scale PixelRNN's upsampling of the small image (MODELS.md). With
//! `k = r` the blocks do not overlap; the model uses `k = 3r`, so that each output position
//! sees the small pixel it lies in and its eight neighbours.
//!
//! The loops below are the reference and the engine at once: `cin` is the image's channel
//! count (1 or 3) and the map is built once per batch, so this is never the bottleneck.

use rayon::prelude::*;

use crate::backend::geometry::TransposeGeom;

impl TransposeGeom {
    /// Output position of input `i` under tap `a`, if inside the `h*r` output.
    #[inline]
    fn out_pos(&self, i: usize, a: usize, len: usize) -> Option<usize> {
        (i * self.r + a)
            .checked_sub(self.pad())
            .filter(|&y| y < len * self.r)
    }
}

/// Forward: `x` `[n, h, w, cin]` -> `[n, h*r, w*r, cout]`.
pub fn forward(x: &[f32], wt: &[f32], b: &[f32], g: TransposeGeom) -> Vec<f32> {
    let TransposeGeom {
        h, w, cin, cout, k, ..
    } = g;
    let (oh, ow) = (h * g.r, w * g.r);
    let mut out = vec![0.0f32; g.n * oh * ow * cout];
    out.par_chunks_mut(oh * ow * cout)
        .enumerate()
        .for_each(|(img, o)| {
            for px in o.chunks_exact_mut(cout) {
                px.copy_from_slice(b);
            }
            for i in 0..h {
                for j in 0..w {
                    let xi = &x[((img * h + i) * w + j) * cin..][..cin];
                    for a in 0..k {
                        let Some(oy) = g.out_pos(i, a, h) else {
                            continue;
                        };
                        for bb in 0..k {
                            let Some(ox) = g.out_pos(j, bb, w) else {
                                continue;
                            };
                            let dst = &mut o[(oy * ow + ox) * cout..][..cout];
                            for (c, &xv) in xi.iter().enumerate() {
                                for (f, d) in dst.iter_mut().enumerate() {
                                    *d += xv * wt[((c * cout + f) * k + a) * k + bb];
                                }
                            }
                        }
                    }
                }
            }
        });
    out
}

/// Backward given `dy` `[n, h*r, w*r, cout]`: returns `(dx, dw, db)` (`dx` empty unless
/// `need_dx`).
pub fn backward(
    x: &[f32],
    wt: &[f32],
    dy: &[f32],
    g: TransposeGeom,
    need_dx: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let TransposeGeom {
        n,
        h,
        w,
        cin,
        cout,
        k,
        ..
    } = g;
    let (oh, ow) = (h * g.r, w * g.r);
    let mut dw = vec![0.0f64; cin * cout * k * k];
    let mut db = vec![0.0f64; cout];
    let mut dx = if need_dx {
        vec![0.0f32; n * h * w * cin]
    } else {
        Vec::new()
    };
    for d in dy.chunks_exact(cout) {
        for (f, &v) in d.iter().enumerate() {
            db[f] += v as f64;
        }
    }
    for img in 0..n {
        for i in 0..h {
            for j in 0..w {
                let xo = ((img * h + i) * w + j) * cin;
                for a in 0..k {
                    let Some(oy) = g.out_pos(i, a, h) else {
                        continue;
                    };
                    for bb in 0..k {
                        let Some(ox) = g.out_pos(j, bb, w) else {
                            continue;
                        };
                        let d = &dy[((img * oh + oy) * ow + ox) * cout..][..cout];
                        for c in 0..cin {
                            let xv = x[xo + c];
                            let mut acc = 0.0f32;
                            for (f, &dv) in d.iter().enumerate() {
                                let kk = ((c * cout + f) * k + a) * k + bb;
                                dw[kk] += (xv * dv) as f64;
                                acc += wt[kk] * dv;
                            }
                            if need_dx {
                                dx[xo + c] += acc;
                            }
                        }
                    }
                }
            }
        }
    }
    (
        dx,
        dw.into_iter().map(|v| v as f32).collect(),
        db.into_iter().map(|v| v as f32).collect(),
    )
}
