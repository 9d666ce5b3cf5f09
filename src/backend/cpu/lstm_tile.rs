//! The small products of the CPU recurrences: `out[m x n] += x[m x k] . b[k x n]` for the
//! positions of one step (a row of the Row LSTM, an anti-diagonal of the Diagonal LSTM) of one
//! image, or for one position of every image (the cached sampler).
//!
//! Every output element is computed by the same sequence of operations whatever the tile, the
//! code path or the machine: starting from the value in `out`, `a = fma(x[i][q], b[q][o], a)`
//! for `q = 0, 1, ..., k - 1`, each a fused multiply-add rounded once, with no term skipped. So
//! a row's result does not depend on which other rows share its tile, and the training forward
//! (all positions of a step at once) and the sampler's `forward_at` (one position per image)
//! are bit-identical by construction: both call [`rows_times`]. The AVX2/FMA kernel is chosen
//! at run time; the portable fallback uses `f32::mul_add`, which is the same exactly rounded
//! operation (a libm call on x86-64 CPUs without FMA, slow but equal).

/// Rows per register tile of the AVX2 kernel (6 rows x 16 columns = 12 accumulators).
const MR: usize = 6;

/// `out[i * ldo + o] = fma-accumulate over q ascending of x[i * ldx + q] * b[q * ldb + o]`,
/// for `i < m`, `o < n`, `q < k`, starting from the current `out` (see the module comment for
/// the exact arithmetic). `ldx` may be smaller than `k` (overlapping rows of `x`).
///
/// Panics when an operand is too short for the shape.
#[allow(clippy::too_many_arguments)]
pub fn rows_times(
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    out: &mut [f32],
    ldo: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldb >= n && ldo >= n,
        "rows_times: row strides shorter than n"
    );
    assert!(
        (m - 1) * ldx + k <= x.len(),
        "rows_times: x too short for {m} x {k}"
    );
    assert!(
        k == 0 || (k - 1) * ldb + n <= b.len(),
        "rows_times: b too short for {k} x {n}"
    );
    assert!(
        (m - 1) * ldo + n <= out.len(),
        "rows_times: out too short for {m} x {n}"
    );
    if k == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if fma_available() {
            // SAFETY: the CPU has AVX2 and FMA (checked above), and the asserts bound every
            // index the kernel touches: rows `i < m` of `x` read `[i * ldx, i * ldx + k)`,
            // rows `q < k` of `b` read `[q * ldb, q * ldb + n)`, rows of `out` write
            // `[i * ldo, i * ldo + n)`.
            unsafe { avx2::rows_times(x, ldx, m, k, b, ldb, n, out, ldo) };
            return;
        }
    }
    portable(x, ldx, m, k, b, ldb, n, out, ldo);
}

