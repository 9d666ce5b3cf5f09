//! Ceilings: the copy bandwidth, the FP32 rate and the tensor-core rates (tf32, bf16) of the
//! device, measured in the same run as the rows, so that every row's GB/s and GFLOP/s can be
//! set against them: fp32 rows against the FP32 rate, tf32 and bf16 rows against the
//! tensor-core rate of their precision ([`Ceilings::gflop_per_s`]).

use std::time::Instant;

use serde::Serialize;

use super::peak_mma;
use super::{ExecTimer, OpRow};
use crate::backend::cuda::{arg, Arg, CudaBackend, LaunchCfg, BLOCK};
use crate::backend::Precision;
use crate::error::{Error, Result};

/// The device's ceilings, measured by the bench.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ceilings {
    /// Copy bandwidth in GB/s, counting the read and the write.
    pub copy_gb_per_s: Option<f64>,
    /// FP32 rate in GFLOP/s (an FMA is two FLOPs).
    pub fp32_gflop_per_s: Option<f64>,
    /// Tensor-core rate at tf32 in GFLOP/s (`peak_mma_tf32_v1`, mma.m16n8k8); `None` on the
    /// CPU (no tensor cores) and on the emulator (not measured).
    pub tf32_gflop_per_s: Option<f64>,
    /// Tensor-core rate at bf16 in GFLOP/s (`peak_mma_bf16_v1`, mma.m16n8k16); `None` as
    /// `tf32_gflop_per_s`.
    pub bf16_gflop_per_s: Option<f64>,
    /// How they were measured (and why a ceiling is absent).
    pub how: String,
}

impl Ceilings {
    /// The compute ceiling a row at precision `p` is set against: the FP32 rate for fp32, the
    /// tensor-core rate of `p` for tf32 and bf16 (`None` where it was not measured: a
    /// tensor-core row then has no fraction, never one of the FP32 rate).
    pub fn gflop_per_s(&self, p: Precision) -> Option<f64> {
        match p {
            Precision::Fp32 => self.fp32_gflop_per_s,
            Precision::Tf32 => self.tf32_gflop_per_s,
            Precision::Bf16 => self.bf16_gflop_per_s,
        }
    }
}

/// The median of `t` (0 when empty).
fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(0.0)
}

/// The CPU's ceilings: a multi-threaded memcpy and the backend's own GEMM.
pub(crate) fn cpu(iters: usize) -> Result<(Ceilings, Vec<OpRow>)> {
    use rayon::prelude::*;
    let iters = iters.clamp(3, 20);
    // Copy: 64 MiB, far beyond any cache, split over the threads as the ops' loops are.
    let n = 16 << 20;
    let src = vec![1.0f32; n];
    let mut dst = vec![0.0f32; n];
    let chunk = n.div_ceil(rayon::current_num_threads().max(1));
    let mut times = Vec::new();
    for _ in 0..iters + 1 {
        let t0 = Instant::now();
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        times.push(t0.elapsed().as_secs_f64());
    }
    times.remove(0);
    std::hint::black_box(&dst);
    let copy_bytes = 2.0 * 4.0 * n as f64;
    let copy = copy_bytes / median(times) / 1e9;
    // GEMM: 1024^3 multiply-adds through the backend's own sgemm (the `gemm` crate).
    use crate::backend::cpu::gemm::{sgemm, MatRef};
    let m = 1024;
    let a = vec![0.5f32; m * m];
    let b = vec![0.25f32; m * m];
    let mut c = vec![0.0f32; m * m];
    let mut times = Vec::new();
    for _ in 0..iters + 1 {
        let t0 = Instant::now();
        sgemm(
            m,
            m,
            m,
            MatRef::row_major(&a, m),
            MatRef::row_major(&b, m),
            &mut c,
            false,
        );
        times.push(t0.elapsed().as_secs_f64());
    }
    times.remove(0);
    if (c[0] - 0.125 * m as f32).abs() > 1e-3 * m as f32 {
        return Err(Error::Device(format!(
            "the ceiling GEMM computed {} instead of {}",
            c[0],
            0.125 * m as f32
        )));
    }
    let gemm_flops = 2.0 * (m * m * m) as f64;
    let fp32 = gemm_flops / median(times) / 1e9;
    let ceilings = Ceilings {
        copy_gb_per_s: Some(copy),
        fp32_gflop_per_s: Some(fp32),
        tf32_gflop_per_s: None,
        bf16_gflop_per_s: None,
        how: format!(
            "copy: 64 MiB memcpy split over {} threads (read + write counted); fp32: \
             1024x1024x1024 sgemm (gemm crate); medians of {iters}; tf32, bf16: none (the CPU \
             has no tensor cores: its tf32/bf16 rows have no ceiling fraction)",
            rayon::current_num_threads()
        ),
    };
    Ok((
        ceilings.clone(),
        ceiling_rows(
            &ceilings,
            copy_bytes,
            "memcpy 64 MiB",
            &[(Precision::Fp32, gemm_flops, "sgemm 1024^3")],
        ),
    ))
}

