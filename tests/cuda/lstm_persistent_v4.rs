//! The persistent v4 recurrence, selected by `RowLstm::V4` / `DiagLstm::V4`.
//!
//! The backward (`<scan>_persistent_bwd_v4`, kernels/lstm_persistent_v4.cuh): v2's clusters
//! over an 8 x 8 register tile with the K range split over the two halves of a warp (summed by
//! shuffles). Checked on the emulator (NaN-poisoned outputs, both scheduling seeds) against the
//! CPU twin and against the persistent v3 backward (another summation order: within fp32
//! bounds, not bit for bit), for determinism (the same bits on every run and schedule), the
//! fallback where its shared memory does not fit, and by its counters (FLOPs per shared word,
//! conflicts).
//!
//! The forward (`<scan>_persistent_fwd_v4`, kernels/lstm_persistent_fwd_v4.cuh): v2's clusters
//! over an 8 positions x 2 units x 4 gates register tile, v2's summation order. Checked the
//! same way against the CPU twin (h, c, gates) and bit for bit against the persistent v2
//! forward, at the tile edges, where it stops fitting, and by its counters.
//!
//! The runs: lstm_persistent_bwd.rs.

use pixelrnn::backend::cuda::{AccessOp, CudaBackend, DiagLstmLayout, Emulator, MemSpace};

use crate::lstm_persistent_bwd::{
    check_cases_under_every_seed, counters, measure, persistent_kernel_at, prepare, report,
    row_counters, shared_loads, Case,
};
use crate::lstm_scan::Scan;
use crate::{counted_emulator, rel_err, FP32_REL_TOL};

const CASES: [Case; 6] = [
    // One unit tile (h = 8), steps far shorter than the 64-position tile.
    (Scan::Row(3), [1, 3, 5, 8], 800),
    // k = 5, n = 2, h = 12 (not a multiple of 8: the unit groups' last units dead).
    (Scan::Row(5), [2, 2, 6, 12], 810),
    // The tile edges: 2 unit tiles (h = 36: the second has 4 live units) x 2 position groups
    // of 64-position tiles (W = 70: the second warp of the first tile full, the second tile
    // 6 positions, its second warp idle); 4h = 144: chunks of 64, 64 and 16 gate rows.
    (Scan::Row(3), [1, 2, 70, 36], 820),
    (Scan::Diagonal, [2, 4, 3, 12], 830),
    (Scan::Diagonal, [1, 5, 4, 36], 840),
    (Scan::Diagonal, [1, 3, 2, 8], 850),
];

/// The case under v3 and v4 (v4 twice), 64 threads per block each, each against the CPU twin;
/// v4 against v3 within the same bound, v4's two runs bit for bit. Returns v4's outputs (for
/// the cross-schedule comparison).
fn check_case(gpu: &CudaBackend<Emulator>, layout: DiagLstmLayout, case: Case) -> [Vec<f32>; 2] {
    let p = prepare(gpu, layout, case);
    let v3 = p.run(gpu, 3, 64);
    let v4 = p.run(gpu, 4, 64);
    let again = p.run(gpu, 4, 64);
    for (i, name) in ["d_is", "d_w_ss"].iter().enumerate() {
        let what = format!("{}: {name} v4 vs v3", p.what);
        let err = rel_err(&what, &v4[i], &v3[i]);
        assert!(err <= FP32_REL_TOL, "{what}: {err:.3e}");
        let same = v4[i]
            .iter()
            .zip(&again[i])
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{}: {name}: two v4 runs differ", p.what);
    }
    v4
}

#[test]
fn persistent_bwd_v4_matches_the_cpu_and_v3_and_is_deterministic() {
    check_cases_under_every_seed("v4", &CASES, check_case);
}

/// Where v4's staging tile does not fit beside the weight slice (Row LSTM, k = 3, h = 145:
/// 32 x 1741 floats + 16 KiB > 227 KiB; v3's larger tile does not fit either) v4 runs v2.
#[test]
fn persistent_bwd_v4_falls_back_where_its_shared_memory_does_not_fit() {
    let gpu = counted_emulator(1);
    assert_eq!(
        persistent_kernel_at(&gpu, Scan::Row(3), 145, true, 4),
        "row_lstm_persistent_bwd_v2"
    );
}

