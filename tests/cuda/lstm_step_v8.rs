//! The stepwise v8 kernels (`<scan>_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8`,
//! kernels/row_lstm_v8.cu, diag_lstm_v8.cu, diag_lstm_skewed_v8.cu over the v2 bodies at a
//! weight batch of 8), selected by `RowLstm::V8` / `DiagLstm::V8`: v2's launches, tiles, packed
//! weight and bits, the product's weight words read 8 features at a time before any is used.
//! Checked on the emulator against v2 bit for bit (fused and unfused, both layouts, shapes
//! whose feature counts leave a remainder of the batch), with v2's launches, and by the
//! counters the latency model charges: the same global and shared traffic, and exactly the
//! load rounds the analysis removes.
//!
//! Every version's parity against the CPU twin and v1: tests/cuda/lstm_versions.rs.

use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, Emulator, LaunchCounters, MemSpace};
use pixelrnn::backend::Recurrence;

use crate::lstm_persistent_bwd::select;
use crate::lstm_scan::Scan;
use crate::{counted_emulator, pair};

type Gpu = CudaBackend<Emulator>;

/// `[n, H, W, h]` cases: h = 3 (12 gate rows: a batch of 8 and 4 one at a time backward, 3
/// features forward: no whole batch), h = 10 (a batch and 2 forward), h = 36 (4 whole batches
/// and 4 forward), h = 130 (chunks of 128 and 2 forward, 128 x 4 + 8 backward).
const SHAPES: [[usize; 4]; 4] = [[2, 3, 5, 3], [1, 4, 6, 10], [1, 3, 18, 36], [1, 2, 3, 130]];

/// The outputs of one forward and backward of `scan` under version `v` in `layout` with
/// recurrence `rec`, from the same inputs: h, c, gates, d_is and d_w_ss. Also the launches.
fn run(
    gpu: &Gpu,
    scan: Scan,
    shape: [usize; 4],
    layout: DiagLstmLayout,
    rec: Recurrence,
    v: u32,
) -> (Vec<Vec<f32>>, Vec<LaunchCounters>) {
    let [n, height, width, hd] = shape;
    let (_, is) = pair(gpu, &[n, height, width, 4 * hd], 11, 1.5);
    let (_, w) = pair(gpu, &scan.weight_shape(hd), 12, 0.3);
    let (_, dh) = pair(gpu, &[n, height, width, hd], 13, 1.0);
    let _v = gpu.select(select(scan, v, layout));
    gpu.executor().take_counters();
    let state = scan.forward(gpu, &is, &w, rec);
    let (d_is, dw) = scan.backward(gpu, &state, &w, &dh, rec);
    let launches = gpu.executor().take_counters();
    let outs = [state.h, state.c, state.gates, d_is, dw]
        .map(|t| t.to_vec(gpu).expect("download"))
        .to_vec();
    (outs, launches)
}

/// The scans and layouts: the Row LSTM at k = 1 and 3, the Diagonal in both layouts.
fn scans() -> [(Scan, DiagLstmLayout); 4] {
    [
        (Scan::Row(1), DiagLstmLayout::Folded),
        (Scan::Row(3), DiagLstmLayout::Folded),
        (Scan::Diagonal, DiagLstmLayout::Folded),
        (Scan::Diagonal, DiagLstmLayout::Materialised),
    ]
}

