//! The recurrence kernel versions (v1 to v5 of kernels/{row_lstm,diag_lstm}.cu and the
//! persistent kernels) against
//! each other: forward and backward within `FP32_REL_TOL` on every backend, the step kernels
//! bit for bit on the emulator, the weight gradient bit-identical across thread schedules, and
//! the version selection reaching the launches (the emulator's counters name the kernels).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, Emulator, Executor, Variants};
use pixelrnn::backend::{LstmState, Recurrence};

use crate::lstm_scan::{scan_version, scan_versions, Scan, RECURRENCES};
use crate::{pair, rel_err, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    lstm_versions_agree => super::check_versions_agree,
}

/// The kernel versions of each scan against each other on CUDA, from one set of states:
/// forward (h, c, gates) and backward (d_is, d_w_ss) within `FP32_REL_TOL`, with shapes whose
/// `4h` and `taps * h` are not multiples of the weight gradient's 64-wide tiles and whose
/// position count is split over several blocks (n 2, 12 x 13: 312 positions), and a weight
/// gradient with more than 64 gate rows (h = 20: 80 rows, 60 columns at k = 3).
pub fn check_versions_agree<E: Executor>(gpu: &CudaBackend<E>) {
    check_versions(gpu, false);
}

/// The step kernels of v2 and v3 keep v1's summation order, so on the emulator (one compiler
/// for all, no contraction differences) their h, c, gates and d_is are the same bits as v1's;
/// the weight gradients differ in summation order (within `FP32_REL_TOL`).
#[test]
fn v2_and_v3_steps_equal_v1_bit_for_bit_on_the_emulator() {
    for seed in crate::SCHEDULE_SEEDS {
        check_versions(&crate::emulator(seed), true);
    }
}

/// [`check_versions_agree`]; `exact`: the step results must also be bit-identical.
fn check_versions<E: Executor>(gpu: &CudaBackend<E>, exact: bool) {
    let cpu = CpuBackend::new();
    let cases = [
        (Scan::Row(3), [2, 12, 13, 5], 500u64),
        (Scan::Row(3), [1, 3, 6, 20], 510),
        (Scan::Diagonal, [2, 12, 13, 5], 520),
        (Scan::Diagonal, [1, 4, 3, 20], 530),
        // More than the v2 kernels' 128 features per staged chunk: h = 130 (forward and
        // backward), 4h = 160 (backward).
        (Scan::Row(1), [1, 2, 3, 130], 540),
        (Scan::Diagonal, [1, 2, 3, 130], 550),
        (Scan::Row(3), [1, 3, 5, 40], 560),
        // v3's 128-unit tiles with a thread's units partly live (h = 100: lanes 0-3 own 4
        // units, the others 3) and a second, almost empty unit tile (h = 130 above).
        (Scan::Row(3), [2, 3, 18, 100], 570),
        (Scan::Diagonal, [2, 5, 4, 100], 580),
    ];
    for (scan, [n, height, width, hd], seed) in cases {
        let what = format!("{scan:?} n={n} {height}x{width} h={hd}");
        let w_shape = scan.weight_shape(hd);
        let (is_c, is) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
        let (w_c, w) = pair(gpu, &w_shape, seed + 1, 0.5);
        let (dh_c, dh) = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);
        let s_c = scan.forward(&cpu, &is_c, &w_c, Recurrence::Fused);
        let state = LstmState {
            h: to_gpu(gpu, &s_c.h),
            c: to_gpu(gpu, &s_c.c),
            gates: to_gpu(gpu, &s_c.gates),
        };
        let (_, dw_c) = scan.backward(&cpu, &s_c, &w_c, &dh_c, Recurrence::Fused);
        for rec in RECURRENCES {
            let run = |v: u32| {
                let _version = gpu.select(scan_version(scan, v, gpu.variants()));
                let s = scan.forward(gpu, &is, &w, rec);
                let (d_is, dw) = scan.backward(gpu, &state, &w, &dh, rec);
                [s.h, s.c, s.gates, d_is, dw].map(|t| t.to_vec(gpu).expect("download"))
            };
            let versions: Vec<_> = scan_versions(scan).into_iter().map(run).collect();
            for (v, other) in versions.iter().enumerate().skip(1) {
                for (name, (a, b)) in ["h", "c", "gates", "d_is", "d_w_ss"]
                    .iter()
                    .zip(versions[0].iter().zip(other))
                {
                    let tag = format!("{what} {rec:?}: {name} v1 vs v{}", v + 1);
                    // v4's persistent backward sums in another order (K split over two
                    // half-warps, tests/cuda/lstm_persistent_v4.rs): within the tolerance. Its
                    // persistent forward keeps v2's order (v1's bits). v5's persistent forward
                    // and backward sum 4 K-groups' partials (tests/cuda/lstm_persistent_v5_fwd.rs,
                    // lstm_persistent_v5_bwd.rs), v6's and v7's (and v8's, which are v7's) the
                    // warp groups' partials too (tests/cuda/lstm_persistent_v6.rs,
                    // lstm_persistent_v7.rs). v8's stepwise kernels keep v2's bits.
                    let persistent = rec == Recurrence::Persistent;
                    let reordered = persistent
                        && match v + 1 {
                            4 => *name == "d_is",
                            5..=8 => *name != "d_w_ss",
                            _ => false,
                        };
                    if exact && *name != "d_w_ss" && !reordered {
                        // The step kernels keep v1's summation order per element.
                        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{tag}: not bit-identical");
                    }
                    let err = rel_err(&tag, a, b);
                    assert!(err <= FP32_REL_TOL, "{tag}: relative error {err:.3e}");
                }
            }
            // And the forward's h and the weight gradient of every version against the CPU's.
            for (v, out) in versions.iter().enumerate() {
                for (name, got, want) in
                    [("h", &out[0], &s_c.h.data), ("d_w_ss", &out[4], &dw_c.data)]
                {
                    let tag = format!("{what} {rec:?}: {name} v{} vs CPU", v + 1);
                    let err = rel_err(&tag, got, want);
                    assert!(err <= FP32_REL_TOL, "{tag}: relative error {err:.3e}");
                }
            }
        }
    }
}

