//! The persistent recurrence at tf32 and bf16 (issue 18): `<scan>_persistent_fwd_{tf32,bf16}_v2`
//! (and `_v5`, the forward under `V5`) and `<scan>_persistent_bwd_{tf32,bf16}_v{2,3}` (and
//! `_v5`, the backward under `V5`; kernels/lstm_persistent.cuh, Versions;
//! host cuda/lstm_persistent.rs), the folded layout of both scans, against the CPU twin at the
//! same precision (cpu/lstm.rs `forward_precision` / `backward_precision`: the state-to-state
//! products' operands rounded once, fp32 accumulation). NaN-poisoned outputs, every scheduling
//! seed; shapes with one image, with h >= 64 (a cluster of several unit tiles), with several
//! position groups, and h = 128.
//!
//! Per case and precision: the forward (h, c, gates) against the twin's forward; the backward
//! (d_is, d_w_ss) from the twin's states (so that it is checked alone) against the twin's
//! backward, under the persistent v2 and v3 backward, whose outputs must be the same bits (the
//! same summation order per element, the same roundings); the persistent run against the fused
//! one (tensor-core steps) at the same precision. Each precision also checks that the fp32
//! persistent kernels miss the twin by more than the tolerances (pooled over the cases), so
//! that a kernel that skipped the rounding fails.
//!
//! Tolerances ([`FWD_U`], [`D_IS_U`], [`DW_U`], multiples of the precision's unit roundoff):
//! relative L2 over each output. A product of two
//! rounded operands is exact in fp32, so kernel and twin differ only in the order of the fp32
//! additions of each pre-activation (the kernel: `is`, then taps and features ascending; the
//! twin: its GEMM, then `is`). The recurrence compounds that: step s + 1 rounds the h that step
//! s computed, and an fp32-ulp difference in h can move its rounded value by one tf32 / bf16
//! ulp (2^-11 / 2^-8 relative), which propagates through the later steps. The backward from
//! the twin's states sees the same effect through d_is (the next step's d_pre, rounded). The
//! bounds are 10 to 100 times the largest error measured here on the emulator (stated with the
//! constants) for the GPU's sake: its expf / tanhf differ from the host's by a few ulp, which
//! can flip roundings that the emulator did not (the products themselves are exact in fp32, so
//! FMA contraction changes nothing). They stay below the fp32 kernels' distance from the twin
//! (checked), so a kernel that skipped the rounding fails.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    AccessOp, CudaBackend, DiagLstm, EmuOptions, Emulator, Executor, LaunchCounters,
    LstmPersistentProduct, MemSpace, RowLstm, SiteCounters, Variants,
};
use pixelrnn::backend::{Backend, LstmState, Precision, Recurrence};
use pixelrnn::error::Error;
use pixelrnn::parity::l2_rel_err;
use pixelrnn::tensor::Tensor;

use crate::{download, pair, rel_err, to_gpu};

crate::parity_tests! {
    lstm_persistent_precision => super::check_lstm_persistent_precision,
}

/// The unit roundoff of the rounded operands: tf32 keeps 10 mantissa bits (2^-11), bf16 7
/// (2^-8). A rounding flip (module comment) moves an operand by up to twice this, so the
/// bounds below are multiples of it.
pub(crate) fn unit_roundoff(p: Precision) -> f64 {
    match p {
        Precision::Bf16 => 2f64.powi(-8),
        _ => 2f64.powi(-11),
    }
}

/// Relative L2 bound of the forward outputs (h, c, gates) against the twin, in units of the
/// unit roundoff: 9.8e-6 (tf32), 7.8e-5 (bf16). Measured on the cases below (emulator, both
/// seeds): at most 9.8e-8 at both precisions (no flip: only the order of the fp32 additions).
pub(crate) const FWD_U: f64 = 0.02;

/// Relative L2 bound of d_is against the twin (the backward from the twin's states): 2.0e-5
/// (tf32), 1.6e-4 (bf16). Measured: at most 1.2e-6 (tf32), 7.9e-6 (bf16).
pub(crate) const D_IS_U: f64 = 0.04;

/// Relative L2 bound of d_w_ss (lstm_ss_bwd_weight_<precision>_v1 on the twin's h and the
/// kernel's d_is, a sum over every position): 9.8e-5 (tf32), 7.8e-4 (bf16). Measured: at most
/// 7.7e-6 (tf32), 5.0e-5 (bf16).
pub(crate) const DW_U: f64 = 0.2;