/// v8's fused and unfused recurrences give v2's bits, every output, under both scheduling
/// seeds, and launch v2's grids and blocks under the v8 names.
#[test]
fn stepwise_v8_is_v2_bit_for_bit_with_v2s_launches() {
    for seed in crate::SCHEDULE_SEEDS {
        let gpu = counted_emulator(seed);
        for (scan, layout) in scans() {
            for shape in SHAPES {
                for rec in [Recurrence::Fused, Recurrence::Unfused] {
                    let what = format!("{scan:?} {layout:?} {shape:?} {rec:?} seed {seed}");
                    let (v2, l2) = run(&gpu, scan, shape, layout, rec, 2);
                    let (v8, l8) = run(&gpu, scan, shape, layout, rec, 8);
                    for (i, name) in ["h", "c", "gates", "d_is", "d_w_ss"].iter().enumerate() {
                        let same = v2[i]
                            .iter()
                            .zip(&v8[i])
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "{what}: {name}: v8 is not v2's bits");
                    }
                    let shape_of = |l: &[LaunchCounters]| -> Vec<(String, [u32; 3], [u32; 3])> {
                        l.iter()
                            .map(|c| (c.kernel.replace("_v8", "_v2"), c.grid, c.block))
                            .collect()
                    };
                    assert_eq!(shape_of(&l8), shape_of(&l2), "{what}: v2's launches");
                    assert!(
                        l8.iter().any(|c| c.kernel.ends_with("_v8")),
                        "{what}: no v8 kernel launched"
                    );
                }
            }
        }
    }
}

/// Load rounds, global sectors and bytes, and shared words of the launches of `launches`
/// whose kernel name contains `pass` (summed over them).
fn totals(launches: &[LaunchCounters], pass: &str) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for c in launches.iter().filter(|c| c.kernel.contains(pass)) {
        for s in &c.sites {
            t.0 += s.rounds;
            if s.space == MemSpace::Global {
                t.1 += s.sectors;
                t.2 += s.bytes;
            } else {
                t.3 += s.bytes / 4;
            }
        }
    }
    t
}

/// The fused Row LSTM at k = 3, n = 1, 2 x 32, h = 64 (2 position tiles x 2 unit tiles of 4
/// warps: 16 warps per step launch), where the product runs in one row of each pass: v8 moves
/// v2's global sectors and bytes and loads v2's shared words, in fewer load rounds. By
/// analysis, per warp of the step with a product: v2 waits once per feature for its weight
/// words, v8 once per batch of 8. The forward has 3 taps of 64 features (3 x (64 - 8) = 168
/// rounds fewer per warp), the backward 3 taps of 2 chunks of 128 gate rows (6 x (128 - 16) =
/// 672): 2688 and 10 752 over the 16 warps. The Diagonal on 8 x 8 is printed.
#[test]
fn stepwise_v8_moves_v2s_bytes_in_the_analysed_fewer_load_rounds() {
    let gpu = counted_emulator(1);
    for (pass, saved) in [("step_fwd", 2688), ("step_bwd", 10_752)] {
        let [l2, l8] = [2, 8].map(|v| {
            let row = [1, 2, 32, 64];
            run(
                &gpu,
                Scan::Row(3),
                row,
                DiagLstmLayout::Folded,
                Recurrence::Fused,
                v,
            )
            .1
        });
        let (r2, s2, b2, w2) = totals(&l2, pass);
        let (r8, s8, b8, w8) = totals(&l8, pass);
        eprintln!("row_lstm {pass} k=3 n=1 2x32 h=64: load rounds v2 {r2}, v8 {r8}");
        assert_eq!((s8, b8, w8), (s2, b2, w2), "{pass}: v2's traffic");
        assert_eq!(r2 - r8, saved, "{pass}: rounds v2 {r2}, v8 {r8}");
    }
    for (scan, layout) in [
        (Scan::Diagonal, DiagLstmLayout::Folded),
        (Scan::Diagonal, DiagLstmLayout::Materialised),
    ] {
        let [l2, l8] =
            [2, 8].map(|v| run(&gpu, scan, [1, 8, 8, 64], layout, Recurrence::Fused, v).1);
        for pass in ["step_fwd", "step_bwd"] {
            let (r2, s2, b2, w2) = totals(&l2, pass);
            let (r8, s8, b8, w8) = totals(&l8, pass);
            eprintln!("diag_lstm {layout:?} {pass} 8x8 h=64: load rounds v2 {r2}, v8 {r8}");
            assert_eq!(
                (s8, b8, w8),
                (s2, b2, w2),
                "{layout:?} {pass}: v2's traffic"
            );
            assert!(r8 < r2, "{layout:?} {pass}: rounds v2 {r2}, v8 {r8}");
        }
    }
}
