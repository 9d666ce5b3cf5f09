//! Parity of the recurrences' tensor-core fused step kernels (kernels/row_lstm_mma.cu,
//! kernels/diag_lstm_mma.cu, bodies in kernels/lstm_mma.cuh) with their CPU twin: the CPU
//! backend's Row LSTM and Diagonal LSTM at the same precision (the state-to-state products'
//! operands rounded, fp32 accumulation). For tf32 and bf16, both scans, the whole fused
//! recurrence forward (h, c, gates) and backward (d_is, d_w_ss) on shapes ragged against the
//! 128-position x 64-column tiles and the K chunks of 16 (h not a multiple of 8 or 16, one
//! image, a step of more than 128 positions, several unit tiles), outputs NaN-poisoned (the
//! emulated backend poisons every uninitialised tensor), every scheduling seed. Each precision
//! also checks that the twin is further from the fp32 run than the forward tolerance, so that a kernel
//! that skipped the rounding fails. Every version ([`LstmMma`]) runs against the twin, and v2
//! must give v1's bits in every output. The mutant kernels that swap A fragment registers
//! (`<scan>_step_{fwd,bwd}_tf32_swapped_v1`, both scans) are shown to miss the kernels they
//! mutate by far more than the tolerance.
//!
//! Tolerances ([`FWD_TOL`], [`D_IS_TOL`]): relative L2 over each output. The GEMM outputs alone would be
//! within `parity::MMA_REL_TOL` (the products of rounded operands are exact in fp32; twin and
//! kernel differ in the order of the fp32 additions). The recurrence compounds that: step
//! s + 1 rounds the h that step s computed, and an fp32-ulp difference in h can move its
//! rounded value by one tf32 / bf16 ulp (2^-11 / 2^-8 relative), which then propagates through
//! the later steps and the backward. The bounds are a few times the largest error measured on
//! these cases (stated with the constants).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{
    Arg, CudaBackend, EmuOptions, Emulator, Executor, LaunchCfg, LstmMma, Variants,
};
use pixelrnn::backend::{Backend, LstmState, Precision, Recurrence};
use pixelrnn::parity::l2_rel_err;
use pixelrnn::tensor::Tensor;

use crate::lstm_scan::pack_ss;
use crate::{download, pair, random, rel_err, RoundingGap};

crate::parity_tests! {
    lstm_mma_fused_recurrence => super::check_lstm_mma,
}

/// Relative L2 bounds of the fused recurrence's outputs at tf32 and bf16 alike: the forward's
/// (h, c, gates) and d_is (which compounds the rounding of every later step as well). Measured
/// on the cases below (both seeds give the same bits): forward at most 5.8e-6 (tf32) and
/// 3.1e-7 (bf16), d_is at most 7.4e-5 (tf32) and 5.0e-5 (bf16), both at h = 128. The twin's
/// distance from fp32, pooled over the forward outputs, must exceed FWD_TOL (checked).
const FWD_TOL: f64 = 2e-5;
const D_IS_TOL: f64 = 2e-4;

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
        // h = 128 (the cifar-large size): eight forward unit tiles, two backward, K = 384 /
        // 1536 (24 / 96 chunks).
        row(3, 1, 3, 8, 128),
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