/// One recurrence: the Row LSTM's kernel width (`None`: the Diagonal LSTM), `[n, H, W, h]`, a
/// seed.
pub(crate) type Case = (Option<usize>, [usize; 4], u64);

/// The shapes of every persistent-at-precision check (this file's SIMT kernels and the
/// tensor-core ones of tests/cuda/lstm_persistent_mma.rs).
pub(crate) const CASES: [Case; 6] = [
    // One image, h = 3: one unit tile, 29 of its 32 lanes dead.
    (Some(3), [1, 3, 5, 3], 1800),
    // h = 40: 2 unit tiles (the second 8 live units) x 2 position groups (W = 20: 2 tiles of
    // 16 positions forward, the second of 4).
    (Some(3), [2, 3, 20, 40], 1810),
    // h = 64, k = 5: 2 full unit tiles, 4 gate-row chunks of 128 in the backward.
    (Some(5), [1, 3, 6, 64], 1820),
    // The paper's h = 128: clusters of 4 unit tiles holding 192 KiB of rounded weights each.
    (Some(3), [1, 2, 4, 128], 1830),
    // The Diagonal LSTM: anti-diagonals of 1 .. 4 positions, two images.
    (None, [2, 4, 5, 9], 1840),
    // h = 70: 3 unit tiles (the last 6 live units), one image.
    (None, [1, 3, 4, 70], 1850),
];

/// The case in words, for messages.
pub(crate) fn what(case: &Case) -> String {
    let (k, [n, height, width, hd], _) = *case;
    match k {
        Some(k) => format!("row_lstm k={k} n={n} {height}x{width} h={hd}"),
        None => format!("diag_lstm n={n} {height}x{width} h={hd}"),
    }
}

/// A case's inputs, each on the CPU and on the device (`is`, `w_ss` at a 1.5 / sqrt(fan-in)
/// scale, `dh`), and the CPU twin's forward and backward (from its own states) at the twin's
/// precision.
pub(crate) struct Setup<E: Executor> {
    pub(crate) is: (Tensor<CpuBackend>, Tensor<CudaBackend<E>>),
    pub(crate) w: (Tensor<CpuBackend>, Tensor<CudaBackend<E>>),
    pub(crate) dh: (Tensor<CpuBackend>, Tensor<CudaBackend<E>>),
    pub(crate) want: LstmState<CpuBackend>,
    pub(crate) d_is_want: Tensor<CpuBackend>,
    pub(crate) dw_want: Tensor<CpuBackend>,
}

/// [`Setup`] of `case` on `gpu`, the twin `cpu` (set to the precision under test).
pub(crate) fn setup<E: Executor>(gpu: &CudaBackend<E>, cpu: &CpuBackend, case: &Case) -> Setup<E> {
    let (k, [n, height, width, hd], seed) = *case;
    let rec = Recurrence::Persistent;
    let ws = w_shape(k, hd);
    let fan_in = (ws[1] * ws[2] * ws[3]) as f32;
    let is = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
    let w = pair(gpu, &ws, seed + 1, 1.5 / fan_in.sqrt());
    let dh = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);
    let want = forward(cpu, k, &is.0, &w.0, rec);
    let (d_is_want, dw_want) = backward(cpu, k, &want, &w.0, &dh.0, rec);
    Setup {
        is,
        w,
        dh,
        want,
        d_is_want,
        dw_want,
    }
}

/// The state weight's shape: `[4h, h, 1, k]` (Row LSTM) or `[4h, h, 2, 1]` (Diagonal LSTM).
pub(crate) fn w_shape(k: Option<usize>, hd: usize) -> [usize; 4] {
    match k {
        Some(k) => [4 * hd, hd, 1, k],
        None => [4 * hd, hd, 2, 1],
    }
}

pub(crate) fn forward<B: Backend>(
    be: &B,
    k: Option<usize>,
    is: &Tensor<B>,
    w: &Tensor<B>,
    rec: Recurrence,
) -> LstmState<B> {
    match k {
        Some(_) => be.row_lstm_forward(is, w, rec),
        None => be.diag_lstm_forward(is, w, rec),
    }
    .unwrap_or_else(|e| panic!("forward ({rec:?}) at {}: {e}", be.precision()))
}

