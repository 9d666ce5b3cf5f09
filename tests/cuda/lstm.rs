//! Parity of the recurrences and the skew family (kernels/{lstm,row_lstm,diag_lstm,skew,
//! mirror_shift}.cu) against their CPU twins: Row LSTM and Diagonal LSTM forward (h, c, gates)
//! and backward (d_is, d_w_ss) by the three recurrence variants (unfused, fused, persistent),
//! the variants against each other on CUDA, the Diagonal LSTM's two layouts on CUDA (skew
//! folded into the indexing, materialised skewed maps) against the CPU and against each other,
//! the one-position steps of sampling against the full forward, and skew / unskew / mirror /
//! shifts.
//!
//! Tolerances: the recurrences use `FP32_REL_TOL` (different summation orders and exp/tanh
//! implementations, a few ulp per element, carried through the scan); the moves are copies
//! and must match bit for bit.
//!
//! Shapes are small (the emulator runs one fiber per GPU thread on two cores) but cover odd
//! sizes, a batch of two, H < W and H > W, one hidden unit and several, k = 1, 3 and 5. The
//! persistent kernels take more cases per scan: state weights over the 48 KiB v1 stages in
//! shared memory (read from global memory instead), steps with more (position, unit) pairs
//! than the 1024 threads of a v1 block (threads loop), h = 128 (v2: clusters of 4 blocks,
//! each with its weight slice in opted-in shared memory) and clusters of several position
//! groups.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    CudaBackend, DiagLstm, DiagLstmLayout, Emulator, Executor, RowLstm, Variants,
};
use pixelrnn::backend::{Backend, LstmState, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::{assert_close, cpu_tensor, pair, random, rel_err, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    row_lstm => super::check_row_lstm,
    diag_lstm => super::check_diag_lstm,
    diag_lstm_materialised => super::check_diag_lstm_materialised,
    lstm_forward_at => super::check_forward_at,
    skew_unskew => super::check_skew,
    mirror_shift => super::check_mirror_shift,
    lstm_shape_errors => super::check_shape_errors,
    lstm_versions_agree => super::check_versions_agree,
}

/// Copies must be exact.
const EXACT: f64 = 0.0;

/// Which recurrence: the Row LSTM with its kernel width, or the Diagonal LSTM.
#[derive(Clone, Copy, Debug)]
enum Scan {
    Row(usize),
    Diagonal,
}

impl Scan {
    fn weight_shape(self, hd: usize) -> Vec<usize> {
        match self {
            Scan::Row(k) => vec![4 * hd, hd, 1, k],
            Scan::Diagonal => vec![4 * hd, hd, 2, 1],
        }
    }

    fn forward<B: Backend>(
        self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
        rec: Recurrence,
    ) -> LstmState<B> {
        let out = match self {
            Scan::Row(_) => be.row_lstm_forward(is, w, rec),
            Scan::Diagonal => be.diag_lstm_forward(is, w, rec),
        };
        out.unwrap_or_else(|e| panic!("{self:?} forward ({rec:?}) on {}: {e}", be.name()))
    }

    fn backward<B: Backend>(
        self,
        be: &B,
        state: &LstmState<B>,
        w: &Tensor<B>,
        dh: &Tensor<B>,
        rec: Recurrence,
    ) -> (Tensor<B>, Tensor<B>) {
        let out = match self {
            Scan::Row(_) => be.row_lstm_backward(state, w, dh, rec),
            Scan::Diagonal => be.diag_lstm_backward(state, w, dh, rec),
        };
        out.unwrap_or_else(|e| panic!("{self:?} backward ({rec:?}) on {}: {e}", be.name()))
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_at<B: Backend>(
        self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
        h: &mut Tensor<B>,
        c: &mut Tensor<B>,
        i: usize,
        j: usize,
    ) -> pixelrnn::error::Result<()> {
        match self {
            Scan::Row(_) => be.row_lstm_forward_at(is, w, h, c, i, j),
            Scan::Diagonal => be.diag_lstm_forward_at(is, w, h, c, i, j),
        }
    }
}

/// Every variant; the first is the one the others are compared with on CUDA.
const RECURRENCES: [Recurrence; 3] = [
    Recurrence::Fused,
    Recurrence::Unfused,
    Recurrence::Persistent,
];

/// Whether the persistent kernels stage the state weight of `scan` with `hd` units in shared
/// memory: the host's rule (`PERSISTENT_SHARED_CAP` in src/backend/cuda/lstm.rs, the 48 KiB
/// of dynamic shared memory a block gets without opting in), restated so that each case says
/// which path it covers.
fn persistent_staged(scan: Scan, hd: usize) -> bool {
    let floats: usize = scan.weight_shape(hd).iter().product();
    floats * std::mem::size_of::<f32>() <= 48 * 1024
}

/// The selection of recurrence kernel version `v` (1, 2 or 3) of `scan`, on top of `base`.
fn scan_version(scan: Scan, v: u32, base: Variants) -> Variants {
    match scan {
        Scan::Row(_) => Variants {
            row_lstm: RowLstm::try_from(v).expect("row_lstm version"),
            ..base
        },
        Scan::Diagonal => Variants {
            diag_lstm: DiagLstm::try_from(v).expect("diag_lstm version"),
            ..base
        },
    }
}

/// The recurrence kernel versions of `scan` ([`RowLstm::ALL`] / [`DiagLstm::ALL`]).
fn scan_versions(scan: Scan) -> Vec<u32> {
    match scan {
        Scan::Row(_) => RowLstm::ALL.map(RowLstm::number).to_vec(),
        Scan::Diagonal => DiagLstm::ALL.map(DiagLstm::number).to_vec(),
    }
}

/// [`check_scan_version`] under every recurrence kernel version of `scan`.
fn check_scan<E: Executor>(gpu: &CudaBackend<E>, scan: Scan, dims: [usize; 4], seed: u64) {
    for v in scan_versions(scan) {
        let _version = gpu.select(scan_version(scan, v, gpu.variants()));
        check_scan_version(gpu, scan, dims, seed, v);
    }
}

/// Forward and backward of `scan` on `[n, H, W]` with `hd` hidden units, every recurrence
/// variant, against the CPU (same variant), and the CUDA variants against the fused one, with
/// the selected kernel version (`version`, for the messages).
fn check_scan_version<E: Executor>(
    gpu: &CudaBackend<E>,
    scan: Scan,
    dims: [usize; 4],
    seed: u64,
    version: u32,
) {
    let cpu = CpuBackend::new();
    let [n, height, width, hd] = dims;
    let what = format!("{scan:?} v{version} n={n} {height}x{width} h={hd}");
    // Pre-activations of order 1 and weights of order 1/sqrt(taps * h) keep the gates away
    // from saturation, so the gradients are not all tiny.
    let (is_c, is_g) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
    let w_shape = scan.weight_shape(hd);
    let taps = w_shape[2] * w_shape[3];
    let w_scale = 1.5 / ((taps * hd) as f32).sqrt();
    let (w_c, w_g) = pair(gpu, &w_shape, seed + 1, w_scale);
    let (dh_c, dh_g) = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);

    let mut results = Vec::new();
    for rec in RECURRENCES {
        let tag = format!("{what} {rec:?}");
        let s_c = scan.forward(&cpu, &is_c, &w_c, rec);
        let s_g = scan.forward(gpu, &is_g, &w_g, rec);
        assert_close(&format!("{tag}: h"), gpu, &s_g.h, &s_c.h, FP32_REL_TOL);
        assert_close(&format!("{tag}: c"), gpu, &s_g.c, &s_c.c, FP32_REL_TOL);
        assert_close(
            &format!("{tag}: gates"),
            gpu,
            &s_g.gates,
            &s_c.gates,
            FP32_REL_TOL,
        );

        // Backward from the CPU's states on both sides: this checks the backward kernels
        // alone (the forward was checked above).
        let state_g = LstmState {
            h: to_gpu(gpu, &s_c.h),
            c: to_gpu(gpu, &s_c.c),
            gates: to_gpu(gpu, &s_c.gates),
        };
        let (d_is_c, dw_c) = scan.backward(&cpu, &s_c, &w_c, &dh_c, rec);
        let (d_is_g, dw_g) = scan.backward(gpu, &state_g, &w_g, &dh_g, rec);
        assert_close(&format!("{tag}: d_is"), gpu, &d_is_g, &d_is_c, FP32_REL_TOL);
        assert_close(&format!("{tag}: d_w_ss"), gpu, &dw_g, &dw_c, FP32_REL_TOL);

        // And backward from the GPU's own forward states (the chain as a layer runs it).
        let (d_is_g2, dw_g2) = scan.backward(gpu, &s_g, &w_g, &dh_g, rec);
        assert_close(
            &format!("{tag}: d_is (own states)"),
            gpu,
            &d_is_g2,
            &d_is_c,
            FP32_REL_TOL,
        );
        assert_close(
            &format!("{tag}: d_w_ss (own states)"),
            gpu,
            &dw_g2,
            &dw_c,
            FP32_REL_TOL,
        );
        results.push([s_g.h, s_g.c, s_g.gates, d_is_g2, dw_g2]);
    }

    // Every variant against the fused one, all on CUDA.
    let names = ["h", "c", "gates", "d_is", "d_w_ss"];
    for (rec, other) in RECURRENCES.iter().zip(&results).skip(1) {
        for (name, (f, u)) in names.iter().zip(results[0].iter().zip(other)) {
            let f = f.to_vec(gpu).expect("download");
            let u = u.to_vec(gpu).expect("download");
            let err = rel_err(&format!("{what}: {name} fused vs {rec:?}"), &f, &u);
            assert!(
                err <= FP32_REL_TOL,
                "{what}: {name} fused vs {rec:?} on CUDA: relative error {err:.3e}"
            );
        }
    }
}

pub fn check_row_lstm<E: Executor>(gpu: &CudaBackend<E>) {
    // One hidden unit (the C = 1 layers' smallest block), odd sizes, a batch of two, wide and
    // tall maps, k = 3 (the paper's), k = 1 (no horizontal taps) and k = 5.
    check_scan(gpu, Scan::Row(3), [1, 4, 5, 1], 10);
    check_scan(gpu, Scan::Row(3), [2, 5, 7, 3], 20);
    check_scan(gpu, Scan::Row(1), [2, 7, 5, 8], 30);
    check_scan(gpu, Scan::Row(5), [1, 3, 4, 2], 40);
    // Persistent paths: h = 32, k = 3 is exactly 48 KiB of weights (staged); h = 40 is 75 KiB
    // (global memory); 35 x 32 pairs per row exceed a block's 1024 threads.
    assert!(persistent_staged(Scan::Row(3), 32) && !persistent_staged(Scan::Row(3), 40));
    check_scan(gpu, Scan::Row(3), [1, 2, 3, 32], 41);
    check_scan(gpu, Scan::Row(3), [2, 3, 5, 40], 42);
    check_scan(gpu, Scan::Row(1), [1, 2, 35, 32], 43);
    // The paper's h = 128 (persistent v2: clusters of 4 blocks, each holding 192 KiB of
    // weights in shared memory, opted in; v1 reads them from global memory), and a cluster of
    // 2 unit tiles x 3 position groups (h = 40, 35 positions per row).
    check_scan(gpu, Scan::Row(3), [1, 2, 3, 128], 44);
    check_scan(gpu, Scan::Row(3), [1, 2, 35, 40], 45);
}

pub fn check_diag_lstm<E: Executor>(gpu: &CudaBackend<E>) {
    // DIAG_CASES: [1, 4, 5, 1], [2, 5, 7, 3], [2, 7, 5, 8]; a single row and a single column
    // (anti-diagonals of one position); the persistent paths: h = 40 is 50 KiB of weights
    // (global memory; the cases before are staged), anti-diagonals of 17 positions x 64 units
    // exceed a block's 1024 threads.
    assert!(persistent_staged(Scan::Diagonal, 8) && !persistent_staged(Scan::Diagonal, 40));
    for (dims, seed) in DIAG_CASES {
        check_scan(gpu, Scan::Diagonal, dims, seed);
    }
    // h = 128: persistent v2 in clusters of 4 blocks, 128 KiB of weights each.
    check_scan(gpu, Scan::Diagonal, [1, 3, 2, 128], 93);
}

/// The selection of Diagonal LSTM layout `layout` (`Folded` folds the skew into the
/// indexing, `Materialised` materialises it; src/backend/cuda/variants.rs).
fn diag_layout(layout: DiagLstmLayout) -> Variants {
    Variants {
        diag_lstm_layout: layout,
        ..Variants::default()
    }
}

/// The Diagonal LSTM's shapes of `check_diag_lstm`: odd sizes, a batch of two, H < W and
/// H > W, one row, one column, weights over the persistent kernels' 48 KiB, anti-diagonals
/// with more (position, unit) pairs than a block's threads.
const DIAG_CASES: [([usize; 4], u64); 7] = [
    ([1, 4, 5, 1], 50),
    ([2, 5, 7, 3], 60),
    ([2, 7, 5, 8], 70),
    ([1, 1, 4, 2], 80),
    ([1, 4, 1, 2], 90),
    ([2, 3, 5, 40], 91),
    ([1, 17, 18, 64], 92),
];

/// The materialised layout (2) of the Diagonal LSTM: every recurrence against the CPU and
/// against each other (`check_scan`), then against the folded layout (1) on CUDA from the
/// same inputs, forward and backward; an unknown layout is an error, not a launch.
pub fn check_diag_lstm_materialised<E: Executor>(gpu: &CudaBackend<E>) {
    {
        let _materialised = gpu.select(diag_layout(DiagLstmLayout::Materialised));
        for (dims, seed) in DIAG_CASES {
            check_scan(gpu, Scan::Diagonal, dims, seed);
        }
    }

    let cpu = CpuBackend::new();
    for (dims, seed) in DIAG_CASES {
        let [n, height, width, hd] = dims;
        let seed = seed + 1000;
        let (_, is) = pair(gpu, &[n, height, width, 4 * hd], seed, 1.5);
        let (w_c, w) = pair(
            gpu,
            &[4 * hd, hd, 2, 1],
            seed + 1,
            1.5 / ((2 * hd) as f32).sqrt(),
        );
        let (_, dh) = pair(gpu, &[n, height, width, hd], seed + 2, 1.0);
        // The backward of both layouts from one set of states (the CPU's, so that the states
        // are not the layouts' own).
        let is_c = cpu_tensor(&is.shape, &is.to_vec(gpu).expect("download"));
        let s_c = Scan::Diagonal.forward(&cpu, &is_c, &w_c, Recurrence::Fused);
        let state = LstmState {
            h: to_gpu(gpu, &s_c.h),
            c: to_gpu(gpu, &s_c.c),
            gates: to_gpu(gpu, &s_c.gates),
        };
        for rec in RECURRENCES {
            let what = format!("Diagonal n={n} {height}x{width} h={hd} {rec:?}");
            let run = |layout: DiagLstmLayout| {
                let _layout = gpu.select(diag_layout(layout));
                let s = Scan::Diagonal.forward(gpu, &is, &w, rec);
                let (d_is, dw) = Scan::Diagonal.backward(gpu, &state, &w, &dh, rec);
                [s.h, s.c, s.gates, d_is, dw].map(|t| t.to_vec(gpu).expect("download"))
            };
            let folded = run(DiagLstmLayout::Folded);
            let materialised = run(DiagLstmLayout::Materialised);
            for (name, (f, m)) in ["h", "c", "gates", "d_is", "d_w_ss"]
                .iter()
                .zip(folded.iter().zip(&materialised))
            {
                let err = rel_err(&format!("{what}: {name} folded vs materialised"), f, m);
                assert!(
                    err <= FP32_REL_TOL,
                    "{what}: {name} folded vs materialised on CUDA: relative error {err:.3e}"
                );
            }
        }
    }

    // Layouts are typed: an unknown one is refused when it is named, before any launch.
    match DiagLstmLayout::try_from(3) {
        Err(pixelrnn::error::Error::Unsupported(_)) => {}
        Err(e) => panic!("layout 3: expected Unsupported, got {e}"),
        Ok(_) => panic!("layout 3: expected an error, got a result"),
    }
}

/// The one-position steps, swept over every position in raster order from maps full of NaN,
/// reproduce the full (fused) forward's h and c: every position is written and nothing but
/// the earlier positions is read.
pub fn check_forward_at<E: Executor>(gpu: &CudaBackend<E>) {
    let cases = [
        (Scan::Row(3), [2, 5, 7, 3]),
        (Scan::Row(1), [1, 3, 4, 2]),
        (Scan::Diagonal, [2, 5, 7, 3]),
        (Scan::Diagonal, [1, 6, 3, 2]),
    ];
    let cpu = CpuBackend::new();
    for (case, (scan, [n, height, width, hd])) in cases.into_iter().enumerate() {
        let what = format!("{scan:?} forward_at n={n} {height}x{width} h={hd}");
        let seed = 100 + 10 * case as u64;
        let g = 4 * hd;
        let is_data = random(seed, n * height * width * g, 1.5);
        let is_c = cpu_tensor(&[n, height, width, g], &is_data);
        let w_shape = scan.weight_shape(hd);
        let (w_c, w_g) = pair(gpu, &w_shape, seed + 1, 0.6);
        let want = scan.forward(&cpu, &is_c, &w_c, Recurrence::Fused);

        let hs = [n, height, width, hd];
        let nan = vec![f32::NAN; n * height * width * hd];
        let mut h = Tensor::from_slice(gpu, &hs, &nan).expect("upload");
        let mut c = Tensor::from_slice(gpu, &hs, &nan).expect("upload");
        for i in 0..height {
            for j in 0..width {
                let at: Vec<f32> = (0..n)
                    .flat_map(|b| {
                        let p = ((b * height + i) * width + j) * g;
                        is_data[p..p + g].iter().copied()
                    })
                    .collect();
                let is_at = Tensor::from_slice(gpu, &[n, g], &at).expect("upload");
                scan.forward_at(gpu, &is_at, &w_g, &mut h, &mut c, i, j)
                    .unwrap_or_else(|e| panic!("{what} at ({i}, {j}): {e}"));
            }
        }
        assert_close(&format!("{what}: h"), gpu, &h, &want.h, FP32_REL_TOL);
        assert_close(&format!("{what}: c"), gpu, &c, &want.c, FP32_REL_TOL);

        // Copy on write: a clone taken before a step keeps its contents.
        let before = h.clone();
        let snapshot = before.to_vec(gpu).expect("download");
        let is_at = Tensor::from_slice(gpu, &[n, g], &vec![0.25; n * g]).expect("upload");
        scan.forward_at(gpu, &is_at, &w_g, &mut h, &mut c, height - 1, width - 1)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            before.to_vec(gpu).expect("download"),
            snapshot,
            "{what}: the step wrote into a shared buffer"
        );
    }
}

