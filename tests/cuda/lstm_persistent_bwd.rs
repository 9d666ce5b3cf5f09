//! What the persistent recurrence's version tests share (lstm_persistent_v3.rs to
//! lstm_persistent_v7.rs): a case, its CPU reference, one version's forward or backward run
//! checked against it, the kernel a version launches at a hidden size, and the launch's
//! counters. No tests here.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    AccessOp, CudaBackend, DiagLstmLayout, Emulator, LaunchCounters, MemSpace, Variants,
};
use pixelrnn::backend::{LstmState, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::lstm_scan::{scan_version, Scan};
use crate::{pair, rel_err, to_gpu, FP32_REL_TOL};

/// A case: the scan, `[n, H, W, h]`, a seed.
pub type Case = (Scan, [usize; 4], u64);

type Gpu = CudaBackend<Emulator>;

/// Version `v` of `scan`, with the Diagonal LSTM in `layout`.
pub fn select(scan: Scan, v: u32, layout: DiagLstmLayout) -> Variants {
    let base = Variants {
        diag_lstm_layout: layout,
        ..Variants::default()
    };
    scan_version(scan, v, base)
}

/// Runs `check` on every case in the folded layout and on the Diagonal cases in the
/// materialised layout too (the skewed kernels), once per scheduling seed, and asserts that
/// every output has the same bits under every seed: the kernels' summation order is fixed.
/// `what` names the kernel in the failure message.
pub fn check_cases_under_every_seed<const N: usize>(
    what: &str,
    cases: &[Case],
    check: impl Fn(&Gpu, DiagLstmLayout, Case) -> [Vec<f32>; N],
) {
    let mut by_seed = Vec::new();
    for seed in crate::SCHEDULE_SEEDS {
        let gpu = crate::counted_emulator(seed);
        let mut outs = Vec::new();
        for &case in cases {
            outs.push(check(&gpu, DiagLstmLayout::Folded, case));
        }
        for &case in cases.iter().filter(|c| matches!(c.0, Scan::Diagonal)) {
            outs.push(check(&gpu, DiagLstmLayout::Materialised, case));
        }
        by_seed.push(outs);
    }
    for outs in &by_seed[1..] {
        for (a, b) in by_seed[0].iter().zip(outs) {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{what} differs between scheduling seeds"
                );
            }
        }
    }
}

/// The persistent backward launch of a call's counters (the one kernel named
/// `*_persistent_bwd_v*`); no step kernel of version 4 is ever launched (v4 runs v3's).
pub fn persistent_launch(counters: Vec<LaunchCounters>) -> LaunchCounters {
    persistent_launch_of(counters, "bwd")
}

/// The persistent forward launch of a call's counters (the one kernel named
/// `*_persistent_fwd_v*`), as [`persistent_launch`].
pub fn persistent_fwd_launch(counters: Vec<LaunchCounters>) -> LaunchCounters {
    persistent_launch_of(counters, "fwd")
}

fn persistent_launch_of(counters: Vec<LaunchCounters>, pass: &str) -> LaunchCounters {
    assert!(
        counters
            .iter()
            .all(|c| !c.kernel.contains("step_bwd_v4") && !c.kernel.contains("step_fwd_v4")),
        "a step kernel v4 was named"
    );
    let mut found: Vec<_> = counters
        .into_iter()
        .filter(|c| c.kernel.contains(&format!("_persistent_{pass}_v")))
        .collect();
    assert_eq!(found.len(), 1, "one persistent {pass} launch");
    found.remove(0)
}

/// The persistent kernel version `v` of `scan` launches on one image of 2 x 2 at hidden size
/// `hd` (folded layout), forward or (`backward`) backward: where a version stops fitting in
/// shared memory, the name says which one the host fell back to.
pub fn persistent_kernel_at(gpu: &Gpu, scan: Scan, hd: usize, backward: bool, v: u32) -> String {
    let (_, is) = pair(gpu, &[1, 2, 2, 4 * hd], 5, 1.0);
    let (_, w) = pair(gpu, &scan.weight_shape(hd), 6, 0.05);
    let (_, dh) = pair(gpu, &[1, 2, 2, hd], 7, 1.0);
    let state = scan.forward(gpu, &is, &w, Recurrence::Fused);
    let _v = gpu.select(select(scan, v, DiagLstmLayout::Folded));
    gpu.executor().take_counters();
    let launch = if backward {
        scan.backward(gpu, &state, &w, &dh, Recurrence::Persistent);
        persistent_launch(gpu.executor().take_counters())
    } else {
        scan.forward(gpu, &is, &w, Recurrence::Persistent);
        persistent_fwd_launch(gpu.executor().take_counters())
    };
    launch.kernel
}