pub(crate) fn backward<B: Backend>(
    be: &B,
    k: Option<usize>,
    state: &LstmState<B>,
    w: &Tensor<B>,
    dh: &Tensor<B>,
    rec: Recurrence,
) -> (Tensor<B>, Tensor<B>) {
    match k {
        Some(_) => be.row_lstm_backward(state, w, dh, rec),
        None => be.diag_lstm_backward(state, w, dh, rec),
    }
    .unwrap_or_else(|e| panic!("backward ({rec:?}) at {}: {e}", be.precision()))
}

/// Version `v` of the case's scan (the others default).
fn version(k: Option<usize>, v: u32) -> Variants {
    match k {
        Some(_) => Variants {
            row_lstm: RowLstm::try_from(v).expect("version"),
            ..Variants::default()
        },
        None => Variants {
            diag_lstm: DiagLstm::try_from(v).expect("version"),
            ..Variants::default()
        },
    }
}

/// `variants` with the persistent recurrence's SIMT product (the kernels this file checks
/// under their names; the tensor-core forward is tests/cuda/lstm_persistent_mma.rs's).
fn simt(variants: Variants) -> Variants {
    Variants {
        lstm_persistent_product: LstmPersistentProduct::Simt,
        ..variants
    }
}

/// The twin's distance from a run that skipped the rounding, pooled over every case: the sums
/// of squared differences and of squared references.
#[derive(Default)]
struct Gap {
    num: f64,
    den: f64,
}

impl Gap {
    fn add(&mut self, got: &[f32], want: &[f32]) {
        for (a, b) in got.iter().zip(want) {
            self.num += (f64::from(*a) - f64::from(*b)).powi(2);
            self.den += f64::from(*b).powi(2);
        }
    }

    fn rel(&self) -> f64 {
        (self.num / self.den).sqrt()
    }
}