/// The state-to-state weight gradient of every version is the same bits under every thread
/// schedule (no atomics; v2 sums its split partials in a fixed order), on the emulator with
/// each of the scheduling seeds, for both scans.
#[test]
fn ss_bwd_weight_is_bit_identical_across_schedules() {
    let cases = [
        (Scan::Row(3), [2, 9, 11, 6], 600u64),
        (Scan::Diagonal, [2, 9, 11, 6], 610),
    ];
    for (scan, [n, height, width, hd], seed) in cases {
        let mut by_seed: Vec<Vec<Vec<u32>>> = Vec::new();
        for sched in crate::SCHEDULE_SEEDS.into_iter().chain([0xfeed, 77]) {
            let gpu: CudaBackend<Emulator> = crate::emulator(sched);
            let cpu = CpuBackend::new();
            let (is_c, _) = pair(&gpu, &[n, height, width, 4 * hd], seed, 1.5);
            let (w_c, w) = pair(&gpu, &scan.weight_shape(hd), seed + 1, 0.5);
            let (_, dh) = pair(&gpu, &[n, height, width, hd], seed + 2, 1.0);
            let s_c = scan.forward(&cpu, &is_c, &w_c, Recurrence::Fused);
            let state = LstmState {
                h: to_gpu(&gpu, &s_c.h),
                c: to_gpu(&gpu, &s_c.c),
                gates: to_gpu(&gpu, &s_c.gates),
            };
            let bits: Vec<Vec<u32>> = scan_versions(scan)
                .into_iter()
                .map(|v| {
                    let _version = gpu.select(scan_version(scan, v, gpu.variants()));
                    let (_, dw) = scan.backward(&gpu, &state, &w, &dh, Recurrence::Fused);
                    let dw = dw.to_vec(&gpu).expect("download");
                    dw.iter().map(|x| x.to_bits()).collect()
                })
                .collect();
            by_seed.push(bits);
        }
        for (k, bits) in by_seed.iter().enumerate().skip(1) {
            assert_eq!(
                bits, &by_seed[0],
                "{scan:?}: d_w_ss bits differ between schedules 0 and {k}"
            );
        }
    }
}