/// The fused recurrence of every case at tf32 and bf16 against the twin at the same precision.
pub fn check_lstm_mma<E: Executor>(gpu: &CudaBackend<E>) {
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let cpu = CpuBackend::new();
        cpu.set_precision(precision);
        let fp32 = CpuBackend::new();
        // The twin's distance from fp32, pooled over the forward outputs of every case: if it
        // is above FWD_TOL, some output of a kernel that computed in fp32 would be too.
        let mut gap = RoundingGap::default();
        for (i, c) in cases().iter().enumerate() {
            let seed = 900 + 10 * i as u64;
            let (n, h, w, hd) = (c.n, c.height, c.width, c.hidden);
            let (is_c, is_g) = pair(gpu, &[n, h, w, 4 * hd], seed, 1.0);
            let (w_c, w_g) = pair(gpu, &c.w_shape(), seed + 1, 0.5);
            let (dh_c, dh_g) = pair(gpu, &[n, h, w, hd], seed + 2, 1.0);
            let want = c.forward(&cpu, &is_c, &w_c).expect("cpu forward");
            let (d_is_want, dw_want) = c.backward(&cpu, &want, &w_c, &dh_c).expect("cpu backward");
            let ref32 = c.forward(&fp32, &is_c, &w_c).expect("fp32 forward");
            let (d_is32, dw32) = c
                .backward(&fp32, &ref32, &w_c, &dh_c)
                .expect("fp32 backward");
            // Every version against the twin; v2 (the epilogue's float2 pairs, the same
            // arithmetic) must also give v1's bits, output by output.
            let mut v1_bits: Vec<Vec<u32>> = Vec::new();
            for version in LstmMma::ALL {
                let _selected = gpu.select(Variants {
                    lstm_mma: version,
                    ..gpu.variants()
                });
                let what = |part: &str| format!("{} {precision} {version} {part}", c.what());
                let got = c
                    .forward(gpu, &is_g, &w_g)
                    .unwrap_or_else(|e| panic!("{}: {e}", what("forward")));
                let (d_is, dw) = c
                    .backward(gpu, &got, &w_g, &dh_g)
                    .unwrap_or_else(|e| panic!("{}: {e}", what("backward")));
                // d_w_ss is lstm_ss_bwd_weight_<precision>_v2's (the default; operands rounded
                // as staged, fp32 accumulation): the twin's arithmetic on the recurrence's h and
                // d_is, so it inherits d_is's bound.
                let dw_tol = D_IS_TOL;
                for (i, (part, g, t, f)) in [
                    ("h", &got.h, &want.h, &ref32.h),
                    ("c", &got.c, &want.c, &ref32.c),
                    ("gates", &got.gates, &want.gates, &ref32.gates),
                    ("d_is", &d_is, &d_is_want, &d_is32),
                    ("d_w_ss", &dw, &dw_want, &dw32),
                ]
                .into_iter()
                .enumerate()
                {
                    assert_eq!(g.shape, t.shape, "{}: shapes differ", what(part));
                    let data = download(gpu, g, part);
                    let err = rel_err(&what(part), &data, &t.data);
                    eprintln!("{}: rel err {err:.3e}", what(part));
                    let bound = match part {
                        "d_w_ss" => dw_tol,
                        "d_is" => D_IS_TOL,
                        _ => FWD_TOL,
                    };
                    assert!(
                        err <= bound,
                        "{}: rel err {err:.3e} > {bound:.1e}",
                        what(part)
                    );
                    let bits: Vec<u32> = data.iter().map(|x| x.to_bits()).collect();
                    if version == LstmMma::V1 {
                        v1_bits.push(bits);
                    } else if let Some(j) = (0..bits.len()).find(|&j| bits[j] != v1_bits[i][j]) {
                        panic!(
                            "{}: element {j} is {:e}, v1's {:e}: not v1's bits",
                            what(part),
                            data[j],
                            f32::from_bits(v1_bits[i][j])
                        );
                    }
                    if version != LstmMma::V1 || !matches!(part, "h" | "c" | "gates") {
                        continue;
                    }
                    gap.add(&t.data, &f.data);
                }
            }
        }
        let gap = gap.value();
        eprintln!("{precision}: twin vs fp32 (forward), pooled rel distance {gap:.3e}");
        assert!(
            gap > FWD_TOL,
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

/// One step's launch geometry: images, map, hidden units, the scan (the Row LSTM with k = 3,
/// or the Diagonal LSTM) and the step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) n: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) hd: usize,
    pub(crate) diag: bool,
    pub(crate) step: usize,
}

impl Shape {
    fn taps(&self) -> usize {
        if self.diag {
            2
        } else {
            3
        }
    }

    /// Positions of the step in one image.
    pub(crate) fn len(&self) -> usize {
        if self.diag {
            let lo = (self.step + 1).saturating_sub(self.width);
            let hi = self.step.min(self.height - 1);
            hi + 1 - lo
        } else {
            self.width
        }
    }
}

/// One step of the step kernel `kernel` (forward or backward, of `s`'s scan) on fixed random
/// inputs, on an emulator with its counters on when `counters`: the maps the step writes into
/// (forward h, c, gates; backward d_is, dc_carry; the other steps' entries are the inputs) and
/// the launch's counters.
pub(crate) fn launch_step(
    kernel: &str,
    fwd: bool,
    s: &Shape,
    counters: bool,
) -> (Vec<Vec<f32>>, Vec<pixelrnn::backend::cuda::LaunchCounters>) {
    let (n, hd, taps) = (s.n, s.hd, s.taps());
    let e = emu().with_counters(counters);
    let w = random(51, 4 * hd * hd * taps, 0.5);
    let wp = upload(&e, &pack_ss(&w, hd, taps, !fwd));
    let map = n * s.height * s.width;
    let a = upload(&e, &random(52, map * 4 * hd, 1.0));
    let b = upload(&e, &random(53, map * hd, 1.0));
    let c = upload(&e, &random(54, map * hd, 1.0));
    let d = upload(&e, &random(55, map * hd, 1.0));
    let gates = upload(&e, &random(56, map * 4 * hd, 0.9));
    let units = if fwd { 16 } else { 64 };
    let cfg = LaunchCfg {
        grid: [
            (n * s.len()).div_ceil(128) as u32,
            hd.div_ceil(units) as u32,
            1,
        ],
        block: [256, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    // Forward: is = a, h = b, c = c, gates. Backward: gates, c, dh = b, dc_carry = d,
    // d_is = a.
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
    args.extend([n, s.height, s.width, hd].map(|x| Arg::I32(x as i32)));
    if !s.diag {
        args.push(Arg::I32(3));
    }
    args.push(Arg::I32(s.step as i32));
    e.take_counters();
    e.launch(kernel, &cfg, &args)
        .unwrap_or_else(|err| panic!("{kernel}: {err}"));
    let counters = e.take_counters();
    let out = if fwd {
        vec![
            e.download(&b, map * hd).unwrap(),
            e.download(&c, map * hd).unwrap(),
            e.download(&gates, map * 4 * hd).unwrap(),
        ]
    } else {
        vec![
            e.download(&a, map * 4 * hd).unwrap(),
            e.download(&d, map * hd).unwrap(),
        ]
    };
    (out, counters)
}

/// The pixels a step wrote in `all` (a map of `feat` features per pixel): row `s.step` of every
/// image (Row LSTM), or anti-diagonal `s.step` (Diagonal LSTM).
fn written_pixels(all: &[f32], s: &Shape, feat: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for img in 0..s.n {
        for r in 0..s.height {
            for col in 0..s.width {
                let on_step = if s.diag {
                    r + col == s.step
                } else {
                    r == s.step
                };
                if on_step {
                    let at = ((img * s.height + r) * s.width + col) * feat;
                    out.extend_from_slice(&all[at..at + feat]);
                }
            }
        }
    }
    out
}

/// One step of `kernel` (a step kernel of `s`'s scan): what it wrote into h (forward) or d_is
/// (backward) at the step's pixels.
fn one_step(kernel: &str, fwd: bool, s: &Shape) -> Vec<f32> {
    let feat = if fwd { s.hd } else { 4 * s.hd };
    written_pixels(&launch_step(kernel, fwd, s, false).0[0], s, feat)
}

/// A kernel whose A fragments have registers 0 <-> 2 and 1 <-> 3 swapped misses the kernel it
/// mutates by far more than the parity tolerance, forward and backward, in both scans: the
/// parity check above (which the unmutated kernel passes) would fail it. The steps have a
/// product (Row: forward row 1, backward row 0 of 2 x 9; Diagonal: anti-diagonal 3 of 4 x 5,
/// neighbours on both sides), h = 24.
#[test]
fn a_step_kernel_that_swaps_fragment_registers_fails() {
    for scan in ["row", "diag"] {
        for (pass, fwd) in [("fwd", true), ("bwd", false)] {
            let diag = scan == "diag";
            let s = Shape {
                n: 2,
                height: if diag { 4 } else { 2 },
                width: if diag { 5 } else { 9 },
                hd: 24,
                diag,
                step: if diag {
                    3
                } else if fwd {
                    1
                } else {
                    0
                },
            };
            let good = one_step(&format!("{scan}_lstm_step_{pass}_tf32_v1"), fwd, &s);
            let bad = one_step(&format!("{scan}_lstm_step_{pass}_tf32_swapped_v1"), fwd, &s);
            let err = l2_rel_err(&bad, &good);
            eprintln!("{scan} step_{pass}: swapped kernel at {err:.3e} from the tested one");
            assert!(
                err > 10.0 * D_IS_TOL,
                "{scan} step_{pass}: the swapped kernel is only {err:.3e} from the tested one"
            );
        }
    }
}

/// The memory counters of one step launch, summed over its sites: global loads and stores
/// (byte-weighted efficiency = unique bytes / sector bytes), sectors, requests, the sector
/// bytes over the launch's compulsory bytes (how often the same global data is fetched), the
/// shared words loaded, the worst shared site's wavefronts over the conflict-free ideal and
/// FLOPs per shared word (FLOPs = 2 x positions x columns x K, K = taps x features, the edge
/// taps' zeros included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepCounters {
    pub(crate) grid: [u32; 2],
    pub(crate) efficiency: f64,
    pub(crate) load_efficiency: f64,
    pub(crate) store_efficiency: f64,
    pub(crate) sectors: u64,
    pub(crate) sectors_per_request: f64,
    pub(crate) refetch: f64,
    pub(crate) shared_words: u64,
    pub(crate) shared_excess: f64,
    pub(crate) flops_per_word: f64,
}

/// [`StepCounters`] of one launch of `kernel` on `s` (inputs of [`launch_step`]).
pub(crate) fn step_counters(kernel: &str, fwd: bool, s: &Shape) -> StepCounters {
    use pixelrnn::backend::cuda::{AccessOp, MemSpace};
    let (_, counters) = launch_step(kernel, fwd, s, true);
    let c = counters
        .iter()
        .find(|c| c.kernel == kernel)
        .unwrap_or_else(|| panic!("{kernel}: no counters"));
    let global = |op: Option<AccessOp>| -> (u64, u64, u64) {
        c.sites
            .iter()
            .filter(|x| x.space == MemSpace::Global && op.is_none_or(|o| x.op == o))
            .fold((0, 0, 0), |(u, se, r), x| {
                (u + x.unique_bytes, se + x.sectors, r + x.requests)
            })
    };
    let eff = |(u, se, _): (u64, u64, u64)| u as f64 / (32 * se).max(1) as f64;
    let all = global(None);
    let shared: Vec<_> = c
        .sites
        .iter()
        .filter(|x| x.space == MemSpace::Shared)
        .collect();
    let words: u64 = shared
        .iter()
        .filter(|x| x.op == AccessOp::Load)
        .map(|x| x.bytes / 4)
        .sum();
    let (cols, feat) = if fwd {
        (4 * s.hd, s.hd)
    } else {
        (s.hd, 4 * s.hd)
    };
    let flops = 2 * s.n * s.len() * cols * s.taps() * feat;
    StepCounters {
        grid: [c.grid[0], c.grid[1]],
        efficiency: eff(all),
        load_efficiency: eff(global(Some(AccessOp::Load))),
        store_efficiency: eff(global(Some(AccessOp::Store))),
        sectors: all.1,
        sectors_per_request: all.1 as f64 / all.2.max(1) as f64,
        refetch: (32 * all.1) as f64 / c.compulsory_bytes().max(1) as f64,
        shared_words: words,
        shared_excess: shared
            .iter()
            .map(|x| x.excess_wavefronts())
            .fold(0.0, f64::max),
        flops_per_word: flops as f64 / words.max(1) as f64,
    }
}

/// The emulator's memory counters of one step of each tensor-core step kernel, v1 and v2, at
/// the cifar-large recurrence size (n = 16, 32 x 32, h = 128; Row LSTM k = 3): Row LSTM row 16
/// (512 positions), Diagonal LSTM anti-diagonal 31 (the longest, 512 positions), and at a small
/// one (n = 2, 8 x 8, h = 24: partial unit tiles, one position tile), launched directly so
/// that only that step is emulated. Prints one markdown row per kernel and shape
/// ([`StepCounters`]). A measurement, not a check:
/// `cargo test --release --test cuda -- --ignored --nocapture lstm_mma_counters`.
#[test]
#[ignore = "measurement (minutes on the emulator): the counters of docs/kernels.md"]
fn lstm_mma_counters() {
    println!(
        "| kernel | shape | grid | global eff. (loads / stores) | sectors | sectors/request | \
         sector bytes / compulsory | shared words | worst shared site (of ideal) | FLOP/shared \
         word |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, n, size, hd) in [("cifar-large", 16, 32, 128), ("small", 2, 8, 24)] {
        for diag in [false, true] {
            for fwd in [true, false] {
                for precision in ["tf32", "bf16"] {
                    for version in LstmMma::ALL {
                        let scan = if diag { "diag" } else { "row" };
                        let pass = if fwd { "fwd" } else { "bwd" };
                        let kernel =
                            format!("{scan}_lstm_step_{pass}_{precision}_v{}", version.number());
                        let step = Shape {
                            n,
                            height: size,
                            width: size,
                            hd,
                            diag,
                            step: if diag { size - 1 } else { size / 2 },
                        };
                        let k = step_counters(&kernel, fwd, &step);
                        println!(
                            "| `{kernel}` | {label} | {}x{} | {:.3} ({:.3} / {:.3}) | {} | {:.2} \
                             | {:.2} | {} | {:.2} | {:.1} |",
                            k.grid[0],
                            k.grid[1],
                            k.efficiency,
                            k.load_efficiency,
                            k.store_efficiency,
                            k.sectors,
                            k.sectors_per_request,
                            k.refetch,
                            k.shared_words,
                            k.shared_excess,
                            k.flops_per_word
                        );
                    }
                }
            }
        }
    }
}