/// The counters of the Row LSTM (k = 3) persistent backward at h = 64, W = 32 (v3's
/// measurement shape): v4 loads about half of v3's shared words, at >= 8 FLOPs per word per
/// product (the formula counts both rows' products, but at H = 2 only the top row has a
/// successor: the per-product ratio is half the formula's), conflict-free loads.
#[test]
fn persistent_bwd_v4_loads_8_flops_per_shared_word() {
    let gpu = counted_emulator(1);
    let launches = row_counters(&gpu, &[3, 4]);
    let [(f3, w3, c3, s3, g3), (f4, w4, c4, s4, g4)] = [0, 1].map(|i| {
        let launch = &launches[i];
        let (words, excess) = shared_loads(launch);
        let stores = launch
            .sites_of(MemSpace::Shared, AccessOp::Store)
            .iter()
            .map(|s| s.excess_wavefronts())
            .fold(0.0, f64::max);
        let global = launch
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Global && s.requests > 0)
            .map(|s| s.efficiency())
            .fold(1.0, f64::min);
        (launch.flops, words, excess, stores, global)
    });
    assert_eq!(f3, f4, "the same FLOPs by the formula");
    let per_product = |w: u64| f4 as f64 / 2.0 / w as f64;
    eprintln!(
        "row_lstm persistent bwd, n=1 2x32 h=64 k=3: FLOPs {f3}; v3 {w3} shared words \
         ({:.2} FLOPs/word per product, load excess {c3:.3}, store excess {s3:.3}, worst global \
         efficiency {g3:.3}); v4 {w4} ({:.2}, {c4:.3}, {s4:.3}, {g4:.3})",
        per_product(w3),
        per_product(w4)
    );
    assert!(
        per_product(w4) >= 8.0,
        "v4: {:.3} FLOPs per shared word",
        per_product(w4)
    );
    // Measured 1.98x (v3 skips a tap's loads at a row's edge, v4 multiplies the staged 0).
    assert!(
        w3 as f64 >= 1.95 * w4 as f64,
        "shared words loaded: v4 {w4}, v3 {w3}"
    );
    assert!(c4 <= 1.0, "v4 shared load excess {c4}");
}

const FWD_CASES: [Case; 9] = [
    // k = 1, 3, 5; steps shorter than the 32-position tile (the second warp idle, and for
    // W <= 8 the first warp's second half-warp); h = 3 and 8: part of the first unit half live.
    (Scan::Row(1), [1, 3, 5, 3], 900),
    (Scan::Row(3), [1, 3, 5, 8], 910),
    // h = 20: units 16..19 live in the second unit half (j = 1) of their unit groups.
    (Scan::Row(5), [2, 2, 6, 20], 920),
    // The tile edges: 4 unit tiles (h = 100: the last has 4 live units), so 2 position groups
    // of 32-position tiles over W = 70 (3 tiles: group 0 runs tiles 0 and 2, the last has 6
    // positions); h = 100 input units per tap: chunks of 64 and 36.
    (Scan::Row(3), [1, 2, 70, 100], 930),
    // The paper's h = 128: 4 unit tiles of 128 KiB + 64 KiB slices, 2 full chunks per tap.
    (Scan::Row(3), [1, 2, 5, 128], 940),
    (Scan::Diagonal, [2, 4, 3, 12], 950),
    (Scan::Diagonal, [1, 5, 4, 36], 960),
    // Anti-diagonals of up to 18 positions: the first warp busy, the second's first
    // half-warp busy from 17 positions on.
    (Scan::Diagonal, [1, 20, 18, 8], 970),
    (Scan::Diagonal, [1, 3, 2, 8], 980),
];