/// Every case at tf32 and bf16: the persistent forward and backward (v2 and v3) against the
/// twin, v2 against v3 bit for bit, persistent against fused; the fp32 kernels' distance from
/// the twin above the tolerances.
pub fn check_lstm_persistent_precision<E: Executor>(gpu: &CudaBackend<E>) {
    let rec = Recurrence::Persistent;
    for precision in [Precision::Tf32, Precision::Bf16] {
        let cpu = CpuBackend::new();
        cpu.set_precision(precision);
        let u = unit_roundoff(precision);
        let (fwd_tol, d_is_tol, dw_tol) = (FWD_U * u, D_IS_U * u, DW_U * u);
        let (mut fwd_gap, mut bwd_gap) = (Gap::default(), Gap::default());
        let (mut fwd_max, mut d_is_max, mut dw_max) = (0.0f64, 0.0f64, 0.0f64);
        let mut vs_fused_max = 0.0f64;
        for case in CASES {
            let k = case.0;
            let what = |part: &str| format!("{} {precision} {part}", what(&case));
            let Setup {
                is: (_, is_g),
                w: (_, w_g),
                dh: (_, dh_g),
                want,
                d_is_want,
                dw_want,
            } = setup(gpu, &cpu, &case);

            // The forward, against the twin; without the rounding (the fp32 kernel) it must
            // miss by more (pooled below).
            gpu.set_precision(precision);
            let got = {
                let _simt = gpu.select(simt(version(k, 2)));
                forward(gpu, k, &is_g, &w_g, rec)
            };
            // The rounded v4 forward (`V4`): v2's summation order and roundings, so v2's bits
            // exactly.
            let got_v4 = {
                let _v4 = gpu.select(simt(version(k, 4)));
                forward(gpu, k, &is_g, &w_g, rec)
            };
            for (part, a, b) in [
                ("h", &got.h, &got_v4.h),
                ("c", &got.c, &got_v4.c),
                ("gates", &got.gates, &got_v4.gates),
            ] {
                let (a, b) = (download(gpu, a, part), download(gpu, b, part));
                let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{}: the rounded v4 forward is not v2's bits",
                    what(part)
                );
            }
            for (part, g, t) in [
                ("h", &got.h, &want.h),
                ("c", &got.c, &want.c),
                ("gates", &got.gates, &want.gates),
            ] {
                let err = rel_err(&what(part), &download(gpu, g, part), &t.data);
                eprintln!("{}: rel err {err:.3e}", what(part));
                fwd_max = fwd_max.max(err);
                assert!(err <= fwd_tol, "{}: rel err {err:.3e}", what(part));
            }

            // The rounded v5 to v7 forward (V5 to V7 under the SIMT product: other summation
            // orders than v2's, the same tolerance against the twin).
            for v in [5, 6, 7] {
                let got_v = {
                    let _v = gpu.select(simt(version(k, v)));
                    forward(gpu, k, &is_g, &w_g, rec)
                };
                for (part, g, t) in [
                    ("h", &got_v.h, &want.h),
                    ("c", &got_v.c, &want.c),
                    ("gates", &got_v.gates, &want.gates),
                ] {
                    let err = rel_err(
                        &what(&format!("v{v} {part}")),
                        &download(gpu, g, part),
                        &t.data,
                    );
                    eprintln!("{} v{v}: rel err {err:.3e}", what(part));
                    fwd_max = fwd_max.max(err);
                    assert!(err <= fwd_tol, "{} v{v}: rel err {err:.3e}", what(part));
                }
            }

            // The backward from the twin's states, under the v2 to v7 (the default) persistent
            // backward of the SIMT product (v4 to v7: other summation orders, so only v2 and
            // v3 must agree bit for bit, and v6 and v7, which sum in the same order).
            let state = LstmState {
                h: to_gpu(gpu, &want.h),
                c: to_gpu(gpu, &want.c),
                gates: to_gpu(gpu, &want.gates),
            };
            let mut by_version = Vec::new();
            for v in [2, 3, 4, 5, 6, 7] {
                let _v = gpu.select(simt(version(k, v)));
                let (d_is, dw) = backward(gpu, k, &state, &w_g, &dh_g, rec);
                let got = [download(gpu, &d_is, "d_is"), download(gpu, &dw, "d_w_ss")];
                for (part, g, t, tol, max) in [
                    ("d_is", &got[0], &d_is_want.data, d_is_tol, &mut d_is_max),
                    ("d_w_ss", &got[1], &dw_want.data, dw_tol, &mut dw_max),
                ] {
                    let err = rel_err(&what(&format!("v{v} {part}")), g, t);
                    eprintln!("{} v{v}: rel err {err:.3e}", what(part));
                    *max = max.max(err);
                    assert!(err <= tol, "{} v{v}: rel err {err:.3e}", what(part));
                }
                by_version.push(got);
            }
            for (i, part) in ["d_is", "d_w_ss"].iter().enumerate() {
                let same = by_version[0][i]
                    .iter()
                    .zip(&by_version[1][i])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{}: v3 is not v2's bits", what(part));
                let same = by_version[4][i]
                    .iter()
                    .zip(&by_version[5][i])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{}: v7 is not v6's bits", what(part));
            }

            // Persistent against fused (the tensor-core steps) at the same precision: both run
            // the twin's arithmetic in other addition orders, each within the tolerance of the
            // twin, so within twice it of each other.
            let fused = forward(gpu, k, &is_g, &w_g, Recurrence::Fused);
            let (d_is_fused, _) = backward(gpu, k, &state, &w_g, &dh_g, Recurrence::Fused);
            for (part, a, b, tol) in [
                (
                    "h",
                    download(gpu, &got.h, "h"),
                    download(gpu, &fused.h, "h"),
                    fwd_tol,
                ),
                (
                    "d_is",
                    by_version[1][0].clone(),
                    download(gpu, &d_is_fused, "d_is"),
                    d_is_tol,
                ),
            ] {
                let err = l2_rel_err(&a, &b);
                vs_fused_max = vs_fused_max.max(err / tol);
                assert!(
                    err <= 2.0 * tol,
                    "{}: persistent vs fused rel err {err:.3e}",
                    what(part)
                );
            }

            // The same calls at fp32 (the kernels without the rounding): their distance from
            // the twin, pooled.
            gpu.set_precision(Precision::Fp32);
            let plain = forward(gpu, k, &is_g, &w_g, rec);
            fwd_gap.add(&download(gpu, &plain.h, "h"), &want.h.data);
            let (d_is_plain, _) = backward(gpu, k, &state, &w_g, &dh_g, rec);
            bwd_gap.add(&download(gpu, &d_is_plain, "d_is"), &d_is_want.data);
        }
        let (fg, bg) = (fwd_gap.rel(), bwd_gap.rel());
        eprintln!(
            "persistent {precision}: max rel err forward {fwd_max:.3e}, d_is {d_is_max:.3e}, \
             d_w_ss {dw_max:.3e}; \
             persistent vs fused at most {vs_fused_max:.3} of the tolerance; the fp32 kernels' \
             distance from the twin: h {fg:.3e}, d_is {bg:.3e}"
        );
        assert!(
            fg > fwd_tol && bg > d_is_tol,
            "{precision}: the fp32 kernels are within the tolerance of the twin (h {fg:.3e}, \
             d_is {bg:.3e}): the data does not show the rounding"
        );
    }
    gpu.set_precision(Precision::Fp32);
}

