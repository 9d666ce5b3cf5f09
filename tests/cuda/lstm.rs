//! Parity of the recurrences (kernels/{lstm,row_lstm,diag_lstm}.cu) against their CPU twins:
//! Row LSTM and Diagonal LSTM forward (h, c, gates) and backward (d_is, d_w_ss) by the three
//! recurrence variants (unfused, fused, persistent) under every recurrence kernel version, the
//! variants against each other on CUDA, the Diagonal LSTM's two layouts on CUDA (skew folded
//! into the indexing, materialised skewed maps) against the CPU and against each other, and
//! the one-position steps of sampling against the full forward. The versions against each
//! other are in lstm_versions.rs, the moves (skew, mirror, shifts) and shape errors in
//! lstm_moves.rs, the counters measurement in lstm_counters.rs.
//!
//! Tolerances: the recurrences use `FP32_REL_TOL` (different summation orders and exp/tanh
//! implementations, a few ulp per element, carried through the scan).
//!
//! Shapes are small (the emulator runs one fiber per GPU thread on two cores) but cover odd
//! sizes, a batch of two, H < W and H > W, one hidden unit and several, k = 1, 3 and 5. The
//! persistent kernels take more cases per scan: state weights over the 48 KiB v1 stages in
//! shared memory (read from global memory instead), steps with more (position, unit) pairs
//! than the 1024 threads of a v1 block (threads loop), h = 128 (v2: clusters of 4 blocks,
//! each with its weight slice in opted-in shared memory) and clusters of several position
//! groups.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, Executor, Variants};
use pixelrnn::backend::{LstmState, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::lstm_scan::{persistent_staged, scan_version, scan_versions, Scan, RECURRENCES};
use crate::{assert_close, cpu_tensor, pair, random, rel_err, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    row_lstm => super::check_row_lstm,
    diag_lstm => super::check_diag_lstm,
    diag_lstm_materialised => super::check_diag_lstm_materialised,
    lstm_forward_at => super::check_forward_at,
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
/// indexing, `Materialised` materialises it; src/backend/cuda/variants/).
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