/// Whether the AVX2/FMA kernel runs on this CPU (detected once; the check is a cached load).
#[cfg(target_arch = "x86_64")]
fn fma_available() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// The reference arithmetic, one element at a time: also the fallback on CPUs without
/// AVX2/FMA and the tail of the AVX2 kernel's columns.
#[allow(clippy::too_many_arguments)]
pub fn portable(
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    out: &mut [f32],
    ldo: usize,
) {
    for i in 0..m {
        let xi = &x[i * ldx..i * ldx + k];
        let oi = &mut out[i * ldo..i * ldo + n];
        for (q, &xv) in xi.iter().enumerate() {
            for (a, &bv) in oi.iter_mut().zip(&b[q * ldb..q * ldb + n]) {
                *a = xv.mul_add(bv, *a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::MR;
    use std::arch::x86_64::*;

    /// See [`super::rows_times`]; bounds are the caller's.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn rows_times(
        x: &[f32],
        ldx: usize,
        m: usize,
        k: usize,
        b: &[f32],
        ldb: usize,
        n: usize,
        out: &mut [f32],
        ldo: usize,
    ) {
        let (xp, bp, op) = (x.as_ptr(), b.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let (xi, oi) = (xp.add(i * ldx), op.add(i * ldo));
            match rows {
                6 => tile::<6>(xi, ldx, k, bp, ldb, n, oi, ldo),
                5 => tile::<5>(xi, ldx, k, bp, ldb, n, oi, ldo),
                4 => tile::<4>(xi, ldx, k, bp, ldb, n, oi, ldo),
                3 => tile::<3>(xi, ldx, k, bp, ldb, n, oi, ldo),
                2 => tile::<2>(xi, ldx, k, bp, ldb, n, oi, ldo),
                _ => tile::<1>(xi, ldx, k, bp, ldb, n, oi, ldo),
            }
            i += rows;
        }
    }

    /// `R` rows, all `n` columns: blocks of 16 columns (two registers per row), then one of 8,
    /// then single columns with scalar FMAs (the same rounding as the vector lanes).
    // Row loops index the accumulator arrays and offset raw pointers with the same `r`.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize>(
        x: *const f32,
        ldx: usize,
        k: usize,
        b: *const f32,
        ldb: usize,
        n: usize,
        out: *mut f32,
        ldo: usize,
    ) {
        let mut o = 0;
        while o + 16 <= n {
            let mut acc0 = [_mm256_setzero_ps(); R];
            let mut acc1 = [_mm256_setzero_ps(); R];
            for r in 0..R {
                acc0[r] = _mm256_loadu_ps(out.add(r * ldo + o));
                acc1[r] = _mm256_loadu_ps(out.add(r * ldo + o + 8));
            }
            for q in 0..k {
                let b0 = _mm256_loadu_ps(b.add(q * ldb + o));
                let b1 = _mm256_loadu_ps(b.add(q * ldb + o + 8));
                for r in 0..R {
                    let xv = _mm256_broadcast_ss(&*x.add(r * ldx + q));
                    acc0[r] = _mm256_fmadd_ps(xv, b0, acc0[r]);
                    acc1[r] = _mm256_fmadd_ps(xv, b1, acc1[r]);
                }
            }
            for r in 0..R {
                _mm256_storeu_ps(out.add(r * ldo + o), acc0[r]);
                _mm256_storeu_ps(out.add(r * ldo + o + 8), acc1[r]);
            }
            o += 16;
        }
        if o + 8 <= n {
            let mut acc = [_mm256_setzero_ps(); R];
            for r in 0..R {
                acc[r] = _mm256_loadu_ps(out.add(r * ldo + o));
            }
            for q in 0..k {
                let b0 = _mm256_loadu_ps(b.add(q * ldb + o));
                for r in 0..R {
                    let xv = _mm256_broadcast_ss(&*x.add(r * ldx + q));
                    acc[r] = _mm256_fmadd_ps(xv, b0, acc[r]);
                }
            }
            for r in 0..R {
                _mm256_storeu_ps(out.add(r * ldo + o), acc[r]);
            }
            o += 8;
        }
        for oo in o..n {
            for r in 0..R {
                let mut a = *out.add(r * ldo + oo);
                for q in 0..k {
                    a = (*x.add(r * ldx + q)).mul_add(*b.add(q * ldb + oo), a);
                }
                *out.add(r * ldo + oo) = a;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 + seed) * 0.618_034).sin() * 1.7)
            .collect()
    }

    /// Every shape the kernel splits differently (row tiles 1..6 and remainders; column blocks
    /// of 16, 8 and single columns; overlapping rows), bit for bit against [`portable`].
    #[test]
    fn kernel_is_bit_identical_to_portable() {
        for &m in &[1usize, 2, 3, 5, 6, 7, 13, 32] {
            for &n in &[1usize, 4, 8, 12, 16, 20, 28, 64, 100] {
                for &k in &[1usize, 3, 9, 48] {
                    for &ldx in &[k, k + 3, 1.max(k / 3)] {
                        let x = vals((m - 1) * ldx + k, 1.0);
                        let b = vals(k * (n + 2), 2.0);
                        let init = vals(m * (n + 1), 3.0);
                        let mut got = init.clone();
                        rows_times(&x, ldx, m, k, &b, n + 2, n, &mut got, n + 1);
                        let mut want = init.clone();
                        portable(&x, ldx, m, k, &b, n + 2, n, &mut want, n + 1);
                        let (gb, wb): (Vec<u32>, Vec<u32>) = (
                            got.iter().map(|v| v.to_bits()).collect(),
                            want.iter().map(|v| v.to_bits()).collect(),
                        );
                        assert_eq!(gb, wb, "m {m} n {n} k {k} ldx {ldx}");
                    }
                }
            }
        }
    }

    #[test]
    fn kernel_matches_f64() {
        let (m, n, k) = (7, 20, 33);
        let x = vals(m * k, 4.0);
        let b = vals(k * n, 5.0);
        let mut got = vals(m * n, 6.0);
        let init = got.clone();
        rows_times(&x, k, m, k, &b, n, n, &mut got, n);
        for i in 0..m {
            for o in 0..n {
                let want = init[i * n + o] as f64
                    + (0..k)
                        .map(|q| x[i * k + q] as f64 * b[q * n + o] as f64)
                        .sum::<f64>();
                assert!((got[i * n + o] as f64 - want).abs() < 1e-4, "({i}, {o})");
            }
        }
    }
}
