//! The persistent v5 backward (`<scan>_persistent_bwd_v5`, kernels/lstm_persistent_bwd_v5.cuh),
//! selected by `RowLstm::V5` / `DiagLstm::V5`: v3's clusters and 32 x 32 block tile on 64
//! threads over v4's 8 x 8 thread tile, the K range split over 4 K-groups of each warp and
//! summed by two shuffle levels. Checked on the emulator (NaN-poisoned outputs, both
//! scheduling seeds) against the CPU twin (d_is, and d_w_ss through the usual weight gradient,
//! within `FP32_REL_TOL`: the same products, another fp32 summation order, the bound of every
//! reduction-order difference in these tests, tests/cuda/main.rs) and against the persistent
//! v3 and v4 backward within the same bound (not bit for bit: v5 sums 4 partials), for
//! determinism (the same bits on every run and schedule), at the tile and cluster edges, where
//! it stops fitting, and by its counters (FLOPs per shared word, conflicts, global efficiency,
//! v3's launch).
//!
//! The runs: lstm_persistent_bwd.rs.

use pixelrnn::backend::cuda::{AccessOp, CudaBackend, DiagLstmLayout, Emulator, MemSpace};

use crate::lstm_persistent_bwd::{
    check_cases_under_every_seed, counters, measure, persistent_kernel_at, prepare, report,
    row_counters, Case,
};
use crate::lstm_scan::Scan;
use crate::{counted_emulator, rel_err, FP32_REL_TOL};

const CASES: [Case; 8] = [
    // W = 5: the second warp (positions 16..31) idle; h = 3: 3 live units of 32 (unit groups
    // 0..2 of the first 8 units, the K-group pairs 2, 3 finish none).
    (Scan::Row(1), [1, 3, 5, 3], 1600),
    // W = 20: the second warp busy with 4 positions (K-groups 2, 3 of position groups pg = 1
    // finish positions past the step).
    (Scan::Row(3), [1, 3, 20, 8], 1610),
    // k = 5, n = 2, h = 10: 40 gate rows (K-groups take 10 each), units 8, 9 of the second
    // unit column (m = 1).
    (Scan::Row(5), [2, 2, 6, 10], 1620),
    // The tile and cluster edges: 2 unit tiles (h = 36: the second has 4 live units) x 3
    // position groups of 32-position tiles (W = 70: the third tile has 6 positions, its second
    // warp idle); 4h = 144: chunks of 128 and 16 gate rows.
    (Scan::Row(3), [1, 2, 70, 36], 1630),
    (Scan::Diagonal, [2, 4, 3, 12], 1640),
    (Scan::Diagonal, [1, 5, 4, 36], 1650),
    // Anti-diagonals of up to 34 positions: two 32-position tiles in two position groups.
    (Scan::Diagonal, [1, 34, 34, 8], 1660),
    (Scan::Diagonal, [1, 3, 2, 8], 1670),
];

/// The backward of `case` under v3, v4 and v5 (64 threads per block each, v5 twice), each
/// against the CPU twin; v5 against v3 and v4 within the same bound and bit for bit against its
/// second run. Returns v5's outputs (for the cross-schedule comparison).
fn check_case(gpu: &CudaBackend<Emulator>, layout: DiagLstmLayout, case: Case) -> [Vec<f32>; 2] {
    let p = prepare(gpu, layout, case);
    let v3 = p.run(gpu, 3, 64);
    let v4 = p.run(gpu, 4, 64);
    let v5 = p.run(gpu, 5, 64);
    let again = p.run(gpu, 5, 64);
    for (i, name) in ["d_is", "d_w_ss"].iter().enumerate() {
        for (other, theirs) in [(3, &v3), (4, &v4)] {
            let what = format!("{}: {name} v5 vs v{other}", p.what);
            let err = rel_err(&what, &v5[i], &theirs[i]);
            assert!(err <= FP32_REL_TOL, "{what}: {err:.3e}");
        }
        let same = v5[i]
            .iter()
            .zip(&again[i])
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{}: {name}: two v5 runs differ", p.what);
    }
    v5
}

#[test]
fn persistent_bwd_v5_matches_the_cpu_v3_and_v4_and_is_deterministic() {
    check_cases_under_every_seed("v5 backward", &CASES, check_case);
}

/// v5's backward reserves v3's dynamic shared memory (32 x (4h taps + 1) floats) beside a
/// 16 KiB static tile (v3's is 16.1 KiB), so it fits exactly where v3 does: the largest h is
/// 140 for the Row LSTM with k = 3 (32 x 1681 floats + 16 KiB = 231 552 B of 232 448) and 210
/// for the Diagonal LSTM (32 x 1681 floats + 16 KiB); one unit more and neither v5, v4 (the
/// same static tile) nor v3 fits, so V5 runs v2.
#[test]
fn persistent_bwd_v5_runs_up_to_its_largest_h_then_falls_back_to_v2() {
    let gpu = counted_emulator(1);
    for (scan, hd, want) in [
        (Scan::Row(3), 140, "row_lstm_persistent_bwd_v5"),
        (Scan::Row(3), 141, "row_lstm_persistent_bwd_v2"),
        (Scan::Diagonal, 210, "diag_lstm_persistent_bwd_v5"),
        (Scan::Diagonal, 211, "diag_lstm_persistent_bwd_v2"),
    ] {
        let got = persistent_kernel_at(&gpu, scan, hd, true, 5);
        assert_eq!(got, want, "{scan:?} h = {hd}");
    }
}

