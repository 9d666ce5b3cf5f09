//! Parity of the recurrences' tensor-core fused step kernels (kernels/row_lstm_mma.cu,
//! kernels/diag_lstm_mma.cu, bodies in kernels/lstm_mma.cuh) with their CPU twin: the CPU
//! backend's Row LSTM and Diagonal LSTM at the same precision (the state-to-state products'
//! operands rounded, fp32 accumulation). For tf32 and bf16, both scans, the whole fused
//! recurrence forward (h, c, gates) and backward (d_is, d_w_ss) on shapes ragged against the
//! 128-position x 64-column tiles and the K chunks of 16 (h not a multiple of 8 or 16, one
//! image, a step of more than 128 positions, several unit tiles), outputs NaN-poisoned (the
//! emulated backend poisons every uninitialised tensor), every scheduling seed. Each precision
//! also checks that the twin is further from the fp32 run than the tolerance, so that a kernel
//! that skipped the rounding fails; and a mutant kernel that swaps A fragment registers
//! (`<scan>_step_{fwd,bwd}_tf32_swapped_v1`) is shown to miss the kernel it mutates by far
//! more than the tolerance.
//!
//! Tolerances ([`tolerance`]): relative L2 over each output. The GEMM outputs alone would be
//! within [`MMA_REL_TOL`] (the products of rounded operands are exact in fp32; twin and
//! kernel differ in the order of the fp32 additions). The recurrence compounds that: step
//! s + 1 rounds the h that step s computed, and an fp32-ulp difference in h can move its
//! rounded value by one tf32 / bf16 ulp (2^-11 / 2^-8 relative), which then propagates through
//! the later steps and the backward. The bounds are a few times the largest error measured on
//! these cases (stated with the constants).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    Arg, CudaBackend, EmuOptions, Emulator, Executor, LaunchCfg,
};
use pixelrnn::backend::{Backend, LstmState, Precision, Recurrence};
use pixelrnn::parity::{l2_rel_err, MMA_REL_TOL};
use pixelrnn::tensor::Tensor;

use crate::{pair, random, rel_err};

crate::parity_tests! {
    lstm_mma_fused_recurrence => super::check_lstm_mma,
}

/// Relative L2 bound of the fused recurrence's outputs at `precision` (measured maxima over
/// the cases below, both seeds: see the module doc).
fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::Tf32 => TF32_TOL,
        _ => BF16_TOL,
    }
}
const TF32_TOL: f64 = 2e-3;
const BF16_TOL: f64 = 2e-2;

/// One recurrence: the scan (`k`: the Row LSTM's kernel width; `None`: Diagonal), images and
/// map, hidden units.
struct Case {
    k: Option<usize>,
    n: usize,
    height: usize,
    width: usize,
    hidden: usize,
}

fn cases() -> Vec<Case> {
    let row = |k, n, height, width, hidden| Case {
        k: Some(k),
        n,
        height,
        width,
        hidden,
    };
    let diag = |n, height, width, hidden| Case {
        k: None,
        n,
        height,
        width,
        hidden,
    };
    vec![
        // One image, h = 3: one ragged K chunk (K = 9), one unit of 16 / 64 live per tile row.
        row(3, 1, 3, 4, 3),
        // h = 17: two forward unit tiles (16 + 1), K = 5 x 17 = 85 (ragged chunk).
        row(5, 2, 4, 7, 17),
        // 3 x 45 = 135 positions per row: two position tiles, the second 7 rows; h = 70: two
        // backward unit tiles (64 + 6), five forward ones.
        row(3, 3, 3, 45, 70),
        // The Diagonal LSTM: anti-diagonals of 1 .. min(H, W) positions, h = 9 (K = 18).
        diag(2, 5, 4, 9),
        diag(1, 3, 6, 20),
    ]
}

impl Case {
    fn what(&self) -> String {
        match self.k {
            Some(k) => format!(
                "row_lstm k={k} n={} {}x{} h={}",
                self.n, self.height, self.width, self.hidden
            ),
            None => format!(
                "diag_lstm n={} {}x{} h={}",
                self.n, self.height, self.width, self.hidden
            ),
        }
    }

    fn w_shape(&self) -> [usize; 4] {
        let h = self.hidden;
        match self.k {
            Some(k) => [4 * h, h, 1, k],
            None => [4 * h, h, 2, 1],
        }
    }