/// The kernels one call launched, in order.
pub(crate) fn launched(gpu: &CudaBackend<Emulator>) -> Vec<String> {
    gpu.executor()
        .take_counters()
        .into_iter()
        .map(|c| c.kernel)
        .collect()
}

/// The launches at tf32 / bf16 (the emulator's counters): the forward is the one rounded v2
/// cluster kernel (the rounded v4 under `V4`, v5 under `V5`, v6 under the default `V6`), the
/// backward the rounded v2 under `V2` (v3 under `V3`, v4 to v6 under `V4` to `V6`, and v2 under `V1`,
/// which has no rounded kernel) plus the rounded weight gradient; where no cluster fits (h = 160, Row LSTM
/// k = 3: a 240 KiB weight slice per block) the op refuses, naming the persistent path and
/// the precision, before launching anything.
#[test]
fn persistent_launches_the_rounded_kernels_and_refuses_the_v1_fallback() {
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    // No NaN poisoning: its fill launches are the test's, not the op's.
    let gpu = CudaBackend::new(emu);
    let rec = Recurrence::Persistent;
    for precision in [Precision::Tf32, Precision::Bf16] {
        for (k, scan) in [(Some(3), "row_lstm"), (None, "diag_lstm")] {
            let (n, height, width, hd) = (2, 2, 3, 40);
            let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 1, 1.0);
            let (_, w) = pair(&gpu, &w_shape(k, hd), 2, 0.1);
            let (_, dh) = pair(&gpu, &[n, height, width, hd], 3, 1.0);
            for (v, fwd_v, bwd_v) in [
                (6, 6, 6),
                (5, 5, 5),
                (4, 4, 4),
                (3, 2, 3),
                (2, 2, 2),
                (1, 2, 2),
            ] {
                // The SIMT product (the tensor-core forward: tests/cuda/lstm_persistent_mma.rs).
                let _v = gpu.select(simt(version(k, v)));
                gpu.set_precision(precision);
                launched(&gpu);
                let state = forward(&gpu, k, &is, &w, rec);
                assert_eq!(
                    launched(&gpu),
                    [format!("{scan}_persistent_fwd_{precision}_v{fwd_v}")],
                    "{scan} v{v} forward at {precision}"
                );
                backward(&gpu, k, &state, &w, &dh, rec);
                assert_eq!(
                    launched(&gpu),
                    [
                        format!("{scan}_persistent_bwd_{precision}_v{bwd_v}"),
                        format!("lstm_ss_bwd_weight_{precision}_v2"),
                        "lstm_ss_bwd_weight_sum_v2".to_string(),
                    ],
                    "{scan} v{v} backward at {precision}"
                );
                gpu.set_precision(Precision::Fp32);
            }
        }

        // The v1 fallback refuses at tf32 / bf16 (it would run fp32). Under the SIMT product
        // (the tensor-core forward fits at bf16 here: tests/cuda/lstm_persistent_mma.rs).
        let _simt = gpu.select(simt(Variants::default()));
        let (n, height, width, hd) = (1, 2, 2, 160);
        let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 4, 1.0);
        let (_, w) = pair(&gpu, &w_shape(Some(3), hd), 5, 0.05);
        let (_, dh) = pair(&gpu, &[n, height, width, hd], 6, 1.0);
        let zeros = |shape: &[usize]| {
            Tensor::from_slice(&gpu, shape, &vec![0.0; shape.iter().product()]).expect("upload")
        };
        let state = LstmState {
            h: zeros(&[n, height, width, hd]),
            c: zeros(&[n, height, width, hd]),
            gates: zeros(&[n, height, width, 4 * hd]),
        };
        gpu.set_precision(precision);
        launched(&gpu);
        for (op, r) in [
            (
                "row_lstm_forward",
                gpu.row_lstm_forward(&is, &w, rec).map(drop),
            ),
            (
                "row_lstm_backward",
                gpu.row_lstm_backward(&state, &w, &dh, rec).map(drop),
            ),
        ] {
            let Err(e) = r else {
                panic!("{op} at h = {hd}, {precision}: ran (the v1 fallback) instead of refusing");
            };
            let msg = e.to_string();
            assert!(
                matches!(e, Error::PrecisionUnsupported { .. }),
                "{op}: another error: {msg}"
            );
            for part in [op, "persistent", "v1 fallback", precision.name()] {
                assert!(msg.contains(part), "{op}: `{msg}` lacks `{part}`");
            }
            assert!(!msg.contains('\n'), "not one line: {msg}");
        }
        assert_eq!(
            launched(&gpu),
            Vec::<String>::new(),
            "refused before launching"
        );
        gpu.set_precision(Precision::Fp32);
    }
}

