//! The persistent v7 recurrence (`<scan>_persistent_{fwd,bwd}_v7`, kernels/*_persistent_v7.cu
//! over the v7 paths of kernels/lstm_persistent_fwd_v5.cuh and lstm_persistent_bwd_v5.cuh),
//! selected by `RowLstm::V7` / `DiagLstm::V7`: v6's launches, tiles and exchanges with fewer
//! waits. Every thread's staged elements are loaded before any is stored; the forward stages
//! every tap's chunk between one pair of barriers and exchanges through a buffer of its own;
//! the backward stages chunks of 512 gate rows.
//!
//! Checked on the emulator (NaN-poisoned outputs, both scheduling seeds) against the CPU twin
//! (within `FP32_REL_TOL`) and against v6 bit for bit where they sum in the same order: the
//! backward everywhere (a K-slot's features are those of its class mod 32 ascending under both
//! chunk sizes) and the forward at h <= 128 (one chunk: tap by tap in both); past h = 128 the
//! forward sums chunk by chunk, then tap by tap, within the bound of v6. Also: determinism,
//! where v7 stops fitting, and the counters the latency model charges (block barriers exactly
//! as analysed, fewer load rounds than v6, v6's words and conflicts).
//!
//! The runs: lstm_persistent_bwd.rs.

use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, Emulator, LaunchCounters};

use crate::lstm_persistent_bwd::{
    check_cases_under_every_seed, counters, measure, persistent_kernel_at, prepare, report, Case,
};
use crate::lstm_scan::Scan;
use crate::{counted_emulator, rel_err, FP32_REL_TOL};

/// Threads per block of both v7 kernels (v6's).
const V7_THREADS: u32 = 256;

const FWD_CASES: [Case; 9] = [
    // k = 1; W = 5: the second octet's warps idle in both groups; h = 3: 3 live units of 32.
    (Scan::Row(1), [1, 3, 5, 3], 2700),
    // k = 5, n = 2, h = 10: five taps' tiles staged together, 10 features over 8 K-slots.
    (Scan::Row(5), [2, 2, 6, 10], 2720),
    // The tile edges: 2 unit tiles x 4 position groups over W = 70 (group 0 runs tiles 0 and
    // 4 in one step: the staging tiles and the exchange buffer reused within a step, with no
    // barrier before the second tile's stage).
    (Scan::Row(3), [1, 2, 70, 36], 2730),
    // h = 130: two chunks (128 and 2 features), the second's barrier before staging taken; one
    // tap, so v6's order still (k = 3 does not fit v7 past h = 129).
    (Scan::Row(1), [1, 3, 3, 130], 2740),
    // The same with two taps: another summation order than v6's (chunk by chunk, then tap by
    // tap), within the bound.
    (Scan::Diagonal, [1, 3, 3, 130], 2745),
    (Scan::Diagonal, [2, 4, 3, 12], 2750),
    (Scan::Diagonal, [1, 5, 4, 36], 2760),
    // Anti-diagonals of up to 18 positions: two 16-position tiles, the second 2 positions.
    (Scan::Diagonal, [1, 20, 18, 8], 2770),
    (Scan::Diagonal, [1, 3, 2, 8], 2780),
];

const BWD_CASES: [Case; 8] = [
    // W = 5: 5 of the tile's 16 positions; h = 3: 12 gate rows, one chunk of 12.
    (Scan::Row(1), [1, 3, 5, 3], 2800),
    // W = 20: two 16-position tiles in two position groups, the second with 4 positions.
    (Scan::Row(3), [1, 3, 20, 8], 2810),
    // The tile and cluster edges: group 0 runs tiles 0 and 4 of W = 70 in one step (the
    // second tile's first stage behind its barrier, the first's not).
    (Scan::Row(3), [1, 2, 70, 36], 2830),
    // h = 140: 4h = 560, chunks of 512 and 48 gate rows; 5 unit tiles. Past v7's fit at k = 3
    // (129), so k = 1 here.
    (Scan::Row(1), [1, 3, 4, 140], 2840),
    (Scan::Diagonal, [2, 4, 3, 12], 2850),
    (Scan::Diagonal, [1, 5, 4, 36], 2860),
    // Anti-diagonals of up to 34 positions: three 16-position tiles over two position groups.
    (Scan::Diagonal, [1, 34, 34, 8], 2870),
    (Scan::Diagonal, [1, 3, 2, 8], 2880),
];