/// Skew and unskew, wide, square and tall maps, against the CPU.
pub fn check_skew<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let shapes: [[usize; 4]; 5] = [
        [2, 3, 5, 4],
        [1, 4, 4, 1],
        [1, 6, 3, 2],
        [2, 1, 1, 3],
        [1, 7, 2, 5],
    ];
    for (k, shape) in shapes.into_iter().enumerate() {
        let (x_c, x_g) = pair(gpu, &shape, 200 + k as u64, 1.0);
        let want = cpu.skew(&x_c).expect("cpu skew");
        let got = gpu.skew(&x_g).expect("gpu skew");
        assert_close(&format!("skew {shape:?}"), gpu, &got, &want, EXACT);

        // unskew of a skewed map full of values (padding too), and round trip.
        let (s_c, s_g) = pair(gpu, &want.shape, 300 + k as u64, 1.0);
        let want = cpu.unskew(&s_c).expect("cpu unskew");
        let got = gpu.unskew(&s_g).expect("gpu unskew");
        assert_close(&format!("unskew {:?}", s_c.shape), gpu, &got, &want, EXACT);
        let back = gpu.unskew(&gpu.skew(&x_g).expect("skew")).expect("unskew");
        assert_close(&format!("unskew(skew) {shape:?}"), gpu, &back, &x_c, EXACT);
    }
}

