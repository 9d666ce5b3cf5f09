//! The sampler's one-position step at tf32 and bf16 on CUDA (`<scan>_fwd_at_{tf32,bf16}_v1`,
//! kernels/row_lstm.cu and kernels/diag_lstm.cu, host side cuda/lstm_at.rs) against its CPU
//! twin `cpu::lstm_at::forward_at_precision` (the state-to-state operands, earlier states and
//! state weight, rounded; fp32 accumulation), both scans, Row LSTM kernels 1, 3 and 5:
//!
//! - one step at corners, edges and the interior, from maps of random earlier states whose
//!   entries at and after the position in raster order are NaN (the step must write its
//!   position and read nothing it may not): the written entries against the twin within
//!   [`STEP_TOL`], every other entry unchanged bit for bit;
//! - a raster sweep from maps full of NaN: forward_at over every position reproduces the fused
//!   forward at the same precision on CUDA (the tensor-core step kernels,
//!   tests/cuda/lstm_mma.rs) within [`SWEEP_TOL`], and the CPU twin's sweep (which the CPU
//!   side proves bit-identical to its fused forward, tests/lstm_tiles.rs) within the same.
//!
//! Each precision also checks that the twin is further from fp32 than twice the tolerance,
//! pooled over the cases (if every case were within the tolerance, so would the pooled
//! distance be), so that a kernel that skipped the rounding (the fp32 kernel used at tf32 or
//! bf16) fails some case. Shown with temporary edits, run and reverted: the fp32 kernel
//! selected at tf32 / bf16 misses the twin by 2.0e-4 / 2.0e-3 on one step and the fused
//! forward by 7.5e-5 / 5.4e-4 on the sweep; a Row LSTM kernel that rounded w_ss but not h, by
//! 1.5e-4 / 5.5e-5 (tf32). Outputs are NaN-poisoned (the maps' NaN entries; the emulated backend also poisons
//! fresh buffers), every scheduling seed.

use pixelrnn::backend::cpu::lstm::{forward_precision, Geometry, Scan};
use pixelrnn::backend::cpu::lstm_at::forward_at_precision;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{Backend, Precision, Recurrence};
use pixelrnn::parity::l2_rel_err;
use pixelrnn::tensor::Tensor;

use crate::{download, random, rel_err, FP32_REL_TOL};

crate::parity_tests! {
    lstm_at_precision_one_step => super::check_one_step,
    lstm_at_precision_raster_sweep => super::check_raster_sweep,
}

/// One step against the twin: the products of rounded operands are exact in fp32 (both sides
/// round the same values with the same conversions), so kernel and twin differ only in the
/// order of the fp32 additions of the pre-activation (the kernel: taps, then units ascending,
/// per gate; the twin: its tiled GEMM), as at fp32: the fp32 bound. Measured on the cases
/// below (both scheduling seeds alike): at most 1.3e-7 (tf32) and 1.5e-7 (bf16); the twin's
/// distance from fp32 is 1.6e-4 (tf32) and 1.3e-3 (bf16), printed with --nocapture.
const STEP_TOL: f64 = FP32_REL_TOL;

/// The sweep against the fused forward at the same precision: the fused path on CUDA is the
/// tensor-core steps, which add in another order, so h differs from the sweep's by fp32 ulps
/// at some position, and the next position that reads it may round it to a neighbouring tf32 /
/// bf16 value (2^-11 / 2^-8 relative), which then propagates through the later positions and
/// the cell state. The bound of tests/cuda/lstm_mma.rs's forward (`FWD_TOL`, a few times the
/// largest error it measured, on larger cases than these) for the same compounding. Measured
/// on the cases below: against the fused forward at most 5.0e-6 (tf32) and 6.7e-8 (bf16),
/// against the twin's sweep at most 9.1e-8; the twin's distance from fp32 is 8.8e-5 (tf32)
/// and 7.2e-4 (bf16).
const SWEEP_TOL: f64 = 2e-5;

