//! `read_position` and `write_position` on the CPU: the features of one position of an NHWC
//! map, for every image of the batch (incremental sampling).

/// `out[b] = x[b, i, j]`: `[n, f]` from `[n, h, w, f]`.
pub fn read_position(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    f: usize,
    i: usize,
    j: usize,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * f);
    for b in 0..n {
        let p = ((b * h + i) * w + j) * f;
        out.extend_from_slice(&x[p..p + f]);
    }
    out
}

/// `x[b, i, j] = v[b]`.
#[allow(clippy::too_many_arguments)]
pub fn write_position(
    x: &mut [f32],
    n: usize,
    h: usize,
    w: usize,
    f: usize,
    i: usize,
    j: usize,
    v: &[f32],
) {
    for b in 0..n {
        let p = ((b * h + i) * w + j) * f;
        x[p..p + f].copy_from_slice(&v[b * f..(b + 1) * f]);
    }
}