/// A case on the emulator: the input-to-state pre-activations, the CPU twin's states uploaded
/// (so that every version's backward sees the same states), the weight and dh, and the twin's
/// h, c and gates (forward) and d_is and d_w_ss (backward).
pub struct Prepared {
    /// The case in words, for messages.
    pub what: String,
    scan: Scan,
    layout: DiagLstmLayout,
    is: Tensor<Gpu>,
    state: LstmState<Gpu>,
    w: Tensor<Gpu>,
    dh: Tensor<Gpu>,
    want_fwd: [Vec<f32>; 3],
    want: [Vec<f32>; 2],
}

/// Prepares `case` with the Diagonal LSTM in `layout`.
pub fn prepare(gpu: &Gpu, layout: DiagLstmLayout, case: Case) -> Prepared {
    let cpu = CpuBackend::new();
    let (scan, [n, height, width, hd], seed) = case;
    let what = format!("{scan:?} {layout:?} n={n} {height}x{width} h={hd}");
    let (is_c, is) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
    let w_shape = scan.weight_shape(hd);
    let taps = w_shape[2] * w_shape[3];
    let (w_c, w) = pair(gpu, &w_shape, seed + 1, 1.5 / ((taps * hd) as f32).sqrt());
    let (dh_c, dh) = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);
    let s_c = scan.forward(&cpu, &is_c, &w_c, Recurrence::Fused);
    let (d_is_c, dw_c) = scan.backward(&cpu, &s_c, &w_c, &dh_c, Recurrence::Persistent);
    let state = LstmState {
        h: to_gpu(gpu, &s_c.h),
        c: to_gpu(gpu, &s_c.c),
        gates: to_gpu(gpu, &s_c.gates),
    };
    Prepared {
        what,
        scan,
        layout,
        is,
        state,
        w,
        dh,
        want_fwd: [s_c.h.data, s_c.c.data, s_c.gates.data],
        want: [d_is_c.data, dw_c.data],
    }
}

impl Prepared {
    /// Version `v`'s persistent forward: it must launch `<scan>_persistent_fwd_v<v>` with
    /// `threads` per block, and h, c and the activated gates must be within [`FP32_REL_TOL`]
    /// of the twin's (the same products, the twin summing in its own order). Returns
    /// `[h, c, gates]`.
    pub fn run_fwd(&self, gpu: &Gpu, v: u32, threads: u32) -> [Vec<f32>; 3] {
        let what = &self.what;
        let _v = gpu.select(select(self.scan, v, self.layout));
        gpu.executor().take_counters();
        let s = self
            .scan
            .forward(gpu, &self.is, &self.w, Recurrence::Persistent);
        let launch = persistent_fwd_launch(gpu.executor().take_counters());
        assert!(
            launch.kernel.ends_with(&format!("_persistent_fwd_v{v}")),
            "{what}: v{v} launched {}",
            launch.kernel
        );
        assert_eq!(launch.block, [threads, 1, 1], "{what}: v{v} block");
        let got = [s.h, s.c, s.gates].map(|t| t.to_vec(gpu).expect("download"));
        for (i, name) in ["h", "c", "gates"].iter().enumerate() {
            let err = rel_err(&format!("{what} v{v}: {name}"), &got[i], &self.want_fwd[i]);
            assert!(
                err <= FP32_REL_TOL,
                "{what} v{v}: {name}: relative error {err:.3e}"
            );
        }
        got
    }

    /// Version `v`'s persistent backward: it must launch `<scan>_persistent_bwd_v<v>` with
    /// `threads` per block, and d_is and d_w_ss must be within [`FP32_REL_TOL`] of the twin's
    /// (the same products summed in another order: the bound of every fp32 reduction-order
    /// difference in these tests, tests/cuda/main.rs). Returns `[d_is, d_w_ss]`.
    pub fn run(&self, gpu: &Gpu, v: u32, threads: u32) -> [Vec<f32>; 2] {
        let what = &self.what;
        let _v = gpu.select(select(self.scan, v, self.layout));
        gpu.executor().take_counters();
        let (d_is, dw) =
            self.scan
                .backward(gpu, &self.state, &self.w, &self.dh, Recurrence::Persistent);
        let launch = persistent_launch(gpu.executor().take_counters());
        assert!(
            launch.kernel.ends_with(&format!("_persistent_bwd_v{v}")),
            "{what}: v{v} launched {}",
            launch.kernel
        );
        assert_eq!(launch.block, [threads, 1, 1], "{what}: v{v} block");
        let got = [d_is, dw].map(|t| t.to_vec(gpu).expect("download"));
        for (name, g, want) in [
            ("d_is", &got[0], &self.want[0]),
            ("d_w_ss", &got[1], &self.want[1]),
        ] {
            let err = rel_err(&format!("{what} v{v}: {name}"), g, want);
            assert!(
                err <= FP32_REL_TOL,
                "{what} v{v}: {name}: relative error {err:.3e}"
            );
        }
        got
    }
}