/// Asserts that v7's `got` is bit for bit `again` (its second run) and v6's `v6` where `same`,
/// else within the bound of v6's.
fn agree(what: &str, name: &str, got: &[f32], again: &[f32], v6: &[f32], same: bool) {
    let bits = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
    assert!(bits(got, again), "{what}: {name}: two v7 runs differ");
    if same {
        assert!(bits(got, v6), "{what}: {name}: v7 is not v6's bits");
    } else {
        let err = rel_err(&format!("{what}: {name} v7 vs v6"), got, v6);
        assert!(err <= FP32_REL_TOL, "{what}: {name} v7 vs v6: {err:.3e}");
    }
}

/// The forward of `case` under v6 and v7 (twice), each against the CPU twin; v7 against v6
/// (bit for bit at h <= 128 or with one tap: the same order) and its second run. Returns v7's
/// outputs.
fn check_fwd(gpu: &CudaBackend<Emulator>, layout: DiagLstmLayout, case: Case) -> [Vec<f32>; 3] {
    let p = prepare(gpu, layout, case);
    let v6 = p.run_fwd(gpu, 6, V7_THREADS);
    let v7 = p.run_fwd(gpu, 7, V7_THREADS);
    let again = p.run_fwd(gpu, 7, V7_THREADS);
    let v6_order = case.1[3] <= 128 || matches!(case.0, Scan::Row(1));
    for (i, name) in ["h", "c", "gates"].iter().enumerate() {
        agree(&p.what, name, &v7[i], &again[i], &v6[i], v6_order);
    }
    v7
}

/// The backward of `case` under v6 and v7 (twice), each against the CPU twin; v7 bit for bit
/// v6's and its second run's.
fn check_bwd(gpu: &CudaBackend<Emulator>, layout: DiagLstmLayout, case: Case) -> [Vec<f32>; 2] {
    let p = prepare(gpu, layout, case);
    let v6 = p.run(gpu, 6, V7_THREADS);
    let v7 = p.run(gpu, 7, V7_THREADS);
    let again = p.run(gpu, 7, V7_THREADS);
    for (i, name) in ["d_is", "d_w_ss"].iter().enumerate() {
        agree(&p.what, name, &v7[i], &again[i], &v6[i], true);
    }
    v7
}

#[test]
fn persistent_fwd_v7_matches_the_cpu_and_v6_and_is_deterministic() {
    check_cases_under_every_seed("v7 forward", &FWD_CASES, check_fwd);
}

#[test]
fn persistent_bwd_v7_matches_the_cpu_and_v6_bit_for_bit_and_is_deterministic() {
    check_cases_under_every_seed("v7 backward", &BWD_CASES, check_bwd);
}

/// Where v7 fits (cuda/lstm_persistent.rs, `TILE_FWD_V7` / `TILE_BWD_V7`): the forward's
/// dynamic shared memory is the slice's 32 x (4h taps + 1) floats plus 8 KiB per tap and the
/// 8 KiB exchange buffer, the backward's the slice plus its 32 KiB static tile; against the
/// 227 KiB of a block, the largest h is 129 for the Row LSTM at k = 3 in both passes
/// (1536 h + 128 + 32 768 <= 232 448), 202 for the Diagonal forward (1024 h + 24 704) and 194
/// for its backward (1024 h + 32 896). One unit more and v6's kernel runs.
#[test]
fn persistent_v7_runs_up_to_its_largest_h_then_falls_back_to_v6() {
    let gpu = counted_emulator(1);
    for (scan, hd, backward, want) in [
        (Scan::Row(3), 129, false, "row_lstm_persistent_fwd_v7"),
        (Scan::Row(3), 130, false, "row_lstm_persistent_fwd_v6"),
        (Scan::Diagonal, 202, false, "diag_lstm_persistent_fwd_v7"),
        (Scan::Diagonal, 203, false, "diag_lstm_persistent_fwd_v6"),
        (Scan::Row(3), 129, true, "row_lstm_persistent_bwd_v7"),
        (Scan::Row(3), 130, true, "row_lstm_persistent_bwd_v6"),
        (Scan::Diagonal, 194, true, "diag_lstm_persistent_bwd_v7"),
        (Scan::Diagonal, 195, true, "diag_lstm_persistent_bwd_v6"),
    ] {
        let got = persistent_kernel_at(&gpu, scan, hd, backward, 7);
        assert_eq!(got, want, "{scan:?} h = {hd}");
    }
}