/// The version selection reaches the launches: under each version of each scan (the
/// Diagonal LSTM in both layouts), the forward and backward of every stepwise recurrence
/// launch that version's kernels (and v2 its pack and weight gradient GEMM), as the
/// emulator's counters record them, the persistent kernels included (v2 without a pack).
#[test]
fn each_version_launches_its_kernels() {
    let gpu = crate::counted_emulator(1);
    let materialised = Variants {
        diag_lstm_layout: DiagLstmLayout::Materialised,
        ..Variants::default()
    };
    for (scan, base) in [
        (Scan::Row(3), Variants::default()),
        (Scan::Diagonal, Variants::default()),
        (Scan::Diagonal, materialised),
    ] {
        let _layout = gpu.select(base);
        let hd = 3;
        let (_, is) = pair(&gpu, &[1, 3, 4, 4 * hd], 1, 1.0);
        let (_, w) = pair(&gpu, &scan.weight_shape(hd), 2, 0.5);
        let (_, dh) = pair(&gpu, &[1, 3, 4, hd], 3, 1.0);
        let op = match scan {
            Scan::Row(_) => "row_lstm",
            Scan::Diagonal if base == materialised => "diag_lstm_skewed",
            Scan::Diagonal => "diag_lstm",
        };
        // Both layouts reduce d_w_ss with the folded layout's kernels.
        let weight_op = match scan {
            Scan::Row(_) => "row_lstm",
            Scan::Diagonal => "diag_lstm",
        };
        for v in scan_versions(scan) {
            let _version = gpu.select(scan_version(scan, v, gpu.variants()));
            for rec in RECURRENCES {
                gpu.executor().take_counters();
                let s = scan.forward(&gpu, &is, &w, rec);
                scan.backward(&gpu, &s, &w, &dh, rec);
                let launched: Vec<String> = gpu
                    .executor()
                    .take_counters()
                    .into_iter()
                    .map(|c| c.kernel)
                    .collect();
                let has = |k: &str| launched.iter().any(|l| l == k);
                let tag = format!("{scan:?} v{v} {rec:?}: {launched:?}");
                let passes: &[&str] = match rec {
                    Recurrence::Fused => &["step_fwd", "step_bwd"],
                    Recurrence::Unfused => &["ss_fwd", "ss_bwd_data"],
                    Recurrence::Persistent => &[],
                };
                // v3 is v2 but for the backward step kernels (step_bwd, ss_bwd_data): every
                // other kernel of a v3 scan is v2's; v4 and v5 are v3 but for the persistent
                // kernels, v6 and v7 are v2 but for them; v8 has step kernels of its own both
                // ways.
                let version_of = |pass: &str| match v {
                    3..=7 if !pass.contains("bwd") => 2,
                    4 | 5 => 3,
                    6 | 7 => 2,
                    _ => v,
                };
                for pass in passes {
                    let want = version_of(pass);
                    for other in scan_versions(scan) {
                        let name = format!("{op}_{pass}_v{other}");
                        assert_eq!(has(&name), other == want, "{tag}: {name}");
                    }
                }
                if rec == Recurrence::Persistent {
                    // The persistent forward has v1, v2 and v4 to v7 (v3 runs v2's); the
                    // persistent backward has v1 to v7 (cuda/lstm_persistent.rs); v8 runs v7's.
                    for pass in ["fwd", "bwd"] {
                        let want = match (pass, v) {
                            (_, 8) => 7,
                            ("bwd", _) => v,
                            (_, 4..=7) => v,
                            _ => v.min(2),
                        };
                        for other in scan_versions(scan) {
                            let name = format!("{op}_persistent_{pass}_v{other}");
                            assert_eq!(has(&name), other == want, "{tag}: {name}");
                        }
                    }
                }
                assert_eq!(
                    has("lstm_pack_ss_v2"),
                    v >= 2 && rec != Recurrence::Persistent,
                    "{tag}"
                );
                // At fp32 the weight GEMM is LstmWeightFp32's default, v3.
                assert_eq!(has("lstm_ss_bwd_weight_v3"), v >= 2, "{tag}");
                assert!(!has("lstm_ss_bwd_weight_v2"), "{tag}");
                assert_eq!(
                    has(&format!("{weight_op}_ss_bwd_weight_v1")),
                    v == 1,
                    "{tag}"
                );
            }
        }
    }
}
