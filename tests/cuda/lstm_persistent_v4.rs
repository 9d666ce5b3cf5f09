//! The persistent v4 backward (`<scan>_persistent_bwd_v4`, kernels/lstm_persistent_v4.cuh):
//! v2's clusters over an 8 x 8 register tile with the K range split over the two halves of a
//! warp (summed by shuffles), selected by `RowLstm::V4` / `DiagLstm::V4`. Checked on the
//! emulator (NaN-poisoned outputs, both scheduling seeds) against the CPU twin and against the
//! persistent v3 backward (another summation order: within fp32 bounds, not bit for bit), for
//! determinism (the same bits on every run and schedule), the fallback where its shared
//! memory does not fit, and by its counters (FLOPs per shared word, conflicts). The runs:
//! lstm_persistent_bwd.rs.

use pixelrnn::backend::cuda::{AccessOp, CudaBackend, DiagLstmLayout, Emulator, MemSpace};
use pixelrnn::backend::Recurrence;

use crate::lstm_persistent_bwd::{
    persistent_launch, prepare, row_counters, select, shared_loads, Case,
};
use crate::lstm_scan::Scan;
use crate::{counted_emulator, pair, rel_err, FP32_REL_TOL};

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
    let mut by_seed = Vec::new();
    for seed in crate::SCHEDULE_SEEDS {
        let gpu = counted_emulator(seed);
        let mut outs = Vec::new();
        for case in CASES {
            outs.push(check_case(&gpu, DiagLstmLayout::Folded, case));
        }
        // The materialised layout's kernel (diag_lstm_skewed_persistent_bwd_v4).
        for case in CASES.into_iter().filter(|c| matches!(c.0, Scan::Diagonal)) {
            outs.push(check_case(&gpu, DiagLstmLayout::Materialised, case));
        }
        by_seed.push(outs);
    }
    // Fixed summation order: the same bits under both schedules.
    for (a, b) in by_seed[0].iter().zip(&by_seed[1]) {
        for (x, y) in a.iter().zip(b) {
            assert!(
                x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "v4 differs between scheduling seeds"
            );
        }
    }
}

/// Where v4's staging tile does not fit beside the weight slice (Row LSTM, k = 3, h = 145:
/// 32 x 1741 floats + 16 KiB > 227 KiB; v3's larger tile does not fit either) v4 runs v2.
#[test]
fn persistent_bwd_v4_falls_back_where_its_shared_memory_does_not_fit() {
    let gpu = counted_emulator(1);
    let (scan, hd) = (Scan::Row(3), 145);
    let (_, is) = pair(&gpu, &[1, 2, 2, 4 * hd], 5, 1.0);
    let (_, w) = pair(&gpu, &scan.weight_shape(hd), 6, 0.05);
    let (_, dh) = pair(&gpu, &[1, 2, 2, hd], 7, 1.0);
    let state = scan.forward(&gpu, &is, &w, Recurrence::Fused);
    let _v = gpu.select(select(scan, 4, DiagLstmLayout::Folded));
    gpu.executor().take_counters();
    scan.backward(&gpu, &state, &w, &dh, Recurrence::Persistent);
    let launch = persistent_launch(gpu.executor().take_counters());
    assert_eq!(launch.kernel, "row_lstm_persistent_bwd_v2");
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
