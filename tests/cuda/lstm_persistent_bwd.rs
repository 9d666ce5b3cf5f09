//! What the persistent backward's version tests share (lstm_persistent_v3.rs,
//! lstm_persistent_v4.rs): a case, its CPU reference, one version's run checked against it,
//! and the launch's counters. No tests here.

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

/// The persistent backward launch of a call's counters (the one kernel named
/// `*_persistent_bwd_v*`); no step kernel of version 4 is ever launched (v4 runs v3's).
pub fn persistent_launch(counters: Vec<LaunchCounters>) -> LaunchCounters {
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

/// A case on the emulator: the CPU twin's states uploaded (so that every version's backward
/// sees the same states), the weight and dh, and the twin's d_is and d_w_ss.
pub struct Prepared {
    /// The case in words, for messages.
    pub what: String,
    scan: Scan,
    layout: DiagLstmLayout,
    state: LstmState<Gpu>,
    w: Tensor<Gpu>,
    dh: Tensor<Gpu>,
    want: [Vec<f32>; 2],
}

/// Prepares `case` with the Diagonal LSTM in `layout`.
pub fn prepare(gpu: &Gpu, layout: DiagLstmLayout, case: Case) -> Prepared {
    let cpu = CpuBackend::new();
    let (scan, [n, height, width, hd], seed) = case;
    let what = format!("{scan:?} {layout:?} n={n} {height}x{width} h={hd}");
    let (is_c, _) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
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
        state,
        w,
        dh,
        want: [d_is_c.data, dw_c.data],
    }
}

impl Prepared {
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
    let (scan, [n, height, width, hd]) = (Scan::Row(3), [1, 2, 32, 64]);
    let (_, is) = pair(gpu, &[n, height, width, 4 * hd], 1, 1.5);
    let (_, w) = pair(gpu, &scan.weight_shape(hd), 2, 0.1);
    let (_, dh) = pair(gpu, &[n, height, width, hd], 3, 1.0);
    let state = scan.forward(gpu, &is, &w, Recurrence::Fused);
    versions
        .iter()
        .map(|&v| {
            let _v = gpu.select(select(scan, v, DiagLstmLayout::Folded));
            gpu.executor().take_counters();
            scan.backward(gpu, &state, &w, &dh, Recurrence::Persistent);
            persistent_launch(gpu.executor().take_counters())
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
