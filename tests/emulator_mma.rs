//! The emulator's tensor-core instructions (kernels/mma.cuh, runtime/intrinsics.cpp's
//! complete_mma) with their own kernels (kernels/emu/selftest.cu): the tf32 and bf16
//! conversions bit for bit against `backend::precision`, one warp's mma against a plain
//! matrix product of the rounded fragments, a kernel that swaps two fragment registers caught,
//! and an mma without the whole warp reported.

use pixelrnn::backend::cuda::{Arg, EmuOptions, Emulator, Executor, LaunchCfg};
use pixelrnn::backend::{round_bf16, round_tf32};
use pixelrnn::error::Error;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn emu(seed: u64) -> Emulator {
    Emulator::new(EmuOptions {
        seed,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
}

fn upload(e: &Emulator, data: &[f32]) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(data.len()).expect("alloc");
    e.upload_into(&mut b, data).expect("upload");
    b
}

#[test]
fn the_device_roundings_match_the_cpu_twins_bit_for_bit() {
    let mut x: Vec<f32> = (0..5000)
        .map(|i| ((i as f32) * 0.7317 - 1800.0) * 1.41f32.powi(i % 60 - 30))
        .collect();
    // Ties of both formats at 1.0 (tf32 ulp 2^-10, bf16 ulp 2^-7), subnormals (the smallest,
    // tf32 and bf16 ties, the largest), the format edges, infinities and NaNs.
    x.extend([
        0.0,
        -0.0,
        1.0 + 0.5 / 1024.0,
        1.0 + 1.5 / 1024.0,
        -(1.0 + 0.5 / 1024.0),
        1.0 + 0.5 / 128.0,
        1.0 + 1.5 / 128.0,
        f32::from_bits(1),
        f32::from_bits(0x1000),
        f32::from_bits(0x8000),
        f32::from_bits(0x18000),
        f32::from_bits(0x007f_ffff),
        f32::MAX,
        -f32::MAX,
        f32::from_bits(0x7f7f_efff),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ]);
    let n = x.len();
    let e = emu(0);
    let xb = upload(&e, &x);
    let out = e.alloc(2 * n).expect("alloc");
    e.launch(
        "selftest_round_v1",
        &LaunchCfg::for_elements(n, 256, 8),
        &[Arg::Buf(&xb), Arg::Buf(&out), Arg::I32(n as i32)],
    )
    .expect("launch");
    let out = e.download(&out, 2 * n).unwrap();
    for (i, &v) in x.iter().enumerate() {
        let (t, b) = (out[2 * i], out[2 * i + 1]);
        if v.is_nan() {
            assert!(t.is_nan() && b.is_nan(), "NaN {:#x}", v.to_bits());
            continue;
        }
        assert_eq!(t.to_bits(), round_tf32(v).to_bits(), "tf32({v:e})");
        assert_eq!(b.to_bits(), round_bf16(v).to_bits(), "bf16({v:e})");
    }
}

/// One warp's mma: `d = a * b + c`, `a` [16, k], `b` [k, 8], `c` [16, 8], row-major.
struct Mma {
    kernel: &'static str,
    k: usize,
    round: fn(f32) -> f32,
}

const TF32: Mma = Mma {
    kernel: "selftest_mma_tf32_v1",
    k: 8,
    round: round_tf32,
};
const BF16: Mma = Mma {
    kernel: "selftest_mma_bf16_v1",
    k: 16,
    round: round_bf16,
};

impl Mma {
    fn run(&self, seed: u64, a: &[f32], b: &[f32], c: &[f32], swap: i32) -> Vec<f32> {
        let e = emu(seed);
        let (ab, bb, cb) = (upload(&e, a), upload(&e, b), upload(&e, c));
        let d = e.alloc(16 * 8).expect("alloc");
        e.launch(
            self.kernel,
            &LaunchCfg::linear(1, 32),
            &[
                Arg::Buf(&ab),
                Arg::Buf(&bb),
                Arg::Buf(&cb),
                Arg::Buf(&d),
                Arg::I32(swap),
            ],
        )
        .unwrap_or_else(|err| panic!("{}: {err}", self.kernel));
        e.download(&d, 16 * 8).unwrap()
    }

    /// The product of the rounded operands in f64 (exact for these sizes up to the last
    /// rounding), and for each element the bound of an fp32 accumulation of its k + 1 terms
    /// in any order: (k + 1) * 2^-24 * (|c| + sum |a b|) (each of the k additions rounds
    /// once, by at most half an ulp of a partial sum no larger than that sum of magnitudes).
    fn reference(&self, a: &[f32], b: &[f32], c: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let k = self.k;
        let mut want = vec![0.0f64; 128];
        let mut bound = vec![0.0f64; 128];
        for i in 0..16 {
            for j in 0..8 {
                let mut s = c[i * 8 + j] as f64;
                let mut mag = s.abs();
                for kk in 0..k {
                    let p = (self.round)(a[i * k + kk]) as f64 * (self.round)(b[kk * 8 + j]) as f64;
                    s += p;
                    mag += p.abs();
                }
                want[i * 8 + j] = s;
                bound[i * 8 + j] = (k + 1) as f64 * mag * f64::powi(2.0, -24);
            }
        }
        (want, bound)
    }
}

fn random(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

/// Small integers times powers of two: every product and partial sum is exact in fp32, so the
/// mma must equal the plain product exactly, whatever its order of additions.
fn exact_values(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            rng.random_range(-8i32..=8) as f32 * [0.25f32, 0.5, 1.0, 2.0][rng.random_range(0..4)]
        })
        .collect()
}