/// The counters of the persistent backward, v3 (the default) against v4 and v5, at the v4
/// backward's measurement shape (Row LSTM k = 3, n = 1, 2 x 32, h = 64) and the Diagonal LSTM
/// on 8 x 8 (h = 64, printed). At H = 2 only the top row has a successor, so the product runs
/// for one row of two: FLOPs per shared word per product are the formula's FLOPs halved. v5:
/// at least 8 (analysis: 8 + 8 words per 64 FMAs per lane), shared load excess 1.000 (the
/// target; issue 17 allows 2), the d_is stage's stores conflict-free, global efficiency at
/// least 80 % byte-weighted, and exactly v3's launch (grid and block; the cluster and dynamic
/// shared memory are v3's by `persistent_bwd_v5_cfg`).
#[test]
fn persistent_bwd_v5_loads_8_flops_per_shared_word_on_v3s_launch() {
    let gpu = counted_emulator(1);
    let versions = [3, 4, 5];
    let row = row_counters(&gpu, &versions);
    let diag = counters(&gpu, Scan::Diagonal, [1, 8, 8, 64], true, &versions);
    report("bwd", "row_lstm k=3 n=1 2x32 h=64", &versions, &row, 2.0);
    report("bwd", "diag_lstm n=1 8x8 h=64", &versions, &diag, 1.0);
    for launches in [&row, &diag] {
        let (v3, v5) = (&launches[0], &launches[2]);
        assert!(v5.kernel.ends_with("_persistent_bwd_v5"), "{}", v5.kernel);
        assert_eq!(
            (v5.grid, v5.block),
            (v3.grid, v3.block),
            "{}: v3's launch",
            v5.kernel
        );
    }
    let (f3, w3, _, _, _, _) = measure(&row[0]);
    let (f5, w5, l5, _, be5, _) = measure(&row[2]);
    assert!(l5 <= 1.0, "v5 shared load excess {l5}");
    assert!(be5 >= 0.8, "v5 global efficiency {be5:.3}");
    // The stores: the per-step d_is stage conflict-free; the one-time weight stage is v4's
    // (lstm_persistent_v4_stage_bwd: taps-way at most, outside the step loop). On the 8 x 8
    // Diagonal map (taps = 2) the two have different request counts: the weight stage's is
    // grid x 4h x taps (each warp of the 64 threads writes 4h x 32 x taps / 64 floats).
    for (what, launch, taps) in [("row", &row[2], 3), ("diag", &diag[2], 2)] {
        let weight_requests = u64::from(launch.grid[0]) * 4 * 64 * taps;
        for s in launch.sites_of(MemSpace::Shared, AccessOp::Store) {
            eprintln!(
                "v5 {what} shared store site: {} requests, excess {:.3}",
                s.requests,
                s.excess_wavefronts()
            );
            assert!(s.excess_wavefronts() <= taps as f64, "{what}: store excess");
        }
        if what == "diag" {
            let staging: Vec<_> = launch
                .sites_of(MemSpace::Shared, AccessOp::Store)
                .into_iter()
                .filter(|s| s.requests != weight_requests)
                .collect();
            assert!(!staging.is_empty(), "the d_is stage's store site");
            for s in staging {
                assert!(
                    s.excess_wavefronts() <= 1.0,
                    "v5 d_is stage store excess {:.3}",
                    s.excess_wavefronts()
                );
            }
        }
    }
    assert_eq!(f3, f5, "the same FLOPs by the formula");
    let per_product = f5 as f64 / 2.0 / w5 as f64;
    assert!(
        per_product >= 8.0,
        "v5: {per_product:.3} FLOPs per shared word per product"
    );
    assert!(
        w3 as f64 >= 1.9 * w5 as f64,
        "shared words loaded: v5 {w5}, v3 {w3}"
    );
}

/// The cifar-like shape (Row LSTM k = 3, n = 1, 2 x 32, h = 128: 4 unit tiles x 2 position
/// groups for v3 and v5, x 1 for v4) for docs/kernels.md: printed, not asserted beyond the
/// launch shape. Ignored by default (slow on the emulator); run with
/// `-- --ignored persistent_bwd_v5_cifar`.
#[test]
#[ignore = "measurement for docs/kernels.md (slow on the emulator)"]
fn persistent_bwd_v5_cifar_counters() {
    let gpu = counted_emulator(1);
    let versions = [3, 4, 5];
    let row = counters(&gpu, Scan::Row(3), [1, 2, 32, 128], true, &versions);
    report("bwd", "row_lstm k=3 n=1 2x32 h=128", &versions, &row, 2.0);
    assert_eq!(row[2].block, row[0].block, "v3's block");
    assert_eq!(row[2].grid, row[0].grid, "v3's grid");
}
