//! Parity of the recurrences' tensor-core weight gradient (kernels/lstm_mma_weight.cu,
//! `lstm_ss_bwd_weight_{tf32,bf16}_v2`, summed by `lstm_ss_bwd_weight_sum_v2`) with v1 (the
//! rounded SIMT GEMM of kernels/lstm.cu) and with references at the same precision:
//! - `direct`: both kernels launched on random `h` and `d_is` against a float64 reference of
//!   the rounded operands whose gather is written from the scans' definitions ((row, column)
//!   coordinates, not the kernels' `p - back`), both scans, shapes ragged against the 128 x 64
//!   tile and the K chunk of 16 (h = 3, 9, 17, 40 and 128; one image; K = 15, 20, 77 ..),
//!   several splits, partials and dw NaN-poisoned, every scheduling seed;
//! - `recurrence`: the whole fused backward at tf32 / bf16 with v2 selected (the default)
//!   against v1 selected and against the CPU twin's d_w_ss (src/backend/cpu/lstm.rs at the
//!   same precision), which checks the Diagonal LSTM's folded h as the backward passes it;
//! - a mutant (`lstm_ss_bwd_weight_tf32_swapped_v2`, A fragment registers 0 <-> 2, 1 <-> 3)
//!   misses the kernel it mutates by far more than the tolerance.
//!
//! Tolerances: [`GEMM_TOL`] for the GEMM on identical operands (the products of two rounded
//! operands are exact in fp32; the kernels and the reference differ only in the order and the
//! fp32 rounding of the additions over K <= 1536 positions: measured below 1e-6, see the
//! constant); the recurrence against the CPU twin inherits d_is's bound of
//! tests/cuda/lstm_mma.rs (the twin's and the device's d_is differ by rounding compounded over
//! the steps).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor, LstmWeight, Variants};

use pixelrnn::backend::{round_bf16, round_tf32, Backend, Precision, Recurrence};
use pixelrnn::parity::l2_rel_err;

use crate::lstm_weight_cases::{cases, emulator, launch, print_counters_table, Tiling};
use crate::{pair, random, rel_err};

crate::parity_tests! {
    lstm_mma_weight_recurrence => super::check_recurrence,
}

/// Relative L2 bound of the weight gradient on identical rounded operands (v2 against the
/// float64 reference and against v1): fp32 summation order only. Measured on the cases below:
/// at most 1.0e-7 against float64, 0 against v1 (the emulator's mma accumulates in v1's order;
/// a GPU's tensor cores need not); a kernel that skipped the rounding is checked to be further than this from the
/// reference (the data shows rounding), an indexing or fragment bug gives errors of order 1.
const GEMM_TOL: f64 = 1e-5;

/// d_w_ss of the fused recurrence against the CPU twin: d_is's bound in tests/cuda/lstm_mma.rs
/// (2e-4; the device's and the twin's d_is differ by rounding compounded over the steps, and
/// d_w_ss is a product with d_is).
const RECURRENCE_TOL: f64 = 2e-4;

fn rounding(precision: &str) -> fn(f32) -> f32 {
    if precision == "tf32" {
        round_tf32
    } else {
        round_bf16
    }
}

/// v2 against the float64 reference of the rounded operands and against v1, every case, both
/// precisions, every scheduling seed; the data must show the rounding (the reference of the
/// unrounded operands is further than GEMM_TOL).
#[test]
fn direct() {
    for seed in crate::SCHEDULE_SEEDS {
        let e = emulator(seed);
        for (i, c) in cases().iter().enumerate() {
            let h = random(700 + i as u64, c.positions() * c.hidden, 1.0);
            let d_is = random(750 + i as u64, c.positions() * 4 * c.hidden, 1.0);
            for precision in ["tf32", "bf16"] {
                let what = format!("{} {precision} seed {seed}", c.what());
                let round = rounding(precision);
                let hr: Vec<f32> = h.iter().map(|&x| round(x)).collect();
                let dr: Vec<f32> = d_is.iter().map(|&x| round(x)).collect();
                let want = c.reference(&hr, &dr);
                let v2 = launch(
                    &e,
                    &format!("lstm_ss_bwd_weight_{precision}_v2"),
                    Tiling::Mma128x64,
                    c,
                    &h,
                    &d_is,
                );
                let v1 = launch(
                    &e,
                    &format!("lstm_ss_bwd_weight_{precision}_v1"),
                    Tiling::Simt64,
                    c,
                    &h,
                    &d_is,
                );
                let err = rel_err(&what, &v2, &want);
                let err_v1 = rel_err(&what, &v2, &v1);
                let gap = l2_rel_err(&c.reference(&h, &d_is), &want);
                eprintln!("{what}: v2 vs f64 {err:.3e}, vs v1 {err_v1:.3e}, rounding {gap:.3e}");
                assert!(
                    err <= GEMM_TOL,
                    "{what}: v2 vs f64 {err:.3e} > {GEMM_TOL:.1e}"
                );
                assert!(
                    err_v1 <= GEMM_TOL,
                    "{what}: v2 vs v1 {err_v1:.3e} > {GEMM_TOL:.1e}"
                );
                assert!(
                    gap > GEMM_TOL,
                    "{what}: the data does not show rounding ({gap:.3e})"
                );
            }
        }
    }
}

