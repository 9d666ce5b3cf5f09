//! Safe wrapper around the `gemm` crate's f32 matrix product (strided, multi-threaded).

use rayon::prelude::*;

/// A read-only strided matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// Backing slice.
    pub data: &'a [f32],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major view with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// Products smaller than this many multiply-adds run on the calling thread: splitting them
/// across threads costs more than it saves.
const PARALLEL_MIN_MACS: usize = 1 << 18;

/// `c[m x n] (row-major) = (accumulate ? c : 0) + a[m x k] . b[k x n]`.
///
/// Threading: a tall product (many rows, the activations of a convolution) is split into one
/// contiguous band of rows per thread, each a single-threaded GEMM; a long product (a weight
/// gradient: `k` = every pixel of the batch, `m x n` small) is split along `k` into one partial
/// product per thread, summed at the end. Both keep every thread busy on one large block, where
/// the `gemm` crate's own threading splits small `m x n` outputs finely and spends its time
/// waking threads. Other shapes use the crate's threading.
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && c.len() >= m * n,
        "sgemm operands out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let threads = rayon::current_num_threads();
    if m * n * k < PARALLEL_MIN_MACS || threads == 1 {
        return raw(m, n, k, a, b, c, accumulate, gemm::Parallelism::None);
    }
    if m >= 64 * threads {
        // Row bands, one per thread.
        let band = m.div_ceil(threads);
        c[..m * n]
            .par_chunks_mut(band * n)
            .enumerate()
            .for_each(|(i, cb)| {
                let r0 = i * band;
                let rows = cb.len() / n;
                let ab = MatRef {
                    data: &a.data[r0 * a.rs..],
                    ..a
                };
                raw(rows, n, k, ab, b, cb, accumulate, gemm::Parallelism::None);
            });
        return;
    }
    if k >= 256 * threads && m * n <= 1 << 16 {
        // Split k; sum the partial products.
        let span = k.div_ceil(threads);
        let parts: Vec<Vec<f32>> = (0..k.div_ceil(span))
            .into_par_iter()
            .map(|i| {
                let k0 = i * span;
                let kk = span.min(k - k0);
                let ak = MatRef {
                    data: &a.data[k0 * a.cs..],
                    ..a
                };
                let bk = MatRef {
                    data: &b.data[k0 * b.rs..],
                    ..b
                };
                let mut part = vec![0.0f32; m * n];
                raw(m, n, kk, ak, bk, &mut part, false, gemm::Parallelism::None);
                part
            })
            .collect();
        let out = &mut c[..m * n];
        if !accumulate {
            out.copy_from_slice(&parts[0]);
        } else {
            for (o, p) in out.iter_mut().zip(&parts[0]) {
                *o += p;
            }
        }
        for part in &parts[1..] {
            for (o, p) in out.iter_mut().zip(part) {
                *o += p;
            }
        }
        return;
    }
    raw(
        m,
        n,
        k,
        a,
        b,
        c,
        accumulate,
        gemm::Parallelism::Rayon(threads),
    );
}

/// [`sgemm`] on the calling thread, for callers that already run one product per thread (the
/// blocked convolutions: one block of rows per task).
pub fn sgemm_serial(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && c.len() >= m * n,
        "sgemm operands out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    raw(m, n, k, a, b, c, accumulate, gemm::Parallelism::None);
}

/// The `gemm` crate's product on checked operands.
#[allow(clippy::too_many_arguments)]
fn raw(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    debug_assert!(a.fits(m, k) && b.fits(k, n) && c.len() >= m * n);
    // SAFETY: the callers bound every index the product touches (the assert in `sgemm`, and
    // sub-views that keep the same strides over a suffix of the checked data), and `c` is
    // borrowed mutably while `a` and `b` are shared borrows, so they cannot alias it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_with_transposes() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.71).cos()).collect(); // n x k
        let mut c = vec![1.0f32; m * n];
        sgemm(
            m,
            n,
            k,
            MatRef::row_major(&a, k),
            MatRef::transposed(&bt, k),
            &mut c,
            true,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * k + p] * bt[j * k + p]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-5);
            }
        }
    }
}