/// Mirror, shift down and shift up against the CPU, including H > W and one-row maps.
pub fn check_mirror_shift<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let shapes: [[usize; 4]; 4] = [[2, 3, 5, 4], [1, 6, 3, 2], [1, 1, 7, 3], [3, 4, 1, 1]];
    for (k, shape) in shapes.into_iter().enumerate() {
        let (x_c, x_g) = pair(gpu, &shape, 400 + k as u64, 1.0);
        for name in ["mirror_width", "shift_down", "shift_up"] {
            let (want, got) = match name {
                "mirror_width" => (cpu.mirror_width(&x_c), gpu.mirror_width(&x_g)),
                "shift_down" => (cpu.shift_down(&x_c), gpu.shift_down(&x_g)),
                _ => (cpu.shift_up(&x_c), gpu.shift_up(&x_g)),
            };
            let want = want.expect("cpu");
            let got = got.unwrap_or_else(|e| panic!("{name} {shape:?}: {e}"));
            assert_close(&format!("{name} {shape:?}"), gpu, &got, &want, EXACT);
        }
    }
}

/// Bad operands are shape errors, never launches.
pub fn check_shape_errors<E: Executor>(gpu: &CudaBackend<E>) {
    let zeros = |shape: &[usize]| Tensor::zeros(gpu, shape).expect("zeros");
    let is = zeros(&[1, 3, 4, 8]);
    let rec = Recurrence::Fused;
    let is_shape = |r: pixelrnn::error::Result<_>, what: &str| match r {
        Err(pixelrnn::error::Error::Shape { .. }) => {}
        Err(e) => panic!("{what}: expected a shape error, got {e}"),
        Ok(_) => panic!("{what}: expected a shape error, got a result"),
    };
    is_shape(
        gpu.row_lstm_forward(&is, &zeros(&[8, 2, 1, 2]), rec)
            .map(|_| ()),
        "even k",
    );
    is_shape(
        gpu.row_lstm_forward(&is, &zeros(&[8, 3, 1, 3]), rec)
            .map(|_| ()),
        "weight of another h",
    );
    is_shape(
        gpu.diag_lstm_forward(&is, &zeros(&[8, 2, 1, 3]), rec)
            .map(|_| ()),
        "row weight for the diagonal scan",
    );
    is_shape(
        gpu.diag_lstm_forward(&zeros(&[1, 3, 4, 6]), &zeros(&[8, 2, 2, 1]), rec)
            .map(|_| ()),
        "features not 4h",
    );
    let state = gpu
        .diag_lstm_forward(&is, &zeros(&[8, 2, 2, 1]), rec)
        .expect("forward");
    is_shape(
        gpu.diag_lstm_backward(&state, &zeros(&[8, 2, 2, 1]), &zeros(&[1, 3, 4, 3]), rec)
            .map(|_| ()),
        "dh of another shape",
    );
    let (mut h, mut c) = (zeros(&[1, 3, 4, 2]), zeros(&[1, 3, 4, 2]));
    is_shape(
        gpu.row_lstm_forward_at(&zeros(&[1, 8]), &zeros(&[8, 2, 1, 3]), &mut h, &mut c, 3, 0),
        "position outside",
    );
    is_shape(
        gpu.diag_lstm_forward_at(&zeros(&[1, 4]), &zeros(&[8, 2, 2, 1]), &mut h, &mut c, 0, 0),
        "pre-activations of another h",
    );
    is_shape(
        gpu.skew(&zeros(&[1, 3, 0, 2])).map(|_| ()),
        "skew of width 0",
    );
    is_shape(
        gpu.unskew(&zeros(&[1, 3, 6, 2])).map(|_| ()),
        "unskew of no image's width",
    );
    is_shape(
        gpu.mirror_width(&zeros(&[3, 4])).map(|_| ()),
        "mirror of a matrix",
    );
    is_shape(
        gpu.shift_down(&zeros(&[3, 4, 5])).map(|_| ()),
        "shift of a 3-d tensor",
    );
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
                    if exact && *name != "d_w_ss" {
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

/// The memory counters of the recurrence kernels, v1, v2 and v3 (backward only), at the size of issue 17's
/// table: h = 128, a 32 x 32 map, n = 2, one step (Row LSTM row 16, Diagonal LSTM
/// anti-diagonal 31, the longest), launched directly so that only that step is emulated;
/// the weight gradients (one launch for the whole map) on n = 1, 4 x 32 for v1 (one thread
/// per weight element loops over every position: its per-request pattern does not depend on
/// the map) and both sizes for v2. Prints one markdown row per kernel: global requests,
/// sectors/request and efficiency over all global sites (byte-weighted), the worst site's
/// efficiency, shared requests and mean conflict degree. A measurement, not a check:
/// `cargo test --release --test cuda -- --ignored --nocapture recurrence_counters`.
#[test]
#[ignore = "measurement (minutes on the emulator): prints the counters table of docs/kernels.md"]
fn recurrence_counters() {
    use pixelrnn::backend::cuda::{AccessOp, Arg, EmuOptions, LaunchCfg, LaunchCounters, MemSpace};
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: false,
    })
    .expect("emulator")
    .with_counters(true);
    let buf = |data: &[f32]| {
        let mut b = emu.alloc(data.len()).expect("alloc");
        emu.upload_into(&mut b, data).expect("upload");
        b
    };
    let linear = |elements: usize| LaunchCfg::for_elements(elements, 256, 65_535);
    // v2: 16 positions x 32 units per block; v3 (the backward step kernels): x 128 units.
    let tiles = |n: usize, len: usize, hd: usize, units: usize| LaunchCfg {
        grid: [(n * len.div_ceil(16)) as u32, hd.div_ceil(units) as u32, 1],
        block: [128, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let report = |c: &LaunchCounters| {
        let global: Vec<_> = c
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Global)
            .collect();
        let shared: Vec<_> = c
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Shared)
            .collect();
        let sum = |v: &[&pixelrnn::backend::cuda::SiteCounters],
                   f: fn(&pixelrnn::backend::cuda::SiteCounters) -> u64| {
            v.iter().map(|s| f(s)).sum::<u64>()
        };
        let (req, sec, uniq) = (
            sum(&global, |s| s.requests),
            sum(&global, |s| s.sectors),
            sum(&global, |s| s.unique_bytes),
        );
        let worst = global
            .iter()
            .filter(|s| s.op != AccessOp::Atomic)
            .map(|s| s.efficiency())
            .fold(1.0f64, f64::min);
        let (sreq, swave) = (sum(&shared, |s| s.requests), sum(&shared, |s| s.wavefronts));
        let heaviest = global.iter().max_by_key(|s| s.sectors).map(|s| {
            format!(
                "{:?} {} B: {:.1} sectors/req, {:.3}",
                s.op,
                s.access_bytes,
                s.sectors_per_request(),
                s.efficiency()
            )
        });
        println!(
            "| `{}` | {}x{}x{} / {} | {} | {:.2} | {:.3} | {:.3} | {} | {} | {} | {} |",
            c.kernel,
            c.grid[0],
            c.grid[1],
            c.grid[2],
            c.block[0],
            req,
            sec as f64 / req.max(1) as f64,
            uniq as f64 / (32 * sec).max(1) as f64,
            worst,
            heaviest.unwrap_or_default(),
            sreq,
            if sreq == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", swave as f64 / sreq as f64)
            },
            c.compulsory_bytes(),
        );
    };
    println!(
        "| kernel | grid / block | global requests | sectors/request | efficiency (byte-weighted) \
         | worst site | heaviest site | shared requests | conflict degree | compulsory bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");

    let (n, hh, ww, hd, k) = (2usize, 32usize, 32usize, 128usize, 3usize);
    let g4 = 4 * hd;
    let map = |f: usize, seed: u64| buf(&random(seed, n * hh * ww * f, 1.0));
    let ints = |v: &[usize]| v.iter().map(|&x| Arg::I32(x as i32)).collect::<Vec<_>>();
    for diagonal in [false, true] {
        let taps = if diagonal { 2 } else { k };
        let wlen = g4 * hd * taps;
        let w = buf(&random(700, wlen, 0.1));
        let (is, h, c, gates, dh, dc, d_is, dhc) = (
            map(g4, 701),
            map(hd, 702),
            map(hd, 703),
            map(g4, 704),
            map(hd, 705),
            map(hd, 706),
            map(g4, 707),
            map(hd, 708),
        );
        let mut packed = [
            emu.alloc(wlen).expect("alloc"),
            emu.alloc(wlen).expect("alloc"),
        ];
        for (t, p) in packed.iter_mut().enumerate() {
            let args = [Arg::Buf(&w), Arg::Buf(p)]
                .into_iter()
                .chain(ints(&[hd, taps, t]))
                .collect::<Vec<_>>();
            emu.launch("lstm_pack_ss_v2", &linear(wlen), &args)
                .expect("pack");
        }
        let scan = if diagonal { "diag_lstm" } else { "row_lstm" };
        // One step: row 16 / anti-diagonal 31 (32 positions per image either way).
        let (step, len) = if diagonal {
            (31usize, 32usize)
        } else {
            (16, ww)
        };
        let mut tail = vec![n, hh, ww, hd];
        if !diagonal {
            tail.push(k);
        }
        tail.push(step);
        for v in [1u32, 2, 3] {
            if diagonal && pixelrnn::kernels::signature(&format!("{scan}_step_bwd_v{v}")).is_none()
            {
                continue;
            }
            let wf = if v == 1 { &w } else { &packed[0] };
            let wb = if v == 1 { &w } else { &packed[1] };
            let cfg = |elements: usize| match v {
                1 => linear(elements),
                2 => tiles(n, len, hd, 32),
                _ => tiles(n, len, hd, 128),
            };
            let run = |name: &str, bufs: Vec<Arg<'_, Emulator>>, cfg: LaunchCfg| {
                let args: Vec<_> = bufs.into_iter().chain(ints(&tail)).collect();
                emu.launch(&format!("{scan}_{name}_v{v}"), &cfg, &args)
                    .expect(name);
            };
            // v3 has backward step kernels only (its forward is v2's).
            if v < 3 {
                run(
                    "step_fwd",
                    vec![
                        Arg::Buf(&is),
                        Arg::Buf(wf),
                        Arg::Buf(&h),
                        Arg::Buf(&c),
                        Arg::Buf(&gates),
                    ],
                    cfg(n * len * hd),
                );
            }
            run(
                "step_bwd",
                vec![
                    Arg::Buf(wb),
                    Arg::Buf(&gates),
                    Arg::Buf(&c),
                    Arg::Buf(&dh),
                    Arg::Buf(&dc),
                    Arg::Buf(&d_is),
                ],
                cfg(n * len * hd),
            );
            if v < 3 {
                run(
                    "ss_fwd",
                    vec![Arg::Buf(&is), Arg::Buf(wf), Arg::Buf(&h), Arg::Buf(&gates)],
                    cfg(n * len * g4),
                );
            }
            run(
                "ss_bwd_data",
                vec![Arg::Buf(wb), Arg::Buf(&d_is), Arg::Buf(&dhc)],
                cfg(n * len * hd),
            );
        }
        // The weight gradients: v1 on n = 1, 4 x 32; v2 on that and on the whole map.
        let dw = emu.alloc(wlen).expect("alloc");
        let small = [1usize, 4, 32, hd];
        let mut v1_tail = small.to_vec();
        if !diagonal {
            v1_tail.push(k);
        }
        let args: Vec<_> = [Arg::Buf(&h), Arg::Buf(&d_is), Arg::Buf(&dw)]
            .into_iter()
            .chain(ints(&v1_tail))
            .collect();
        emu.launch(&format!("{scan}_ss_bwd_weight_v1"), &linear(wlen), &args)
            .expect("weight v1");
        for [nn, h2, w2] in [[1usize, 4, 32], [n, hh, ww]] {
            let positions = nn * h2 * w2;
            let (mt, nt) = (g4.div_ceil(64), (taps * hd).div_ceil(64));
            let splits_chunk = weight_split(positions, mt * nt);
            let partial = emu
                .alloc(splits_chunk.0 * mt * 64 * nt * 64)
                .expect("alloc");
            let cfg = LaunchCfg {
                grid: [nt as u32, mt as u32, splits_chunk.0 as u32],
                block: [64, 1, 1],
                shared_bytes: 0,
                cluster: [1, 1, 1],
                flops: 0,
            };
            let args: Vec<_> = [Arg::Buf(&h), Arg::Buf(&d_is), Arg::Buf(&partial)]
                .into_iter()
                .chain(ints(&[
                    nn,
                    h2,
                    w2,
                    hd,
                    taps,
                    usize::from(diagonal),
                    splits_chunk.1,
                ]))
                .collect();
            emu.launch("lstm_ss_bwd_weight_v2", &cfg, &args)
                .expect("weight v2");
            let args: Vec<_> = [Arg::Buf(&partial), Arg::Buf(&dw)]
                .into_iter()
                .chain(ints(&[hd, taps, splits_chunk.0, mt * 64, nt * 64]))
                .collect();
            emu.launch("lstm_ss_bwd_weight_sum_v2", &linear(wlen), &args)
                .expect("weight sum");
        }
        for c in emu.take_counters() {
            report(&c);
        }
    }
}

