//! `mirror_width`, `shift_down` and `shift_up` on the CPU: the moves of the Diagonal BiLSTM's
//! right direction. CPU twins of `kernels/mirror_shift.cu`.

/// `out[r, j] = x[r, W-1-j]`.
pub fn mirror_width(x: &[f32], n: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    for row in 0..n * h {
        for j in 0..w {
            let src = (row * w + (w - 1 - j)) * c;
            let dst = (row * w + j) * c;
            out[dst..dst + c].copy_from_slice(&x[src..src + c]);
        }
    }
    out
}

/// `out[r] = x[r - 1]` when `down`, `out[r] = x[r + 1]` otherwise; the row shifted in is zero.
pub fn shift_rows(x: &[f32], n: usize, h: usize, w: usize, c: usize, down: bool) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let row = w * c;
    for b in 0..n {
        let img = b * h * row;
        for r in 1..h {
            let (dst, src) = if down { (r, r - 1) } else { (r - 1, r) };
            out[img + dst * row..img + (dst + 1) * row]
                .copy_from_slice(&x[img + src * row..img + (src + 1) * row]);
        }
    }
    out
}
