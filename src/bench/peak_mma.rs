//! The tensor-core ceilings: `peak_mma_tf32_v1` and `peak_mma_bf16_v1` (kernels/peak_mma.cu),
//! their CPU twin ([`peak_mma_expected`]: what each thread writes, bit for bit) and the
//! bench's check-then-time of them.

use crate::backend::cuda::{arg, Arg, CudaBackend, LaunchCfg, BLOCK};
use crate::backend::Precision;
use crate::error::{Error, Result};

use super::ExecTimer;

/// Independent accumulator chains per warp of the `peak_mma_*_v1` kernels.
pub const PEAK_MMA_CHAINS: usize = 8;
/// mma per chain per loop round of the `peak_mma_*_v1` kernels.
pub const PEAK_MMA_UNROLL: usize = 2;
/// Threads per warp (the mma is a warp's instruction).
const WARP: usize = 32;
/// The largest integer below which every fp32 sum of integers is exact.
const EXACT: i64 = 1 << 24;

/// The ceiling kernel of `p` (`None` at fp32: its ceiling is `peak_fma_v1`).
pub fn peak_mma_kernel(p: Precision) -> Option<&'static str> {
    match p {
        Precision::Fp32 => None,
        Precision::Tf32 => Some("peak_mma_tf32_v1"),
        Precision::Bf16 => Some("peak_mma_bf16_v1"),
    }
}

/// The K of `p`'s mma shape (m16n8k8 for tf32, m16n8k16 for bf16); `None` at fp32.
pub fn peak_mma_k(p: Precision) -> Option<usize> {
    match p {
        Precision::Fp32 => None,
        Precision::Tf32 => Some(8),
        Precision::Bf16 => Some(16),
    }
}

/// FLOPs of one launch of `p`'s ceiling kernel over `threads` threads (whole warps) and
/// `rounds` loop rounds: 2 * 16 * 8 * K per mma, `CHAINS * UNROLL * rounds` mma per warp.
pub fn peak_mma_flops(p: Precision, threads: usize, rounds: usize) -> Option<f64> {
    let k = peak_mma_k(p)?;
    let mma = (threads / WARP) * rounds * PEAK_MMA_CHAINS * PEAK_MMA_UNROLL;
    Some(mma as f64 * (2 * 16 * 8 * k) as f64)
}

fn a_val(i: usize, k: usize, s: usize) -> i64 {
    ((i + 2 * k + s) % 3) as i64
}
fn b_val(k: usize, n: usize, s: usize) -> i64 {
    ((3 * k + n + s) % 5) as i64 - 1
}
fn c_val(c: usize, i: usize, n: usize) -> i64 {
    (256 * c + 8 * i + n) as i64 - 64
}

/// The (row, column) of D that register `r` (0..4) of `lane` holds (C/D layout of
/// kernels/mma.cuh, the same for both shapes).
fn d_element(lane: usize, r: usize) -> (usize, usize) {
    let (g, t) = (lane >> 2, lane & 3);
    (g + 8 * (r / 2), 2 * t + r % 2)
}

/// What thread `t` of `p`'s ceiling kernel writes after `rounds` rounds, computed on the host
/// in integers from the full matrices A and B (not from the fragments: a kernel that puts an
/// element in the wrong register writes something else). Exact: the kernel's values are
/// integers below 2^24 (see [`peak_mma_check_rounds`]). An error at fp32.
pub fn peak_mma_expected(p: Precision, t: usize, rounds: usize) -> Result<f32> {
    let k_len = peak_mma_k(p).ok_or_else(|| {
        Error::Config("peak_mma_expected: fp32 has no tensor-core ceiling kernel".into())
    })?;
    let (lane, s) = (t % WARP, (t / WARP) % 7);
    let m = (rounds * PEAK_MMA_UNROLL) as i64;
    let mut sum = 0i64;
    for r in 0..4 {
        let (i, n) = d_element(lane, r);
        let ab: i64 = (0..k_len).map(|k| a_val(i, k, s) * b_val(k, n, s)).sum();
        sum += (0..PEAK_MMA_CHAINS)
            .map(|c| c_val(c, i, n) + m * ab)
            .sum::<i64>();
    }
    Ok(sum as f32)
}