/// Block barriers per warp of one launch (every warp of these kernels takes the same).
fn barriers_per_warp(c: &LaunchCounters) -> f64 {
    let warps = c.grid[0] as f64 * f64::from(c.block[0] / 32);
    c.sync.barriers as f64 / warps
}

/// Load rounds of one launch, summed over its sites (and warps).
fn rounds(c: &LaunchCounters) -> u64 {
    c.sites.iter().map(|s| s.rounds).sum()
}

/// The counters of both passes under v6 and v7 at the v6 section's measurement shape (Row LSTM
/// k = 3, n = 1, 2 x 32, h = 64: 2 unit tiles x 2 position groups, one tile per block and row;
/// the product runs in one row of the two) and on the Diagonal's 8 x 8, h = 64. Block barriers
/// per warp, by analysis: the weight stage's 1, then per step with a product v6's 2 per tap
/// chunk plus the exchange's 2 (forward 3 x 2 + 2, backward (4h = 256: one chunk per tap)
/// 3 x 2 + 2), v7's forward 1 for the taps' stage and 1 for the exchange, v7's backward its
/// taps' 2 less the first tap's first (the step's cluster barrier frees the tile) plus the
/// exchange's 2. So the Row LSTM: forward 9 / 3, backward 9 / 8. The cluster barriers are
/// v6's (one per step), the shared words and conflicts v6's, the global efficiency >= 80 %, and
/// the load rounds fewer than v6's (printed).
#[test]
fn persistent_v7_takes_the_analysed_barriers_and_fewer_load_rounds_than_v6() {
    let gpu = counted_emulator(1);
    let versions = [6, 7];
    for (backward, pass, want6, want7) in [(false, "fwd", 9.0, 3.0), (true, "bwd", 9.0, 8.0)] {
        let row = counters(&gpu, Scan::Row(3), [1, 2, 32, 64], backward, &versions);
        let diag = counters(&gpu, Scan::Diagonal, [1, 8, 8, 64], backward, &versions);
        report(pass, "row_lstm k=3 n=1 2x32 h=64", &versions, &row, 2.0);
        report(pass, "diag_lstm n=1 8x8 h=64", &versions, &diag, 1.0);
        assert_eq!(barriers_per_warp(&row[0]), want6, "{pass}: v6's barriers");
        assert_eq!(barriers_per_warp(&row[1]), want7, "{pass}: v7's barriers");
        for (what, launches) in [("row", &row), ("diag", &diag)] {
            let (v6, v7) = (&launches[0], &launches[1]);
            assert!(
                v7.kernel.ends_with(&format!("_persistent_{pass}_v7")),
                "{}",
                v7.kernel
            );
            assert_eq!(v7.grid, v6.grid, "{}: v6's grid", v7.kernel);
            assert_eq!(v7.block, [V7_THREADS, 1, 1], "{}", v7.kernel);
            assert_eq!(
                v7.sync.cluster_barriers, v6.sync.cluster_barriers,
                "{}: v6's cluster barriers",
                v7.kernel
            );
            let (f6, w6, l6, st6, _, _) = measure(v6);
            let (f7, w7, l7, st7, be7, _) = measure(v7);
            assert_eq!(
                (f7, w7),
                (f6, w6),
                "{}: v6's FLOPs and shared words",
                v7.kernel
            );
            assert_eq!(l7, l6, "{}: v6's worst shared load excess", v7.kernel);
            assert!(
                st7 <= st6,
                "{}: shared store excess {st7} (v6 {st6})",
                v7.kernel
            );
            assert!(be7 >= 0.8, "{}: global efficiency {be7:.3}", v7.kernel);
            let (r6, r7) = (rounds(v6), rounds(v7));
            eprintln!(
                "persistent {pass} {what}: load rounds v6 {r6}, v7 {r7}; barriers per warp v6 \
                 {:.2}, v7 {:.2}",
                barriers_per_warp(v6),
                barriers_per_warp(v7)
            );
            assert!(r7 < r6, "{pass} {what}: load rounds v7 {r7}, v6 {r6}");
            assert!(
                barriers_per_warp(v7) < barriers_per_warp(v6),
                "{pass} {what}: barriers"
            );
        }
    }
}