    fn forward<B: Backend>(
        &self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
    ) -> pixelrnn::error::Result<LstmState<B>> {
        match self.k {
            Some(_) => be.row_lstm_forward(is, w, Recurrence::Fused),
            None => be.diag_lstm_forward(is, w, Recurrence::Fused),
        }
    }

    fn backward<B: Backend>(
        &self,
        be: &B,
        state: &LstmState<B>,
        w: &Tensor<B>,
        dh: &Tensor<B>,
    ) -> pixelrnn::error::Result<(Tensor<B>, Tensor<B>)> {
        match self.k {
            Some(_) => be.row_lstm_backward(state, w, dh, Recurrence::Fused),
            None => be.diag_lstm_backward(state, w, dh, Recurrence::Fused),
        }
    }
}

fn host<E: Executor>(gpu: &CudaBackend<E>, t: &Tensor<CudaBackend<E>>, what: &str) -> Vec<f32> {
    t.to_vec(gpu)
        .unwrap_or_else(|e| panic!("{what}: download: {e}"))
}

/// The fused recurrence of every case at tf32 and bf16 against the twin at the same precision.
pub fn check_lstm_mma<E: Executor>(gpu: &CudaBackend<E>) {
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let cpu = CpuBackend::new();
        cpu.set_precision(precision);
        let fp32 = CpuBackend::new();
        let tol = tolerance(precision);
        // The twin's distance from fp32, pooled over every output of every case: if it is
        // above the tolerance, some output of a kernel that computed in fp32 would be too.
        let (mut gap_num, mut gap_den) = (0.0f64, 0.0f64);
        for (i, c) in cases().iter().enumerate() {
            let seed = 900 + 10 * i as u64;
            let (n, h, w, hd) = (c.n, c.height, c.width, c.hidden);
            let (is_c, is_g) = pair(gpu, &[n, h, w, 4 * hd], seed, 1.0);
            let (w_c, w_g) = pair(gpu, &c.w_shape(), seed + 1, 0.5);
            let (dh_c, dh_g) = pair(gpu, &[n, h, w, hd], seed + 2, 1.0);
            let what = |part: &str| format!("{} {precision} {part}", c.what());

            let want = c.forward(&cpu, &is_c, &w_c).expect("cpu forward");
            let (d_is_want, dw_want) = c.backward(&cpu, &want, &w_c, &dh_c).expect("cpu backward");
            let got = c
                .forward(gpu, &is_g, &w_g)
                .unwrap_or_else(|e| panic!("{}: {e}", what("forward")));
            let (d_is, dw) = c
                .backward(gpu, &got, &w_g, &dh_g)
                .unwrap_or_else(|e| panic!("{}: {e}", what("backward")));
            let ref32 = c.forward(&fp32, &is_c, &w_c).expect("fp32 forward");
            let (d_is32, dw32) = c.backward(&fp32, &ref32, &w_c, &dh_c).expect("fp32 backward");
            for (part, g, t, f) in [
                ("h", &got.h, &want.h, &ref32.h),
                ("c", &got.c, &want.c, &ref32.c),
                ("gates", &got.gates, &want.gates, &ref32.gates),
                ("d_is", &d_is, &d_is_want, &d_is32),
                ("d_w_ss", &dw, &dw_want, &dw32),
            ] {
                assert_eq!(g.shape, t.shape, "{}: shapes differ", what(part));
                let err = rel_err(&what(part), &host(gpu, g, part), &t.data);
                eprintln!("{}: rel err {err:.3e}", what(part));
                assert!(err <= tol, "{}: rel err {err:.3e} > {tol:.1e}", what(part));
                for (a, b) in t.data.iter().zip(&f.data) {
                    gap_num += (f64::from(*a) - f64::from(*b)).powi(2);
                    gap_den += f64::from(*a).powi(2);
                }
            }
        }
        let gap = (gap_num / gap_den).sqrt();
        eprintln!("{precision}: twin vs fp32, pooled rel distance {gap:.3e}");
        assert!(
            gap > tol,
            "{precision}: the twin is within {gap:.3e} of fp32: the data does not show rounding"
        );
    }
    gpu.set_precision(Precision::Fp32);
}

fn emu() -> Emulator {
    Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
}