/// An error unless `rounds` keeps every value of `p`'s ceiling kernel an integer below 2^24
/// (so that its fp32 sums are exact and the twin can check it bit for bit).
pub fn peak_mma_check_rounds(p: Precision, rounds: usize) -> Result<()> {
    let k = peak_mma_k(p).unwrap_or(16) as i64;
    // |A| <= 2, |B| <= 3: |(A B)[i][n]| <= 6K; |C| < 256 * CHAINS; 32 values summed.
    let m = (rounds * PEAK_MMA_UNROLL) as i64;
    let bound = 32 * (256 * PEAK_MMA_CHAINS as i64 + m * 6 * k);
    if bound >= EXACT {
        return Err(Error::Config(format!(
            "peak_mma: {rounds} rounds would leave the exact range of fp32 (bound {bound})"
        )));
    }
    Ok(())
}

/// Launches `p`'s ceiling kernel once on `blocks` blocks of [`BLOCK`] threads for `rounds`
/// rounds and checks every thread's value against [`peak_mma_expected`]; an error naming the
/// first thread that differs (NaN, from the poisoned output, included).
pub fn check_peak_mma<E: ExecTimer>(
    be: &CudaBackend<E>,
    p: Precision,
    blocks: u32,
    rounds: usize,
) -> Result<()> {
    let kernel = peak_mma_kernel(p)
        .ok_or_else(|| Error::Config("peak_mma: fp32 has no tensor-core ceiling kernel".into()))?;
    peak_mma_check_rounds(p, rounds)?;
    let threads = blocks as usize * BLOCK as usize;
    let out = be.tensor_uninit(&[threads])?;
    let r = i32::try_from(rounds)
        .map_err(|_| Error::Config(format!("peak_mma: {rounds} rounds exceed i32")))?;
    be.launch(
        kernel,
        &LaunchCfg::linear(blocks, BLOCK),
        &[arg(&out), Arg::I32(r)],
    )?;
    let got = out.to_vec(be)?;
    for (t, &g) in got.iter().enumerate() {
        let want = peak_mma_expected(p, t, rounds)?;
        if g.to_bits() != want.to_bits() {
            return Err(Error::Device(format!(
                "{kernel}: thread {t} wrote {g}, expected {want}: the ceiling kernel is wrong"
            )));
        }
    }
    Ok(())
}

/// `p`'s tensor-core rate in GFLOP/s: checked once ([`check_peak_mma`]), then the median of
/// `iters` timed launches (after one untimed). Returns the rate and one launch's FLOPs.
pub(crate) fn measure<E: ExecTimer>(
    be: &CudaBackend<E>,
    p: Precision,
    blocks: u32,
    rounds: usize,
    iters: usize,
) -> Result<(f64, f64)> {
    check_peak_mma(be, p, blocks, rounds)?;
    let kernel = peak_mma_kernel(p).expect("checked above");
    let threads = blocks as usize * BLOCK as usize;
    let out = be.tensor_uninit(&[threads])?;
    let cfg = LaunchCfg::linear(blocks, BLOCK);
    let r = rounds as i32; // checked by check_peak_mma
    let mut times = Vec::new();
    for i in 0..iters + 1 {
        let t = be
            .executor()
            .time_ms(&mut || be.launch(kernel, &cfg, &[arg(&out), Arg::I32(r)]))?;
        if i > 0 {
            times.push(t);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    let flops = peak_mma_flops(p, threads, rounds).expect("a tensor-core precision");
    Ok((flops / (median / 1e3) / 1e9, flops))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: thread 0 (lane 0, warp 0, s = 0) holds D[0][0], D[0][1], D[8][0],
    /// D[8][1]. tf32, K = 8: A[0][k] = 2k % 3 = 0, 2, 1, 0, 2, 1, 0, 2; B[k][0] = (3k % 5) - 1
    /// = -1, 2, 0, 3, 1, -1, 2, 0; (A B)[0][0] = 0 + 4 + 0 + 0 + 2 - 1 + 0 + 0 = 5.
    #[test]
    fn twin_matches_hand_computed_values() {
        let ab00: i64 = (0..8).map(|k| a_val(0, k, 0) * b_val(k, 0, 0)).sum();
        assert_eq!(ab00, 5);
        // rounds = 0: the sum of the initial accumulators only.
        let c: i64 = (0..8)
            .map(|c| c_val(c, 0, 0) + c_val(c, 0, 1) + c_val(c, 8, 0) + c_val(c, 8, 1))
            .sum();
        assert_eq!(peak_mma_expected(Precision::Tf32, 0, 0).unwrap(), c as f32);
        assert_eq!(c, 4 * 256 * 28 + 8 * (64 + 64 + 1 + 1) - 8 * 4 * 64);
        assert!(peak_mma_expected(Precision::Fp32, 0, 1).is_err());
        assert!(peak_mma_check_rounds(Precision::Bf16, 1 << 20).is_err());
        assert!(peak_mma_check_rounds(Precision::Bf16, 1024).is_ok());
    }
}