fn check_mma(m: &Mma) {
    for (case, seed) in [(0u64, 11u64), (1, 12), (2, 0x5eed)] {
        // Exact case: equality.
        let (a, b, c) = (
            exact_values(seed, 16 * m.k),
            exact_values(seed + 1, m.k * 8),
            exact_values(seed + 2, 128),
        );
        let d = m.run(case, &a, &b, &c, 0);
        let (want, _) = m.reference(&a, &b, &c);
        for (idx, (&g, &w)) in d.iter().zip(&want).enumerate() {
            assert_eq!(g as f64, w, "{} exact element {idx}", m.kernel);
        }
        // Random reals, not representable in the format: the kernel rounds them (the
        // reference uses the CPU twins' rounding), then accumulates in fp32 within the
        // bound of any summation order.
        let (a, b, c) = (
            random(seed, 16 * m.k),
            random(seed + 1, m.k * 8),
            random(seed + 2, 128),
        );
        let d = m.run(case, &a, &b, &c, 0);
        let (want, bound) = m.reference(&a, &b, &c);
        for (idx, ((&g, &w), &tol)) in d.iter().zip(&want).zip(&bound).enumerate() {
            assert!(
                (g as f64 - w).abs() <= tol,
                "{} element {idx}: {g} vs {w} (bound {tol:e})",
                m.kernel
            );
        }
        // Unrounded operands would differ from the rounded reference by far more than the
        // accumulation bound (so the bound above does test the rounding).
        let raw: f64 = (0..16)
            .map(|i| {
                (0..m.k)
                    .map(|kk| a[i * m.k + kk] as f64 * b[kk * 8] as f64)
                    .sum::<f64>()
                    + c[i * 8] as f64
                    - want[i * 8]
            })
            .map(f64::abs)
            .fold(0.0, f64::max);
        assert!(
            raw > 10.0 * bound[0],
            "{}: rounding invisible ({raw:e})",
            m.kernel
        );
    }
}

#[test]
fn tf32_mma_is_the_product_of_the_rounded_fragments() {
    check_mma(&TF32);
}

#[test]
fn bf16_mma_is_the_product_of_the_rounded_fragments() {
    check_mma(&BF16);
}

/// A kernel that exchanges two fragment registers (A's a1/a2, or B's two) computes another
/// product: the same comparison that the correct kernel passes fails by far.
#[test]
fn a_kernel_that_swaps_fragment_registers_fails_the_check() {
    for m in [&TF32, &BF16] {
        let (a, b, c) = (
            exact_values(21, 16 * m.k),
            exact_values(22, m.k * 8),
            exact_values(23, 128),
        );
        let (want, _) = m.reference(&a, &b, &c);
        for swap in [1, 2] {
            let d = m.run(0, &a, &b, &c, swap);
            let wrong = d.iter().zip(&want).filter(|(&g, &w)| g as f64 != w).count();
            assert!(
                wrong >= 32,
                "{} with swap {swap}: only {wrong} of 128 elements differ",
                m.kernel
            );
        }
    }
}

#[test]
fn an_mma_without_the_whole_warp_is_an_error() {
    let e = emu(0);
    let d = e.alloc(32).expect("alloc");
    match e.launch(
        "selftest_mma_partial_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&d)],
    ) {
        Err(Error::Device(m)) => assert!(m.contains("mma.sync") || m.contains("exited"), "{m}"),
        other => panic!("expected a device error, got {other:?}"),
    }
}