/// The forward of `case` under v2 (128 threads per block) and v4 (64, twice), each against the
/// CPU twin; v4 the same bits as v2 (the same summation order per element: is, then taps and
/// input units ascending; a tap outside the map adds w x 0 = 0 where v2 skips it) and as its
/// second run. Returns v4's outputs (for the cross-schedule comparison).
fn check_fwd_case(
    gpu: &CudaBackend<Emulator>,
    layout: DiagLstmLayout,
    case: Case,
) -> [Vec<f32>; 3] {
    let p = prepare(gpu, layout, case);
    let v2 = p.run_fwd(gpu, 2, 128);
    let v4 = p.run_fwd(gpu, 4, 64);
    let again = p.run_fwd(gpu, 4, 64);
    for (i, name) in ["h", "c", "gates"].iter().enumerate() {
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same(&v4[i], &v2[i]),
            "{}: {name}: v4 is not v2's bits",
            p.what
        );
        assert!(
            same(&v4[i], &again[i]),
            "{}: {name}: two v4 runs differ",
            p.what
        );
    }
    v4
}

#[test]
fn persistent_fwd_v4_matches_the_cpu_and_v2_and_is_deterministic() {
    check_cases_under_every_seed("v4 forward", &FWD_CASES, check_fwd_case);
}

/// v4's forward reserves v2's shared memory (32 x (4h taps + 1) floats) beside a static tile of
/// v2's 8 KiB, so it fits exactly where v2 does: the largest h is 145 for the Row LSTM with
/// k = 3 (32 x 1741 floats + 8 KiB = 231 040 B of 232 448) and 218 for the Diagonal LSTM; one
/// unit more and neither fits, so V4 runs v1 (as V2 does).
#[test]
fn persistent_fwd_v4_runs_up_to_its_largest_h_then_falls_back_to_v1() {
    let gpu = counted_emulator(1);
    for (scan, hd, want) in [
        (Scan::Row(3), 145, "row_lstm_persistent_fwd_v4"),
        (Scan::Row(3), 146, "row_lstm_persistent_fwd_v1"),
        (Scan::Diagonal, 218, "diag_lstm_persistent_fwd_v4"),
        (Scan::Diagonal, 219, "diag_lstm_persistent_fwd_v1"),
    ] {
        let got = persistent_kernel_at(&gpu, scan, hd, false, 4);
        assert_eq!(got, want, "{scan:?} h = {hd}");
    }
}

/// The counters of the persistent forward, v2 against v4, at the v4 backward's measurement
/// shape (Row LSTM k = 3, n = 1, 2 x 32, h = 64) and the Diagonal LSTM on 8 x 8 (h = 64). The
/// Row LSTM's first row skips the product in both versions (no row above), so at H = 2 the
/// product runs for one row of two: FLOPs per shared word per product are the formula's FLOPs
/// halved. v4: >= 8 (analysis: 8 + 8 words per 64 FMAs), conflict-free shared loads, global
/// efficiency >= 80 % byte-weighted.
#[test]
fn persistent_fwd_v4_loads_8_flops_per_shared_word() {
    let gpu = counted_emulator(1);
    let row = counters(&gpu, Scan::Row(3), [1, 2, 32, 64], false, &[2, 4]);
    let diag = counters(&gpu, Scan::Diagonal, [1, 8, 8, 64], false, &[2, 4]);
    report("fwd", "row_lstm k=3 n=1 2x32 h=64", &[2, 4], &row, 2.0);
    report("fwd", "diag_lstm n=1 8x8 h=64", &[2, 4], &diag, 1.0);
    let (f2, w2, _, _, _, _) = measure(&row[0]);
    let (f4, w4, l4, _, be4, _) = measure(&row[1]);
    assert_eq!(f2, f4, "the same FLOPs by the formula");
    let per_product = f4 as f64 / 2.0 / w4 as f64;
    assert!(
        per_product >= 8.0,
        "v4: {per_product:.3} FLOPs per shared word per product"
    );
    assert!(
        w2 as f64 >= 1.9 * w4 as f64,
        "shared words loaded: v4 {w4}, v2 {w2}"
    );
    assert!(l4 <= 1.0, "v4 shared load excess {l4}");
    assert!(be4 >= 0.8, "v4 global efficiency {be4:.3}");
    let (_, _, dl4, _, _, _) = measure(&diag[1]);
    assert!(dl4 <= 1.0, "v4 Diagonal shared load excess {dl4}");
}