fn upload(e: &Emulator, data: &[f32]) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(data.len()).expect("alloc");
    e.upload_into(&mut b, data).expect("upload");
    b
}

/// `w` ([4h, h, taps]) packed as lstm_pack_ss_v2 does: forward `[taps, h, 4, h]`, transposed
/// `[taps, 4h, h]`.
fn pack(w: &[f32], hidden: usize, taps: usize, transposed: bool) -> Vec<f32> {
    let mut p = vec![0.0; w.len()];
    for o in 0..4 * hidden {
        for v in 0..hidden {
            for t in 0..taps {
                let (x, u) = (o / hidden, o % hidden);
                let dst = if transposed {
                    (t * 4 * hidden + o) * hidden + v
                } else {
                    ((t * hidden + v) * 4 + x) * hidden + u
                };
                p[dst] = w[(o * hidden + v) * taps + t];
            }
        }
    }
    p
}

/// One step of `kernel` (a Row LSTM step kernel, forward or backward) on fixed random inputs:
/// the step's output (h of row 1 forward, d_is of row 0 backward).
fn one_step(kernel: &str, fwd: bool) -> Vec<f32> {
    let (n, height, width, hd, k) = (2usize, 2usize, 9usize, 24usize, 3usize);
    let e = emu();
    let w = random(51, 4 * hd * hd * k, 0.5);
    let wp = upload(&e, &pack(&w, hd, k, !fwd));
    let map = n * height * width;
    let a = upload(&e, &random(52, map * 4 * hd, 1.0));
    let b = upload(&e, &random(53, map * hd, 1.0));
    let c = upload(&e, &random(54, map * hd, 1.0));
    let d = upload(&e, &random(55, map * hd, 1.0));
    let gates = upload(&e, &random(56, map * 4 * hd, 0.9));
    let units = if fwd { 16 } else { 64 };
    let cfg = LaunchCfg {
        grid: [
            (n * width).div_ceil(128) as u32,
            hd.div_ceil(units) as u32,
            1,
        ],
        block: [256, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let dims = [n, height, width, hd, k].map(|x| Arg::I32(x as i32));
    let row = Arg::I32(if fwd { 1 } else { 0 });
    // Forward: is = a, h = b (row 0 read, row 1 written), c = c, gates. Backward: gates, c,
    // dh = b, dc_carry = d, d_is = a (row 1 read, row 0 written).
    let mut args = if fwd {
        vec![
            Arg::Buf(&a),
            Arg::Buf(&wp),
            Arg::Buf(&b),
            Arg::Buf(&c),
            Arg::Buf(&gates),
        ]
    } else {
        vec![
            Arg::Buf(&wp),
            Arg::Buf(&gates),
            Arg::Buf(&c),
            Arg::Buf(&b),
            Arg::Buf(&d),
            Arg::Buf(&a),
        ]
    };
    args.extend(dims);
    args.push(row);
    e.launch(kernel, &cfg, &args)
        .unwrap_or_else(|err| panic!("{kernel}: {err}"));
    // The rows the step wrote: row 1 of every image's h, row 0 of every image's d_is.
    let (buf, feat, r) = if fwd { (&b, hd, 1) } else { (&a, 4 * hd, 0) };
    let all = e.download(buf, map * feat).unwrap();
    let row_len = width * feat;
    (0..n)
        .flat_map(|img| {
            let at = (img * height + r) * row_len;
            all[at..at + row_len].to_vec()
        })
        .collect()
}

/// A kernel whose A fragments have registers 0 <-> 2 and 1 <-> 3 swapped misses the kernel it
/// mutates by far more than the parity tolerance, forward and backward: the parity check above
/// (which the unmutated kernel passes) would fail it.
#[test]
fn a_step_kernel_that_swaps_fragment_registers_fails() {
    for (pass, fwd) in [("fwd", true), ("bwd", false)] {
        let good = one_step(&format!("row_lstm_step_{pass}_tf32_v1"), fwd);
        let bad = one_step(&format!("row_lstm_step_{pass}_tf32_swapped_v1"), fwd);
        let err = l2_rel_err(&bad, &good);
        assert!(
            err > 10.0 * TF32_TOL,
            "step_{pass}: the swapped kernel is only {err:.3e} from the tested one"
        );
    }
}
