//! The persistent v4 backward (`<scan>_persistent_bwd_v4`, kernels/lstm_persistent_v4.cuh):
//! v2's clusters over an 8 x 8 register tile with the K range split over the two halves of a
//! warp (summed by shuffles), selected by `RowLstm::V4` / `DiagLstm::V4`. Checked on the
//! emulator (NaN-poisoned outputs, both scheduling seeds) against the CPU twin and against the
//! persistent v3 backward (another summation order: within fp32 bounds, not bit for bit), for
//! determinism (the same bits on every run and schedule), the fallback where its shared
//! memory does not fit, and by its counters (FLOPs per shared word, conflicts).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    AccessOp, CudaBackend, DiagLstm, DiagLstmLayout, EmuOptions, Emulator, LaunchCounters,
    MemSpace, RowLstm, Variants,
};
use pixelrnn::backend::{Backend, LstmState, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::{pair, rel_err, to_gpu, FP32_REL_TOL};

/// A case: the Row LSTM's kernel width (`None`: the Diagonal LSTM), `[n, H, W, h]`, a seed.
type Case = (Option<usize>, [usize; 4], u64);

const CASES: [Case; 6] = [
    // One unit tile (h = 8), steps far shorter than the 64-position tile.
    (Some(3), [1, 3, 5, 8], 800),
    // k = 5, n = 2, h = 12 (not a multiple of 8: the unit groups' last units dead).
    (Some(5), [2, 2, 6, 12], 810),
    // The tile edges: 2 unit tiles (h = 36: the second has 4 live units) x 2 position groups
    // of 64-position tiles (W = 70: the second warp of the first tile full, the second tile
    // 6 positions, its second warp idle); 4h = 144: chunks of 64, 64 and 16 gate rows.
    (Some(3), [1, 2, 70, 36], 820),
    (None, [2, 4, 3, 12], 830),
    (None, [1, 5, 4, 36], 840),
    (None, [1, 3, 2, 8], 850),
];

fn weight_shape(k: Option<usize>, hd: usize) -> Vec<usize> {
    match k {
        Some(k) => vec![4 * hd, hd, 1, k],
        None => vec![4 * hd, hd, 2, 1],
    }
}

/// The emulator with scheduling seed `seed`, counters and NaN poisoning on.
fn emulator(seed: u64) -> CudaBackend<Emulator> {
    let emu = Emulator::new(EmuOptions {
        seed,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    CudaBackend::with_options(emu, true)
}

fn forward<B: Backend>(be: &B, k: Option<usize>, is: &Tensor<B>, w: &Tensor<B>) -> LstmState<B> {
    let rec = Recurrence::Fused;
    match k {
        Some(_) => be.row_lstm_forward(is, w, rec),
        None => be.diag_lstm_forward(is, w, rec),
    }
    .expect("forward")
}

fn backward<B: Backend>(
    be: &B,
    k: Option<usize>,
    state: &LstmState<B>,
    w: &Tensor<B>,
    dh: &Tensor<B>,
) -> (Tensor<B>, Tensor<B>) {
    let rec = Recurrence::Persistent;
    match k {
        Some(_) => be.row_lstm_backward(state, w, dh, rec),
        None => be.diag_lstm_backward(state, w, dh, rec),
    }
    .expect("backward")
}

/// Version `v` of the case's scan in `layout`.
fn select(k: Option<usize>, v: u32, layout: DiagLstmLayout) -> Variants {
    let base = Variants {
        diag_lstm_layout: layout,
        ..Variants::default()
    };
    match k {
        Some(_) => Variants {
            row_lstm: RowLstm::try_from(v).expect("version"),
            ..base
        },
        None => Variants {
            diag_lstm: DiagLstm::try_from(v).expect("version"),
            ..base
        },
    }
}

/// The persistent backward launch of a call's counters (the one kernel named
/// `*_persistent_bwd_v*`); no step kernel of version 4 is ever launched.
fn persistent_launch(counters: Vec<LaunchCounters>) -> LaunchCounters {
    assert!(
        counters.iter().all(|c| !c.kernel.contains("step_bwd_v4")),
        "a step kernel v4 was named"
    );
    let mut found: Vec<_> = counters
        .into_iter()
        .filter(|c| c.kernel.contains("_persistent_bwd_v"))
        .collect();
    assert_eq!(found.len(), 1, "one persistent backward launch");
    found.remove(0)
}

/// The case's persistent backward under v3 and v4 (v4 twice): d_is and d_w_ss of each against
/// the CPU twin (from the CPU's states), v4 against v3 within the same bound, v4's two runs
/// bit for bit, the kernel and block each launched. Returns v4's outputs (for the
/// cross-schedule comparison).
fn check_case(gpu: &CudaBackend<Emulator>, layout: DiagLstmLayout, case: Case) -> Vec<Vec<f32>> {
    let cpu = CpuBackend::new();
    let (k, [n, height, width, hd], seed) = case;
    let what = format!("k={k:?} {layout:?} n={n} {height}x{width} h={hd}");
    let (is_c, _) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
    let w_shape = weight_shape(k, hd);
    let taps = w_shape[2] * w_shape[3];
    let (w_c, w_g) = pair(gpu, &w_shape, seed + 1, 1.5 / ((taps * hd) as f32).sqrt());
    let (dh_c, dh_g) = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);
    let s_c = forward(&cpu, k, &is_c, &w_c);
    let (d_is_c, dw_c) = backward(&cpu, k, &s_c, &w_c, &dh_c);
    let state = LstmState {
        h: to_gpu(gpu, &s_c.h),
        c: to_gpu(gpu, &s_c.c),
        gates: to_gpu(gpu, &s_c.gates),
    };
    let mut outs = Vec::new();
    for v in [3, 4, 4] {
        let _v = gpu.select(select(k, v, layout));
        gpu.executor().take_counters();
        let (d_is, dw) = backward(gpu, k, &state, &w_g, &dh_g);
        let launch = persistent_launch(gpu.executor().take_counters());
        assert!(
            launch.kernel.ends_with(&format!("_persistent_bwd_v{v}")),
            "{what}: v{v} launched {}",
            launch.kernel
        );
        assert_eq!(launch.block, [64, 1, 1], "{what}: v{v} block");
        let got = [d_is, dw].map(|t| t.to_vec(gpu).expect("download"));
        // fp32 bound: the same products as the CPU twin's, summed in another order (dh, then
        // two K-groups' partials over taps x 4h features); FP32_REL_TOL is the bound of every
        // fp32 reduction-order difference in these tests (tests/cuda/main.rs).
        for (name, g, want) in [
            ("d_is", &got[0], &d_is_c.data),
            ("d_w_ss", &got[1], &dw_c.data),
        ] {
            let err = rel_err(&format!("{what} v{v}: {name}"), g, want);
            assert!(
                err <= FP32_REL_TOL,
                "{what} v{v}: {name}: relative error {err:.3e}"
            );
        }
        outs.push(got);
    }
    for (i, name) in ["d_is", "d_w_ss"].iter().enumerate() {
        let err = rel_err(
            &format!("{what}: {name} v4 vs v3"),
            &outs[1][i],
            &outs[0][i],
        );
        assert!(err <= FP32_REL_TOL, "{what}: {name} v4 vs v3: {err:.3e}");
        let same = outs[1][i]
            .iter()
            .zip(&outs[2][i])
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: {name}: two v4 runs differ");
    }
    outs.swap_remove(1).to_vec()
}

#[test]
fn persistent_bwd_v4_matches_the_cpu_and_v3_and_is_deterministic() {
    let mut by_seed = Vec::new();
    for seed in crate::SCHEDULE_SEEDS {
        let gpu = emulator(seed);
        let mut outs = Vec::new();
        for case in CASES {
            outs.push(check_case(&gpu, DiagLstmLayout::Folded, case));
        }
        // The materialised layout's kernel (diag_lstm_skewed_persistent_bwd_v4).
        for case in CASES.into_iter().filter(|c| c.0.is_none()) {
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
    let gpu = emulator(1);
    let (k, hd) = (Some(3), 145);
    let (_, is) = pair(&gpu, &[1, 2, 2, 4 * hd], 5, 1.0);
    let (_, w) = pair(&gpu, &weight_shape(k, hd), 6, 0.05);
    let (_, dh) = pair(&gpu, &[1, 2, 2, hd], 7, 1.0);
    let state = forward(&gpu, k, &is, &w);
    let _v = gpu.select(select(k, 4, DiagLstmLayout::Folded));
    gpu.executor().take_counters();
    backward(&gpu, k, &state, &w, &dh);
    let launch = persistent_launch(gpu.executor().take_counters());
    assert_eq!(launch.kernel, "row_lstm_persistent_bwd_v2");
}

/// Shared words loaded (lanes x width) and the worst shared-load excess of one launch.
fn shared_loads(c: &LaunchCounters) -> (u64, f64) {
    let loads = c.sites_of(MemSpace::Shared, AccessOp::Load);
    let words = loads.iter().map(|s| s.bytes / 4).sum();
    let worst = loads
        .iter()
        .map(|s| s.excess_wavefronts())
        .fold(0.0, f64::max);
    (words, worst)
}

/// The counters of the Row LSTM (k = 3) persistent backward at h = 64, W = 32 (v3's
/// measurement shape): v4 loads about half of v3's shared words, at >= 8 FLOPs per word per
/// product (the formula counts both rows' products, but at H = 2 only the top row has a
/// successor: the per-product ratio is half the formula's), conflict-free loads.
#[test]
fn persistent_bwd_v4_loads_8_flops_per_shared_word() {
    let gpu = emulator(1);
    let (k, [n, height, width, hd]) = (Some(3), [1, 2, 32, 64]);
    let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 1, 1.5);
    let (_, w) = pair(&gpu, &weight_shape(k, hd), 2, 0.1);
    let (_, dh) = pair(&gpu, &[n, height, width, hd], 3, 1.0);
    let state = forward(&gpu, k, &is, &w);
    let mut by_version = Vec::new();
    for v in [3, 4] {
        let _v = gpu.select(select(k, v, DiagLstmLayout::Folded));
        gpu.executor().take_counters();
        backward(&gpu, k, &state, &w, &dh);
        let launch = persistent_launch(gpu.executor().take_counters());
        let (words, excess) = shared_loads(&launch);
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
        by_version.push((launch.flops, words, excess, stores, global));
    }
    let [(f3, w3, c3, s3, g3), (f4, w4, c4, s4, g4)] = [by_version[0], by_version[1]];
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