/// A persistent launch's memory traffic by the emulator's counters: global bytes loaded and
/// stored, global sectors, shared bytes loaded and stored, shared wavefronts.
fn traffic(c: &LaunchCounters) -> [u64; 6] {
    let sum = |space, op, f: fn(&SiteCounters) -> u64| {
        c.sites_of(space, op).into_iter().map(f).sum::<u64>()
    };
    let (g, s) = (MemSpace::Global, MemSpace::Shared);
    let (ld, st) = (AccessOp::Load, AccessOp::Store);
    [
        sum(g, ld, |x| x.bytes),
        sum(g, st, |x| x.bytes),
        sum(g, ld, |x| x.sectors) + sum(g, st, |x| x.sectors),
        sum(s, ld, |x| x.bytes),
        sum(s, st, |x| x.bytes),
        sum(s, ld, |x| x.wavefronts) + sum(s, st, |x| x.wavefronts),
    ]
}

/// The rounded kernels move exactly the fp32 kernels' memory (the rounding is arithmetic on
/// values already loaded): the emulator's counters of the persistent forward and backward at
/// tf32 and bf16 equal fp32's, site totals and wavefronts alike, on the Row LSTM (k = 3) at
/// n = 1, 2 x 32, h = 64 (the v3 counter case of tests/cuda/lstm_persistent_v3.rs) and the
/// Diagonal LSTM at n = 1, 8 x 8, h = 64.
#[test]
fn rounded_persistent_kernels_move_the_fp32_kernels_memory() {
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    let gpu = CudaBackend::new(emu);
    let _simt = gpu.select(simt(Variants::default()));
    let rec = Recurrence::Persistent;
    for (k, [n, height, width, hd]) in [(Some(3), [1, 2, 32, 64]), (None, [1, 8, 8, 64])] {
        let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 11, 1.5);
        let (_, w) = pair(&gpu, &w_shape(k, hd), 12, 0.1);
        let (_, dh) = pair(&gpu, &[n, height, width, hd], 13, 1.0);
        let mut by_precision = Vec::new();
        for p in Precision::ALL {
            gpu.set_precision(p);
            gpu.executor().take_counters();
            let state = forward(&gpu, k, &is, &w, rec);
            backward(&gpu, k, &state, &w, &dh, rec);
            let launches: Vec<(String, [u64; 6])> = gpu
                .executor()
                .take_counters()
                .iter()
                .filter(|c| c.kernel.contains("_persistent_"))
                .map(|c| (c.kernel.clone(), traffic(c)))
                .collect();
            assert_eq!(launches.len(), 2, "{p}: a forward and a backward launch");
            for (kernel, t) in &launches {
                eprintln!(
                    "{kernel}: global load/store bytes {}/{}, sectors {}, shared load/store \
                     bytes {}/{}, wavefronts {}",
                    t[0], t[1], t[2], t[3], t[4], t[5]
                );
            }
            by_precision.push(launches);
        }
        gpu.set_precision(Precision::Fp32);
        for (p, launches) in Precision::ALL.iter().zip(&by_precision).skip(1) {
            for ((k32, t32), (kp, tp)) in by_precision[0].iter().zip(launches) {
                assert_eq!(
                    kp.replace(&format!("_{p}_"), "_"),
                    *k32,
                    "{p}: the rounded twin of {k32}"
                );
                assert_eq!(tp, t32, "{kp}: its traffic differs from {k32}'s");
            }
        }
    }
}