/// The ceiling rows of `c`: what was copied, then per precision of `compute` (FLOPs of one
/// call, what computed them) the compute ceiling, where `c` has it.
fn ceiling_rows(
    c: &Ceilings,
    copy_bytes: f64,
    copy: &str,
    compute: &[(Precision, f64, &str)],
) -> Vec<OpRow> {
    let mut rows = Vec::new();
    if let Some(bw) = c.copy_gb_per_s {
        let mut r = OpRow::new("ceiling", "copy".into(), "", copy.into(), "-".into());
        r.bytes = Some(copy_bytes);
        r.gb_per_s = Some(bw);
        r.ms = Some(copy_bytes / bw / 1e6);
        r.frac_copy_bw = Some(1.0);
        rows.push(r);
    }
    for &(p, flops, what) in compute {
        if let Some(rate) = c.gflop_per_s(p) {
            let mut r = OpRow::new("ceiling", p.name().into(), "", what.into(), "-".into());
            r.precision = p;
            r.flops = Some(flops);
            r.gflop_per_s = Some(rate);
            r.ms = Some(flops / rate / 1e6);
            r.frac_peak = Some(1.0);
            rows.push(r);
        }
    }
    rows
}

/// Independent FMA chains per thread of `peak_fma_v1` (see kernels/peak.cu).
pub const PEAK_CHAINS: usize = 8;
/// FMAs per chain per loop round of `peak_fma_v1`.
pub const PEAK_UNROLL: usize = 4;

/// What thread `t` of `peak_fma_v1` writes, computed on the host in f64 (the kernel's f32 FMA
/// chains drift from it by rounding only: the map `x -> a x + b` with |a| < 1 contracts).
pub fn peak_fma_expected(t: usize, rounds: usize, a: f32, b: f32) -> f64 {
    let (a, b) = (a as f64, b as f64);
    (0..PEAK_CHAINS)
        .map(|k| {
            let mut x = (t % 1024) as f64 * 1e-3 + k as f64;
            for _ in 0..rounds * PEAK_UNROLL {
                x = x * a + b;
            }
            x
        })
        .sum()
}