/// The host's split of the weight gradient GEMM (`weight_grad_split` in
/// src/backend/cuda/lstm.rs), restated for the direct launches of `recurrence_counters`.
fn weight_split(positions: usize, tiles: usize) -> (usize, usize) {
    let by_size = positions.div_ceil(256).max(1);
    let by_grid = 264usize.div_ceil(tiles.max(1)).max(1);
    let want = by_size.min(by_grid).min(65_535);
    let chunk = positions.div_ceil(want).next_multiple_of(16).max(16);
    (positions.div_ceil(chunk).max(1), chunk)
}

/// The version selection reaches the launches: under each version of each scan (the
/// Diagonal LSTM in both layouts), the forward and backward of every stepwise recurrence
/// launch that version's kernels (and v2 its pack and weight gradient GEMM), as the
/// emulator's counters record them, the persistent kernels included (v2 without a pack).
#[test]
fn each_version_launches_its_kernels() {
    use pixelrnn::backend::cuda::EmuOptions;
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    let gpu = CudaBackend::with_options(emu, true);
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
                // other kernel of a v3 scan is v2's.
                let version_of = |pass: &str| {
                    if v == 3 && !pass.contains("bwd") {
                        2
                    } else {
                        v
                    }
                };
                for pass in passes {
                    let want = version_of(pass);
                    for other in scan_versions(scan) {
                        let name = format!("{op}_{pass}_v{other}");
                        assert_eq!(has(&name), other == want, "{tag}: {name}");
                    }
                }
                if rec == Recurrence::Persistent {
                    // The persistent kernels have v1 and v2; v3 runs v2's.
                    let want = v.min(2);
                    for pass in ["fwd", "bwd"] {
                        for other in [1, 2] {
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
                assert_eq!(has("lstm_ss_bwd_weight_v2"), v >= 2, "{tag}");
                assert_eq!(
                    has(&format!("{weight_op}_ss_bwd_weight_v1")),
                    v == 1,
                    "{tag}"
                );
            }
        }
    }
}