/// One recurrence: scan, images, map, hidden units.
struct Case {
    scan: Scan,
    n: usize,
    height: usize,
    width: usize,
    hidden: usize,
}

fn cases() -> Vec<Case> {
    let case = |scan, n, height, width, hidden| Case {
        scan,
        n,
        height,
        width,
        hidden,
    };
    vec![
        case(Scan::Row { k: 3 }, 2, 4, 5, 9),
        case(Scan::Row { k: 5 }, 1, 3, 6, 17),
        case(Scan::Row { k: 1 }, 3, 3, 2, 4),
        case(Scan::Diagonal, 2, 4, 5, 9),
        case(Scan::Diagonal, 1, 5, 3, 17),
    ]
}

impl Case {
    fn geo(&self) -> Geometry {
        Geometry {
            scan: self.scan,
            height: self.height,
            width: self.width,
            hidden: self.hidden,
        }
    }

    fn what(&self, precision: Precision) -> String {
        format!(
            "{:?} n={} {}x{} h={} at {precision}",
            self.scan, self.n, self.height, self.width, self.hidden
        )
    }

    fn map_len(&self) -> usize {
        self.n * self.height * self.width * self.hidden
    }

    fn w_shape(&self) -> Vec<usize> {
        self.geo().weight_shape().to_vec()
    }

    /// The images' input-to-state pre-activations at position (i, j): `[n, 4h]` of the
    /// `[n, H, W, 4h]` map `is`.
    fn is_at(&self, is: &[f32], i: usize, j: usize) -> Vec<f32> {
        let g = 4 * self.hidden;
        (0..self.n)
            .flat_map(|b| {
                let p = ((b * self.height + i) * self.width + j) * g;
                is[p..p + g].iter().copied()
            })
            .collect()
    }

    /// The map entries of position (i, j) of every image, in image order.
    fn at(&self, map: &[f32], i: usize, j: usize) -> Vec<f32> {
        let hd = self.hidden;
        (0..self.n)
            .flat_map(|b| {
                let e = ((b * self.height + i) * self.width + j) * hd;
                map[e..e + hd].iter().copied()
            })
            .collect()
    }