/// The counters' measurement shape (Row LSTM k = 3, n = 1, 2 x 32, h = 64): the persistent
/// backward's launch under each of `versions`, from the same states.
pub fn row_counters(gpu: &Gpu, versions: &[u32]) -> Vec<LaunchCounters> {
    counters(gpu, Scan::Row(3), [1, 2, 32, 64], true, versions)
}

/// The persistent forward's (`backward` false) or backward's launch of `scan` on `[n, H, W, h]`
/// (folded layout) under each of `versions`, from the same inputs and states.
pub fn counters(
    gpu: &Gpu,
    scan: Scan,
    [n, height, width, hd]: [usize; 4],
    backward: bool,
    versions: &[u32],
) -> Vec<LaunchCounters> {
    let (_, is) = pair(gpu, &[n, height, width, 4 * hd], 1, 1.5);
    let (_, w) = pair(gpu, &scan.weight_shape(hd), 2, 0.1);
    let (_, dh) = pair(gpu, &[n, height, width, hd], 3, 1.0);
    let state = scan.forward(gpu, &is, &w, Recurrence::Fused);
    versions
        .iter()
        .map(|&v| {
            let _v = gpu.select(select(scan, v, DiagLstmLayout::Folded));
            gpu.executor().take_counters();
            if backward {
                scan.backward(gpu, &state, &w, &dh, Recurrence::Persistent);
                persistent_launch(gpu.executor().take_counters())
            } else {
                scan.forward(gpu, &is, &w, Recurrence::Persistent);
                persistent_fwd_launch(gpu.executor().take_counters())
            }
        })
        .collect()
}

/// Shared words loaded (lanes x width / 4 bytes) and the worst shared-load excess over the
/// conflict-free wavefronts, of one launch.
pub fn shared_loads(c: &LaunchCounters) -> (u64, f64) {
    let loads = c.sites_of(MemSpace::Shared, AccessOp::Load);
    let words = loads.iter().map(|s| s.bytes / 4).sum();
    let worst = loads
        .iter()
        .map(|s| s.excess_wavefronts())
        .fold(0.0, f64::max);
    (words, worst)
}

/// The worst shared-store excess over the conflict-free wavefronts of one launch.
pub fn shared_store_excess(c: &LaunchCounters) -> f64 {
    c.sites_of(MemSpace::Shared, AccessOp::Store)
        .iter()
        .map(|s| s.excess_wavefronts())
        .fold(0.0, f64::max)
}

/// Global memory efficiency of one launch: byte-weighted over its sites (distinct bytes over
/// the sectors' bytes, summed) and the worst site's.
pub fn global_efficiency(c: &LaunchCounters) -> (f64, f64) {
    let sites: Vec<_> = c
        .sites
        .iter()
        .filter(|s| s.space == MemSpace::Global && s.requests > 0)
        .collect();
    let used: u64 = sites.iter().map(|s| s.unique_bytes).sum();
    let moved: u64 = sites.iter().map(|s| s.sectors * 32).sum();
    let worst = sites.iter().map(|s| s.efficiency()).fold(1.0, f64::min);
    (used as f64 / moved.max(1) as f64, worst)
}

/// One launch's counters: FLOPs (the formula's), shared words loaded, the worst shared load
/// and store excess, global efficiency (byte-weighted, worst site).
pub fn measure(c: &LaunchCounters) -> (u64, u64, f64, f64, f64, f64) {
    let (words, load) = shared_loads(c);
    let (bytes_eff, worst) = global_efficiency(c);
    (
        c.flops,
        words,
        load,
        shared_store_excess(c),
        bytes_eff,
        worst,
    )
}

/// Prints the counters of `launches` (versions `versions`) of pass `pass` (`fwd`, `bwd`) on case
/// `what`; `per_product`: the formula's FLOPs over those of the products that run.
pub fn report(
    pass: &str,
    what: &str,
    versions: &[u32],
    launches: &[LaunchCounters],
    per_product: f64,
) {
    for (v, c) in versions.iter().zip(launches) {
        let (f, w, l, st, be, gw) = measure(c);
        eprintln!(
            "persistent {pass} {what} v{v} ({}, grid {:?} x block {:?}): FLOPs {f}, \
             shared words {w} ({:.2} FLOPs/word, per product {:.2}), load excess {l:.3}, store \
             excess {st:.3}, global efficiency {be:.3} byte-weighted, worst site {gw:.3}",
            c.kernel,
            c.grid,
            c.block,
            f as f64 / w as f64,
            f as f64 / per_product / w as f64
        );
    }
}