/// A v2 kernel whose A fragments have registers 0 <-> 2 and 1 <-> 3 swapped misses the tested
/// kernel by far more than GEMM_TOL: `direct` would fail it.
#[test]
fn a_weight_kernel_that_swaps_fragment_registers_fails() {
    let e = emulator(1);
    let c = cases()[1];
    let h = random(61, c.positions() * c.hidden, 1.0);
    let d_is = random(62, c.positions() * 4 * c.hidden, 1.0);
    let good = launch(
        &e,
        "lstm_ss_bwd_weight_tf32_v2",
        Tiling::Mma128x64,
        &c,
        &h,
        &d_is,
    );
    let bad = launch(
        &e,
        "lstm_ss_bwd_weight_tf32_swapped_v2",
        Tiling::Mma128x64,
        &c,
        &h,
        &d_is,
    );
    let err = l2_rel_err(&bad, &good);
    eprintln!("swapped vs tested: {err:.3e}");
    assert!(
        err > 1000.0 * GEMM_TOL,
        "the swapped kernel is only {err:.3e} from the tested one"
    );
}

/// The fused backward at tf32 / bf16: d_w_ss with v2 (the default) against v1 (the same d_is,
/// so GEMM_TOL) and against the CPU twin (RECURRENCE_TOL).
pub fn check_recurrence<E: Executor>(gpu: &CudaBackend<E>) {
    assert_eq!(Variants::default().lstm_weight, LstmWeight::V2);
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let cpu = CpuBackend::new();
        cpu.set_precision(precision);
        for (i, c) in [cases()[1], cases()[3], cases()[4]].iter().enumerate() {
            let seed = 800 + 10 * i as u64;
            let (n, hh, ww, hd) = (c.n, c.height, c.width, c.hidden);
            let (is_c, is_g) = pair(gpu, &[n, hh, ww, 4 * hd], seed, 1.0);
            let w_shape = match c.k {
                Some(k) => [4 * hd, hd, 1, k],
                None => [4 * hd, hd, 2, 1],
            };
            let (w_c, w_g) = pair(gpu, &w_shape, seed + 1, 0.5);
            let (dh_c, dh_g) = pair(gpu, &[n, hh, ww, hd], seed + 2, 1.0);
            let what = format!("{} {precision}", c.what());
            let run = |version: LstmWeight| {
                let _sel = gpu.select(Variants {
                    lstm_weight: version,
                    ..gpu.variants()
                });
                let st = match c.k {
                    Some(_) => gpu.row_lstm_forward(&is_g, &w_g, Recurrence::Fused),
                    None => gpu.diag_lstm_forward(&is_g, &w_g, Recurrence::Fused),
                }
                .unwrap_or_else(|e| panic!("{what}: forward: {e}"));
                let (_, dw) = match c.k {
                    Some(_) => gpu.row_lstm_backward(&st, &w_g, &dh_g, Recurrence::Fused),
                    None => gpu.diag_lstm_backward(&st, &w_g, &dh_g, Recurrence::Fused),
                }
                .unwrap_or_else(|e| panic!("{what}: backward: {e}"));
                dw.to_vec(gpu).expect("download")
            };
            let v2 = run(LstmWeight::V2);
            let v1 = run(LstmWeight::V1);
            let st = match c.k {
                Some(_) => cpu.row_lstm_forward(&is_c, &w_c, Recurrence::Fused),
                None => cpu.diag_lstm_forward(&is_c, &w_c, Recurrence::Fused),
            }
            .expect("cpu forward");
            let (_, want) = match c.k {
                Some(_) => cpu.row_lstm_backward(&st, &w_c, &dh_c, Recurrence::Fused),
                None => cpu.diag_lstm_backward(&st, &w_c, &dh_c, Recurrence::Fused),
            }
            .expect("cpu backward");
            let err_v1 = rel_err(&what, &v2, &v1);
            let err = rel_err(&what, &v2, &want.data);
            eprintln!("{what}: d_w_ss v2 vs v1 {err_v1:.3e}, vs twin {err:.3e}");
            assert!(err_v1 <= GEMM_TOL, "{what}: v2 vs v1 {err_v1:.3e}");
            assert!(err <= RECURRENCE_TOL, "{what}: v2 vs twin {err:.3e}");
        }
    }
    gpu.set_precision(Precision::Fp32);
}

/// The emulator's memory counters of the weight gradient GEMM, v1 (rounded SIMT) against v2
/// (mma), at tf32 on a cifar-large-like recurrence (h = 128; Row LSTM k = 3 and Diagonal) on
/// 4 images of 32 x 32 (4096 positions; the emulator's time bounds the size), each split as
/// the host splits it.
/// Prints one markdown row per kernel: grid, global efficiency (unique bytes / sector bytes
/// over every global site), sectors per request, shared words loaded, the worst shared site's
/// wavefronts over the ideal, and FLOPs per shared word loaded (FLOPs = 2 x positions x 4h x
/// taps*h). A measurement, not a check:
/// `cargo test --release --test cuda -- --ignored --nocapture lstm_mma_weight_counters`.
#[test]
#[ignore = "measurement (minutes on the emulator): the counters of docs/kernels.md"]
fn lstm_mma_weight_counters() {
    print_counters_table(&[
        ("lstm_ss_bwd_weight_tf32_v1", Tiling::Simt64),
        ("lstm_ss_bwd_weight_tf32_v2", Tiling::Mma128x64),
    ]);
}
