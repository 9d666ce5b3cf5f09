//! `skew` and `unskew` on the CPU (materialised; the Diagonal LSTM folds the skew into its
//! indexing and these ops serve comparisons and tests). CPU twins of `kernels/skew.cu`.

use crate::backend::skewed_width;

/// `[n, H, W, C]` -> `[n, H, Ws, C]` with `S[r, r + j] = x[r, j]`, zero elsewhere
/// (`Ws = skewed_width(H, W)`).
pub fn skew(x: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let ws = skewed_width(h, w);
    let mut s = vec![0.0f32; n * h * ws * c];
    for b in 0..n {
        for r in 0..h {
            let src = ((b * h + r) * w) * c;
            let dst = ((b * h + r) * ws + r) * c;
            s[dst..dst + w * c].copy_from_slice(&x[src..src + w * c]);
        }
    }
    s
}

/// `[n, H, Ws, C]` -> `[n, H, W, C]` with `out[r, j] = S[r, r + j]`.
pub fn unskew(s: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let ws = skewed_width(h, w);
    let mut x = vec![0.0f32; n * h * w * c];
    for b in 0..n {
        for r in 0..h {
            let dst = ((b * h + r) * w) * c;
            let src = ((b * h + r) * ws + r) * c;
            x[dst..dst + w * c].copy_from_slice(&s[src..src + w * c]);
        }
    }
    x
}