/// A CUDA executor's ceilings: a device-to-device copy, `peak_fma_v1` and the tensor-core
/// kernels `peak_mma_tf32_v1` and `peak_mma_bf16_v1` (kernels/peak_mma.cu), each checked against
/// its host twin first (on the emulator: run and checked, not measured).
pub(crate) fn cuda<E: ExecTimer>(
    be: &CudaBackend<E>,
    iters: usize,
) -> Result<(Ceilings, Vec<OpRow>)> {
    let exec = be.executor();
    let iters = iters.clamp(3, 50);
    // Sizes: the emulator only proves the path and the kernel (tiny), the GPU gets a copy
    // far beyond L2 (256 MiB) and enough FMA and mma blocks to fill every SM many times over
    // (mma: 8192 blocks x 8 warps x 16384 mma, a few ms per launch on an H200).
    let (n, blocks, rounds, mma_rounds) = if E::EMULATED {
        (1 << 12, 2u32, 4i32, 2usize)
    } else {
        (64 << 20, 8192u32, 4096i32, 1024usize)
    };
    let src = exec.alloc(n)?;
    let mut dst = exec.alloc(n)?;
    let mut times = Vec::new();
    for i in 0..iters + 1 {
        let t = exec.time_ms(&mut || exec.copy(&src, &mut dst, n))?;
        if i > 0 {
            times.push(t);
        }
    }
    drop((src, dst));
    let copy_bytes = 2.0 * 4.0 * n as f64;
    let copy = copy_bytes / (median(times) / 1e3) / 1e9;
    // FMA: validate one launch's output against the host, then time it.
    let threads = blocks as usize * BLOCK as usize;
    let out = be.tensor_uninit(&[threads])?;
    let (a, b) = (0.999f32, 1e-3f32);
    let cfg = LaunchCfg::linear(blocks, BLOCK);
    let launch = || {
        be.launch(
            "peak_fma_v1",
            &cfg,
            &[arg(&out), Arg::I32(rounds), Arg::F32(a), Arg::F32(b)],
        )
    };
    launch()?;
    let got = out.to_vec(be)?;
    for t in [0, 1, threads / 2, threads - 1] {
        let want = peak_fma_expected(t, rounds as usize, a, b);
        let g = got[t] as f64;
        // NaN fails too.
        let close = (g - want).abs() <= 1e-3 * want.abs().max(1.0);
        if !close {
            return Err(Error::Device(format!(
                "peak_fma_v1: thread {t} wrote {g}, expected {want}: the ceiling kernel is wrong"
            )));
        }
    }
    let mut times = Vec::new();
    for i in 0..iters + 1 {
        let t = exec.time_ms(&mut || launch())?;
        if i > 0 {
            times.push(t);
        }
    }
    let fma_flops = 2.0 * (threads * rounds as usize * PEAK_UNROLL * PEAK_CHAINS) as f64;
    let fp32 = fma_flops / (median(times) / 1e3) / 1e9;
    // Tensor cores: every thread's value checked against the twin, then timed.
    let (tf32, tf32_flops) = peak_mma::measure(be, Precision::Tf32, blocks, mma_rounds, iters)?;
    let (bf16, bf16_flops) = peak_mma::measure(be, Precision::Bf16, blocks, mma_rounds, iters)?;
    let ceilings = if E::EMULATED {
        Ceilings {
            copy_gb_per_s: None,
            fp32_gflop_per_s: None,
            tf32_gflop_per_s: None,
            bf16_gflop_per_s: None,
            how: "emulated: the copy, peak_fma_v1, peak_mma_tf32_v1 and peak_mma_bf16_v1 ran \
                  and were checked, not measured"
                .into(),
        }
    } else {
        Ceilings {
            copy_gb_per_s: Some(copy),
            fp32_gflop_per_s: Some(fp32),
            tf32_gflop_per_s: Some(tf32),
            bf16_gflop_per_s: Some(bf16),
            how: format!(
                "copy: {} MiB device-to-device (read + write counted); fp32: peak_fma_v1, \
                 {blocks} blocks x 256 threads x {} FMAs; tf32, bf16: peak_mma_tf32_v1, \
                 peak_mma_bf16_v1 (mma.sync), {blocks} blocks x 8 warps x {} mma; medians of \
                 {iters}",
                (n * 4) >> 20,
                rounds as usize * PEAK_UNROLL * PEAK_CHAINS,
                mma_rounds * peak_mma::PEAK_MMA_CHAINS * peak_mma::PEAK_MMA_UNROLL
            ),
        }
    };
    let mut rows = ceiling_rows(
        &ceilings,
        copy_bytes,
        &format!("device-to-device {} MiB", (n * 4) >> 20),
        &[
            (Precision::Fp32, fma_flops, "peak_fma_v1"),
            (Precision::Tf32, tf32_flops, "peak_mma_tf32_v1 (m16n8k8)"),
            (Precision::Bf16, bf16_flops, "peak_mma_bf16_v1 (m16n8k16)"),
        ],
    );
    if E::EMULATED {
        for (p, kernel) in [
            (Precision::Fp32, "peak_fma_v1"),
            (Precision::Tf32, "peak_mma_tf32_v1"),
            (Precision::Bf16, "peak_mma_bf16_v1"),
        ] {
            let name = kernel.trim_end_matches("_v1");
            let mut r = OpRow::new(
                "ceiling",
                name.into(),
                "",
                format!("{kernel} (checked only)"),
                "v1".into(),
            );
            r.precision = p;
            r.note = "emulated: not a ceiling".into();
            rows.push(r);
        }
    }
    Ok((ceilings, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_expectation_is_a_contraction() {
        let v = peak_fma_expected(3, 1000, 0.999, 1e-3);
        assert!(v.is_finite() && v > 0.0);
    }
}