    /// The scan's one-position step at (i, j) on `be`.
    #[allow(clippy::too_many_arguments)]
    fn step<B: Backend>(
        &self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
        h: &mut Tensor<B>,
        c: &mut Tensor<B>,
        i: usize,
        j: usize,
    ) -> pixelrnn::error::Result<()> {
        match self.scan {
            Scan::Row { .. } => be.row_lstm_forward_at(is, w, h, c, i, j),
            Scan::Diagonal => be.diag_lstm_forward_at(is, w, h, c, i, j),
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A pooled relative distance: `||a - b||^2` and `||b||^2` accumulated over several outputs.
#[derive(Default)]
struct Gap {
    num: f64,
    den: f64,
}

impl Gap {
    fn add(&mut self, a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            self.num += (f64::from(*x) - f64::from(*y)).powi(2);
            self.den += f64::from(*y).powi(2);
        }
    }

    fn get(&self) -> f64 {
        (self.num / self.den).sqrt()
    }
}

/// The positions of the one-step check: the four corners, an edge position and an interior
/// one (duplicates of small maps removed).
fn positions(height: usize, width: usize) -> Vec<(usize, usize)> {
    let mut v = vec![
        (0, 0),
        (0, width - 1),
        (height - 1, 0),
        (height - 1, width - 1),
        (height / 2, 0),
        (height / 2, width / 2),
    ];
    v.sort_unstable();
    v.dedup();
    v
}

/// One step of each scan at each precision, at several positions, against the twin.
pub fn check_one_step<E: Executor>(gpu: &CudaBackend<E>) {
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let mut gap = Gap::default();
        let mut worst = 0.0f64;
        for (ci, case) in cases().iter().enumerate() {
            let geo = case.geo();
            let (n, hd, g) = (case.n, case.hidden, 4 * case.hidden);
            let seed = 1800 + 10 * ci as u64;
            let w = random(seed, case.w_shape().iter().product(), 0.5);
            let w_g = Tensor::from_slice(gpu, &case.w_shape(), &w).expect("upload w");
            let plane = case.height * case.width;
            for (pi, &(i, j)) in positions(case.height, case.width).iter().enumerate() {
                let what = format!("{} one step at ({i}, {j})", case.what(precision));
                let s = seed + 100 * (pi as u64 + 1);
                let is_at = random(s, n * g, 1.5);
                // Earlier states: random; the position and every later one: NaN (unwritten).
                let mut h0 = random(s + 1, case.map_len(), 1.0);
                let mut c0 = random(s + 2, case.map_len(), 1.0);
                for b in 0..n {
                    let from = (b * plane + i * case.width + j) * hd;
                    let to = (b + 1) * plane * hd;
                    h0[from..to].fill(f32::NAN);
                    c0[from..to].fill(f32::NAN);
                }
                let (mut h_want, mut c_want) = (h0.clone(), c0.clone());
                forward_at_precision(
                    &is_at,
                    &w,
                    &mut h_want,
                    &mut c_want,
                    n,
                    &geo,
                    i,
                    j,
                    precision,
                );
                let (mut h32, mut c32) = (h0.clone(), c0.clone());
                forward_at_precision(
                    &is_at,
                    &w,
                    &mut h32,
                    &mut c32,
                    n,
                    &geo,
                    i,
                    j,
                    Precision::Fp32,
                );

                let shape = [n, case.height, case.width, hd];
                let is_g = Tensor::from_slice(gpu, &[n, g], &is_at).expect("upload is");
                let mut h = Tensor::from_slice(gpu, &shape, &h0).expect("upload h");
                let mut c = Tensor::from_slice(gpu, &shape, &c0).expect("upload c");
                case.step(gpu, &is_g, &w_g, &mut h, &mut c, i, j)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let (h_got, c_got) = (download(gpu, &h, &what), download(gpu, &c, &what));
                for (part, got, want, fp32, before) in [
                    ("h", &h_got, &h_want, &h32, &h0),
                    ("c", &c_got, &c_want, &c32, &c0),
                ] {
                    let (got_at, want_at) = (case.at(got, i, j), case.at(want, i, j));
                    let err = rel_err(&format!("{what}: {part}"), &got_at, &want_at);
                    worst = worst.max(err);
                    assert!(
                        err <= STEP_TOL,
                        "{what}: {part} relative error {err:.3e} > {STEP_TOL:.0e}"
                    );
                    gap.add(&case.at(fp32, i, j), &want_at);
                    // Every other entry (earlier states, NaN later ones) is left as it was.
                    let mut rest_got = bits(got);
                    let mut rest_before = bits(before);
                    for b in 0..n {
                        let e = (b * plane + i * case.width + j) * hd;
                        rest_got[e..e + hd].fill(0);
                        rest_before[e..e + hd].fill(0);
                    }
                    assert!(
                        rest_got == rest_before,
                        "{what}: {part}: the step wrote outside its position"
                    );
                }
            }
        }
        let gap = gap.get();
        eprintln!(
            "{precision} one step: worst rel err vs twin {worst:.3e}; twin vs fp32 {gap:.3e}"
        );
        assert!(
            gap > 2.0 * STEP_TOL,
            "{precision}: the twin is within {gap:.3e} of fp32: the data does not show rounding"
        );
    }
    gpu.set_precision(Precision::Fp32);
}

/// forward_at over every position in raster order, from NaN maps, against the fused forward
/// at the same precision on CUDA and against the twin's sweep.
pub fn check_raster_sweep<E: Executor>(gpu: &CudaBackend<E>) {
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let mut gap = Gap::default();
        let (mut worst_fused, mut worst_twin) = (0.0f64, 0.0f64);
        for (ci, case) in cases().iter().enumerate() {
            let geo = case.geo();
            let (n, hd, g) = (case.n, case.hidden, 4 * case.hidden);
            let what = format!("{} sweep", case.what(precision));
            let seed = 2800 + 10 * ci as u64;
            let shape = [n, case.height, case.width, hd];
            let is = random(seed, case.map_len() * 4, 1.5);
            let w = random(seed + 1, case.w_shape().iter().product(), 0.5);
            let is_g =
                Tensor::from_slice(gpu, &[n, case.height, case.width, g], &is).expect("upload is");
            let w_g = Tensor::from_slice(gpu, &case.w_shape(), &w).expect("upload w");

            let nan = vec![f32::NAN; case.map_len()];
            let mut h = Tensor::from_slice(gpu, &shape, &nan).expect("upload h");
            let mut c = Tensor::from_slice(gpu, &shape, &nan).expect("upload c");
            let (mut h_twin, mut c_twin) = (nan.clone(), nan.clone());
            for i in 0..case.height {
                for j in 0..case.width {
                    let at = case.is_at(&is, i, j);
                    let at_g = Tensor::from_slice(gpu, &[n, g], &at).expect("upload is_at");
                    case.step(gpu, &at_g, &w_g, &mut h, &mut c, i, j)
                        .unwrap_or_else(|e| panic!("{what} at ({i}, {j}): {e}"));
                    forward_at_precision(
                        &at,
                        &w,
                        &mut h_twin,
                        &mut c_twin,
                        n,
                        &geo,
                        i,
                        j,
                        precision,
                    );
                }
            }
            let fused = match case.scan {
                Scan::Row { .. } => gpu.row_lstm_forward(&is_g, &w_g, Recurrence::Fused),
                Scan::Diagonal => gpu.diag_lstm_forward(&is_g, &w_g, Recurrence::Fused),
            }
            .unwrap_or_else(|e| panic!("{what}: fused forward: {e}"));
            let (fp32_h, fp32_c, _) = forward_precision(&is, &w, n, &geo, true, Precision::Fp32);
            for (part, got, fused, twin, fp32) in [
                ("h", &h, &fused.h, &h_twin, &fp32_h),
                ("c", &c, &fused.c, &c_twin, &fp32_c),
            ] {
                let got = download(gpu, got, &what);
                let fused = download(gpu, fused, &what);
                let e_fused = rel_err(&format!("{what}: {part} vs fused"), &got, &fused);
                let e_twin = rel_err(&format!("{what}: {part} vs twin"), &got, twin);
                worst_fused = worst_fused.max(e_fused);
                worst_twin = worst_twin.max(e_twin);
                assert!(
                    e_fused <= SWEEP_TOL,
                    "{what}: {part} vs the fused forward: relative error {e_fused:.3e} > \
                     {SWEEP_TOL:.0e}"
                );
                assert!(
                    e_twin <= SWEEP_TOL,
                    "{what}: {part} vs the twin's sweep: relative error {e_twin:.3e} > \
                     {SWEEP_TOL:.0e}"
                );
                gap.add(fp32, twin);
            }
            // The twin's sweep is its fused forward bit for bit (tests/lstm_tiles.rs); so the
            // comparison above is with the CPU training forward too.
            let (th, _, _) = forward_precision(&is, &w, n, &geo, true, precision);
            assert_eq!(
                bits(&th),
                bits(&h_twin),
                "{what}: twin sweep vs twin forward"
            );
        }
        let gap = gap.get();
        eprintln!(
            "{precision} sweep: worst rel err vs fused {worst_fused:.3e}, vs twin \
             {worst_twin:.3e}; twin vs fp32 {gap:.3e}"
        );
        assert!(
            gap > 2.0 * SWEEP_TOL,
            "{precision}: the twin is within {gap:.3e} of fp32: the data does not show rounding"
        );
    }
    gpu.set_precision(Precision::Fp32);
}

/// The pooled distance helper is the parity one on a single output (guards [`Gap`]).
#[test]
fn gap_is_the_relative_l2_distance() {
    let (a, b) = ([1.0f32, 2.0, 3.0], [1.5f32, 2.0, 2.0]);
    let mut gap = Gap::default();
    gap.add(&a, &b);
    assert!((gap.get() - l2_rel_err(&a, &b)).abs() < 1e-12);
}
