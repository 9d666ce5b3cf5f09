//! The unfused recurrence at tf32 and bf16 on CUDA (issue 18): the rounded SIMT state products
//! `<scan>_ss_fwd_{tf32,bf16}_v2` and `<scan>_ss_bwd_data_{tf32,bf16}_v3` (kernels/row_lstm.cu,
//! diag_lstm.cu), selected by cuda/lstm.rs under every scan version, with the fp32 gate passes
//! and the rounded weight gradient.
//!
//! - [`check_unfused_products`]: one step of each rounded product kernel, launched directly,
//!   against a float64 product of the same rounded operands: the forward's pre-activations
//!   (the gates map) and the backward's state gradient (`dh_carry`, "d_state"), every position
//!   of the step, outputs NaN-poisoned. The fp32 kernel on the same inputs must miss that
//!   reference by more than ten times the bound (so a kernel that skipped the rounding fails).
//! - [`check_unfused_recurrence`]: the whole unfused recurrence, forward (h, c, gates) and
//!   backward (d_is, d_w_ss), of both scans at both precisions against the CPU twin at the same
//!   precision, and against the fused recurrence (the tensor-core steps) at the same precision.
//! - [`rounded_products_run_under_every_version`]: the selection reaches the launches (the
//!   emulator's counters name the kernels) and gives the same bits under v1, v2 and v3.
//!
//! Shapes: h not a multiple of 32 (3, 9, 20, 40), n = 1, a row of more than one 16-position
//! tile (W = 18), h = 130 (two 128-feature chunks forward, two 128-unit tiles backward) and
//! 4h = 160 (two chunks backward).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{arg, Arg, CudaBackend, Emulator, Executor, LaunchCfg, Variants};
use pixelrnn::backend::{Backend, Precision, Recurrence};
use pixelrnn::tensor::Tensor;

use crate::lstm_scan::{pack_ss, scan_version, scan_versions, Scan};
use crate::{download, pair, random, rel_err, RoundingGap};

crate::parity_tests! {
    lstm_unfused_products => super::check_unfused_products,
    lstm_unfused_recurrence => super::check_unfused_recurrence,
}

/// Bound on one step's product (relative L2 over the step's outputs) against the float64
/// product of the same rounded operands: a product of two tf32 / bf16 values is exact in fp32,
/// so the kernel's only error is its fp32 accumulation over K = taps x h (forward) or
/// taps x 4h (backward) terms, a few 1e-7 at these K. Measured on these cases (emulator, both
/// seeds): at most 3.9e-7 (tf32) and 1.4e-7 (bf16). The fp32 kernel misses by the rounding
/// itself, at least 1.3e-4 (tf32) and 1.1e-3 (bf16): checked to be above 10 x this bound.
const PRODUCT_TOL: f64 = 2e-6;

/// Relative L2 bounds of the whole recurrence against the twin, the same as the fused
/// recurrence's (tests/cuda/lstm_mma.rs says why): each step's product is within fp32
/// accumulation error of the twin's, but step s + 1 rounds the h that step s computed, and an
/// fp32-ulp difference can move a rounded value by one tf32 / bf16 ulp, which the later steps
/// and the backward propagate. Forward (h, c, gates) and backward (d_is, d_w_ss). Measured on
/// these cases (emulator, both seeds), the worst of the twin and the fused recurrence: forward
/// at most 2.2e-7 (tf32) and 1.3e-7 (bf16); backward 4.5e-5 (tf32, d_w_ss against the fused
/// one, h = 40) and 1.5e-7 (bf16). The twin's distance from fp32, pooled over the forward
/// outputs, 9.1e-5 (tf32) and 7.3e-4 (bf16), must exceed FWD_TOL (checked).
const FWD_TOL: f64 = 2e-5;
const BWD_TOL: f64 = 2e-4;

/// One recurrence: the scan, images, map, hidden units.
#[derive(Clone, Copy)]
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
        // One image, h = 3: one live lane of the 32-unit tiles.
        case(Scan::Row(3), 1, 3, 4, 3),
        // k = 5, h = 20 (not a multiple of 32).
        case(Scan::Row(5), 2, 4, 7, 20),
        // W = 18: two 16-position tiles per row; h = 40: two forward unit tiles, 4h = 160:
        // two staged chunks backward.
        case(Scan::Row(3), 2, 3, 18, 40),
        // h = 130: two 128-feature chunks forward, two 128-unit tiles backward.
        case(Scan::Row(1), 1, 2, 3, 130),
        // The Diagonal LSTM: anti-diagonals of 1 .. min(H, W) positions.
        case(Scan::Diagonal, 2, 5, 4, 9),
        case(Scan::Diagonal, 1, 4, 3, 40),
    ]
}

impl Case {
    fn what(&self) -> String {
        format!(
            "{:?} n={} {}x{} h={}",
            self.scan, self.n, self.height, self.width, self.hidden
        )
    }

    fn taps(&self) -> usize {
        match self.scan {
            Scan::Row(k) => k,
            Scan::Diagonal => 2,
        }
    }

    fn steps(&self) -> usize {
        match self.scan {
            Scan::Row(_) => self.height,
            Scan::Diagonal => self.height + self.width - 1,
        }
    }

    /// The positions `(r, j)` of step `s` in one image, in the kernels' order.
    fn step_positions(&self, s: usize) -> Vec<(usize, usize)> {
        match self.scan {
            Scan::Row(_) => (0..self.width).map(|j| (s, j)).collect(),
            Scan::Diagonal => {
                let lo = (s + 1).saturating_sub(self.width);
                let hi = s.min(self.height - 1);
                (lo..=hi).map(|r| (r, s - r)).collect()
            }
        }
    }

    /// The pixel that tap `t` of `(r, j)` reads, if inside the image: Row LSTM (r - 1,
    /// j + t - k/2); Diagonal LSTM tap 0 above, tap 1 to the left.
    fn source(&self, r: usize, j: usize, t: usize) -> Option<(usize, usize)> {
        let (r2, j2) = match self.scan {
            Scan::Row(k) => (r as isize - 1, j as isize + t as isize - (k / 2) as isize),
            Scan::Diagonal if t == 0 => (r as isize - 1, j as isize),
            Scan::Diagonal => (r as isize, j as isize - 1),
        };
        let inside = r2 >= 0 && j2 >= 0 && (r2 as usize) < self.height;
        (inside && (j2 as usize) < self.width).then_some((r2 as usize, j2 as usize))
    }
}

/// The launch of a stepwise v2 (forward) or v3 (backward) product kernel for a step of `len`
/// positions: one 128-thread block per (image, 16 positions) x 32 (v2) or 128 (v3) units.
fn step_launch(n: usize, len: usize, hidden: usize, backward: bool) -> LaunchCfg {
    let units = if backward { 128 } else { 32 };
    LaunchCfg {
        grid: [
            (n * len.div_ceil(16)) as u32,
            hidden.div_ceil(units) as u32,
            1,
        ],
        block: [128, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    }
}

/// Appends a step kernel's trailing parameters for step `s` of `c`: `n, H, W, h[, k], step`.
fn push_step_ints<E: Executor>(args: &mut Vec<Arg<'_, E>>, c: &Case, s: usize) {
    let mut ints = vec![c.n, c.height, c.width, c.hidden];
    if let Scan::Row(k) = c.scan {
        ints.push(k);
    }
    ints.push(s);
    args.extend(ints.iter().map(|&x| Arg::I32(x as i32)));
}

/// One step `s` of `c`'s forward product by `kernel`: `(got, want)` over the step's positions
/// (all images, all 4h pre-activations), `want` the float64 `is + W h` of the operands rounded
/// to `p`.
fn forward_step<E: Executor>(
    gpu: &CudaBackend<E>,
    c: &Case,
    kernel: &str,
    p: Precision,
    s: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f64>) {
    let (n, hd, taps) = (c.n, c.hidden, c.taps());
    let (g, plane) = (4 * hd, c.height * c.width);
    let w = random(seed, g * hd * taps, 0.5);
    let is = random(seed + 1, n * plane * g, 1.0);
    let h = random(seed + 2, n * plane * hd, 1.0);
    let up = |shape: &[usize], data: &[f32]| {
        Tensor::from_slice(gpu, shape, data).unwrap_or_else(|e| panic!("upload: {e}"))
    };
    let wp = up(&[w.len()], &pack_ss(&w, hd, taps, false));
    let is_g = up(&[n, c.height, c.width, g], &is);
    let h_g = up(&[n, c.height, c.width, hd], &h);
    // Every element the step does not write stays NaN (the poisoned fresh tensor).
    let gates = gpu
        .tensor_uninit(&[n, c.height, c.width, g])
        .expect("gates");
    let mut args = vec![arg(&is_g), arg(&wp), arg(&h_g), arg(&gates)];
    push_step_ints(&mut args, c, s);
    let positions = c.step_positions(s);
    gpu.launch(kernel, &step_launch(n, positions.len(), hd, false), &args)
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
    let out = download(gpu, &gates, kernel);
    let rd = |x: f32| f64::from(p.round(x));
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for b in 0..n {
        for &(r, j) in &positions {
            let at = b * plane + r * c.width + j;
            for o in 0..g {
                let mut acc = f64::from(is[at * g + o]);
                for t in 0..taps {
                    if let Some((r2, j2)) = c.source(r, j, t) {
                        let src = (b * plane + r2 * c.width + j2) * hd;
                        for v in 0..hd {
                            acc += rd(w[(o * hd + v) * taps + t]) * rd(h[src + v]);
                        }
                    }
                }
                got.push(out[at * g + o]);
                want.push(acc);
            }
        }
    }
    (got, want)
}

/// One step `s` of `c`'s backward data product by `kernel` (called for the step s, reading the
/// d_is of step s + 1): `(got, want)` over the step's positions (all images, all h units),
/// `want` the float64 `W^T d_is` of the operands rounded to `p`, over the consumers in the
/// image.
fn backward_step<E: Executor>(
    gpu: &CudaBackend<E>,
    c: &Case,
    kernel: &str,
    p: Precision,
    s: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f64>) {
    let (n, hd, taps) = (c.n, c.hidden, c.taps());
    let (g, plane) = (4 * hd, c.height * c.width);
    let w = random(seed, g * hd * taps, 0.5);
    let d_is = random(seed + 1, n * plane * g, 1.0);
    let up = |shape: &[usize], data: &[f32]| {
        Tensor::from_slice(gpu, shape, data).unwrap_or_else(|e| panic!("upload: {e}"))
    };
    let wp = up(&[w.len()], &pack_ss(&w, hd, taps, true));
    let d_is_g = up(&[n, c.height, c.width, g], &d_is);
    let dh_carry = gpu
        .tensor_uninit(&[n, c.height, c.width, hd])
        .expect("dh_carry");
    let mut args = vec![arg(&wp), arg(&d_is_g), arg(&dh_carry)];
    push_step_ints(&mut args, c, s);
    let positions = c.step_positions(s);
    gpu.launch(kernel, &step_launch(n, positions.len(), hd, true), &args)
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
    let out = download(gpu, &dh_carry, kernel);
    let rd = |x: f32| f64::from(p.round(x));
    // Every consumer (r', j') of step s + 1 and tap t adds W[:, :, t]^T d_is(r', j') to its
    // source, when the source is on step s.
    let mut want_map = vec![0.0f64; n * plane * hd];
    for b in 0..n {
        for (r, j) in c.step_positions(s + 1) {
            for t in 0..taps {
                let Some((r2, j2)) = c.source(r, j, t) else {
                    continue;
                };
                let (src, dst) = (b * plane + r * c.width + j, b * plane + r2 * c.width + j2);
                for u in 0..hd {
                    let mut acc = 0.0f64;
                    for o in 0..g {
                        acc += rd(w[(o * hd + u) * taps + t]) * rd(d_is[src * g + o]);
                    }
                    want_map[dst * hd + u] += acc;
                }
            }
        }
    }
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for b in 0..n {
        for &(r, j) in &positions {
            let at = (b * plane + r * c.width + j) * hd;
            got.extend_from_slice(&out[at..at + hd]);
            want.extend_from_slice(&want_map[at..at + hd]);
        }
    }
    (got, want)
}

/// `||got - want|| / ||want||` against a float64 reference, after the NaN check.
fn rel_err64(what: &str, got: &[f32], want: &[f64]) -> f64 {
    let want32: Vec<f32> = want.iter().map(|&x| x as f32).collect();
    // The NaN check and lengths (rel_err panics on an unwritten element).
    rel_err(what, got, &want32);
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (f64::from(*g) - w).powi(2);
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Every rounded product kernel on a middle step of every case (the forward's with a
/// predecessor, the backward's with a successor, so every tap can be live) within [`PRODUCT_TOL`] of the float64 product of the
/// rounded operands; the fp32 kernel on the same inputs more than ten times further.
pub fn check_unfused_products<E: Executor>(gpu: &CudaBackend<E>) {
    for (i, c) in cases().iter().enumerate() {
        let scan = match c.scan {
            Scan::Row(_) => "row_lstm",
            Scan::Diagonal => "diag_lstm",
        };
        // Middle steps: the forward's reads step s - 1 (s >= 1), the backward's step s + 1
        // (s + 1 < steps).
        let (s_fwd, s_bwd) = (c.steps() / 2, (c.steps() - 1) / 2);
        let seed = 1800 + 10 * i as u64;
        for p in [Precision::Tf32, Precision::Bf16] {
            for backward in [false, true] {
                let (pass, v, s) = if backward {
                    ("ss_bwd_data", 3, s_bwd)
                } else {
                    ("ss_fwd", 2, s_fwd)
                };
                let run = |kernel: &str| {
                    if backward {
                        backward_step(gpu, c, kernel, p, s, seed)
                    } else {
                        forward_step(gpu, c, kernel, p, s, seed)
                    }
                };
                let kernel = format!("{scan}_{pass}_{p}_v{v}");
                let what = format!("{} {kernel} step {s}", c.what());
                let (got, want) = run(&kernel);
                let err = rel_err64(&what, &got, &want);
                eprintln!("{what}: rel err {err:.3e}");
                assert!(
                    err <= PRODUCT_TOL,
                    "{what}: rel err {err:.3e} > {PRODUCT_TOL:.0e}"
                );
                let fp32 = format!("{scan}_{pass}_v{v}");
                let (got32, _) = run(&fp32);
                let gap = rel_err64(&format!("{what} ({fp32})"), &got32, &want);
                eprintln!("{what}: {fp32} (unrounded) rel err {gap:.3e}");
                assert!(
                    gap > 10.0 * PRODUCT_TOL,
                    "{what}: the fp32 kernel is within {gap:.3e}: the data does not show rounding"
                );
            }
        }
    }
}

/// The unfused recurrence of every case at tf32 and bf16: against the CPU twin's unfused
/// recurrence at the same precision, and against the CUDA fused recurrence (tensor-core steps)
/// at the same precision, both within [`FWD_TOL`] / [`BWD_TOL`]; each precision also checks
/// that the twin is further from fp32 than FWD_TOL on the forward, pooled over the cases (a
/// recurrence that computed in fp32 would fail).
pub fn check_unfused_recurrence<E: Executor>(gpu: &CudaBackend<E>) {
    let fp32 = CpuBackend::new();
    for p in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(p);
        let cpu = CpuBackend::new();
        cpu.set_precision(p);
        let mut gap = RoundingGap::default();
        for (i, c) in cases().iter().enumerate() {
            let seed = 1900 + 10 * i as u64;
            let (n, h, w, hd) = (c.n, c.height, c.width, c.hidden);
            let (is_c, is_g) = pair(gpu, &[n, h, w, 4 * hd], seed, 1.0);
            let (w_c, w_g) = pair(gpu, &c.scan.weight_shape(hd), seed + 1, 0.5);
            let (dh_c, dh_g) = pair(gpu, &[n, h, w, hd], seed + 2, 1.0);
            let rec = Recurrence::Unfused;
            let want = c.scan.forward(&cpu, &is_c, &w_c, rec);
            let (d_is_want, dw_want) = c.scan.backward(&cpu, &want, &w_c, &dh_c, rec);
            let got = c.scan.forward(gpu, &is_g, &w_g, rec);
            let (d_is, dw) = c.scan.backward(gpu, &got, &w_g, &dh_g, rec);
            let fused = c.scan.forward(gpu, &is_g, &w_g, Recurrence::Fused);
            let (d_is_f, dw_f) = c.scan.backward(gpu, &fused, &w_g, &dh_g, Recurrence::Fused);
            let ref32 = c.scan.forward(&fp32, &is_c, &w_c, rec);
            let outputs = [
                ("h", &got.h, &want.h, &fused.h, FWD_TOL),
                ("c", &got.c, &want.c, &fused.c, FWD_TOL),
                ("gates", &got.gates, &want.gates, &fused.gates, FWD_TOL),
                ("d_is", &d_is, &d_is_want, &d_is_f, BWD_TOL),
                ("d_w_ss", &dw, &dw_want, &dw_f, BWD_TOL),
            ];
            for (part, g, t, f, bound) in outputs {
                let what = format!("{} {p} unfused {part}", c.what());
                assert_eq!(g.shape, t.shape, "{what}: shapes differ");
                let got_h = download(gpu, g, &what);
                let err = rel_err(&what, &got_h, &t.data);
                let fused_h = download(gpu, f, &what);
                let vs_fused = rel_err(&format!("{what} vs fused"), &got_h, &fused_h);
                eprintln!("{what}: rel err {err:.3e} vs twin, {vs_fused:.3e} vs fused");
                assert!(err <= bound, "{what}: rel err {err:.3e} > {bound:.1e}");
                assert!(
                    vs_fused <= bound,
                    "{what}: {vs_fused:.3e} from the fused recurrence > {bound:.1e}"
                );
            }
            for (t, f) in [
                (&want.h, &ref32.h),
                (&want.c, &ref32.c),
                (&want.gates, &ref32.gates),
            ] {
                gap.add(&t.data, &f.data);
            }
        }
        let gap = gap.value();
        eprintln!("{p}: twin vs fp32 (forward), pooled rel distance {gap:.3e}");
        assert!(
            gap > FWD_TOL,
            "{p}: the twin is within {gap:.3e} of fp32: the data does not show rounding"
        );
    }
    gpu.set_precision(Precision::Fp32);
}

/// At tf32 and bf16, under each version of each scan, the unfused recurrence launches the
/// rounded products (`<scan>_ss_fwd_<p>_v2`, `<scan>_ss_bwd_data_<p>_v3`), the fp32 gate
/// passes and the rounded weight gradient, and no fp32 product (the emulator's counters name
/// the kernels); its outputs are the same bits under every version (the same kernels).
#[test]
fn rounded_products_run_under_every_version() {
    let gpu = crate::counted_emulator(1);
    for scan in [Scan::Row(3), Scan::Diagonal] {
        let name = match scan {
            Scan::Row(_) => "row_lstm",
            Scan::Diagonal => "diag_lstm",
        };
        let hd = 5;
        let (_, is) = pair(&gpu, &[2, 3, 4, 4 * hd], 11, 1.0);
        let (_, w) = pair(&gpu, &scan.weight_shape(hd), 12, 0.5);
        let (_, dh) = pair(&gpu, &[2, 3, 4, hd], 13, 1.0);
        for p in [Precision::Tf32, Precision::Bf16] {
            gpu.set_precision(p);
            let mut first: Option<Vec<Vec<u32>>> = None;
            for v in scan_versions(scan) {
                let _version = gpu.select(scan_version(scan, v, Variants::default()));
                gpu.executor().take_counters();
                let s = scan.forward(&gpu, &is, &w, Recurrence::Unfused);
                let (d_is, dw) = scan.backward(&gpu, &s, &w, &dh, Recurrence::Unfused);
                let launched: Vec<String> = gpu
                    .executor()
                    .take_counters()
                    .into_iter()
                    .map(|c| c.kernel)
                    .collect();
                let tag = format!("{scan:?} v{v} {p}: {launched:?}");
                for k in [
                    format!("{name}_ss_fwd_{p}_v2"),
                    format!("{name}_ss_bwd_data_{p}_v3"),
                    "lstm_gates_fwd_v1".to_string(),
                    "lstm_gates_bwd_v1".to_string(),
                    format!("lstm_ss_bwd_weight_{p}_v2"), // Variants::lstm_weight V2, the default
                ] {
                    assert!(launched.contains(&k), "{tag}: no {k}");
                }
                let fp32_products = launched.iter().any(|k| {
                    (k.starts_with(&format!("{name}_ss_fwd_v"))
                        || k.starts_with(&format!("{name}_ss_bwd_data_v")))
                        && !k.contains(p.name())
                });
                assert!(!fp32_products, "{tag}: an fp32 product ran");
                let bits: Vec<Vec<u32>> = [s.h, s.c, s.gates, d_is, dw]
                    .iter()
                    .map(|t| {
                        let v = t.to_vec(&gpu).expect("download");
                        v.iter().map(|x| x.to_bits()).collect()
                    })
                    .collect();
                match &first {
                    None => first = Some(bits),
                    Some(b) => assert!(*b == bits, "{scan:?} {p}: v{v} differs from v1"),
                }
            }
        }
        gpu.set_precision(Precision::Fp32);
    }
}

/// The rounded products' distance from the unrounded reference is the rounding, not noise:
/// bf16 (7 mantissa bits) rounds coarser than tf32 (10), so on the same inputs the fp32
/// kernel's gap from the bf16 reference exceeds its gap from the tf32 one (a check of the
/// test's reference, which rounds with `Precision::round`).
#[test]
fn the_reference_rounds_as_its_precision() {
    let gpu = crate::emulator(1);
    let c = Case {
        scan: Scan::Row(3),
        n: 1,
        height: 3,
        width: 5,
        hidden: 8,
    };
    let gap = |p: Precision| {
        let (got, want) = forward_step(&gpu, &c, "row_lstm_ss_fwd_v2", p, 1, 77);
        rel_err64("row_lstm_ss_fwd_v2", &got, &want)
    };
    let (t, b) = (gap(Precision::Tf32), gap(Precision::Bf16));
    assert!(b > 4.0 * t, "bf16 gap {b:.3e} vs tf32 gap {t:.3e}");
}

/// The rounded products move exactly the fp32 kernels' memory traffic: the rounding is
/// arithmetic on loaded values (a `cvt` per staged operand and weight word), not an access.
/// One step of each rounded kernel and of the fp32 kernel it derives from, launched directly
/// on the same inputs with the emulator's counters on: the same multiset of access sites
/// (space, op, width, requests, bytes, distinct bytes, sectors, shared wavefronts) and the
/// same sectors read and written. Prints each kernel's totals (a measurement for
/// docs/kernels.md).
#[test]
fn rounded_products_move_the_fp32_kernels_bytes() {
    use pixelrnn::backend::cuda::{EmuOptions, LaunchCounters, MemSpace};
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    let gpu = CudaBackend::with_options(emu, true);
    let traffic = |c: &LaunchCounters| {
        let mut sites: Vec<_> = c
            .sites
            .iter()
            .map(|s| {
                (
                    format!("{:?} {:?}", s.space, s.op),
                    s.access_bytes,
                    s.requests,
                    s.bytes,
                    s.unique_bytes,
                    s.sectors,
                    s.wavefronts,
                )
            })
            .collect();
        sites.sort();
        (sites, c.sectors_read, c.sectors_written)
    };
    let cases = [
        Case {
            scan: Scan::Row(3),
            n: 2,
            height: 3,
            width: 18,
            hidden: 40,
        },
        Case {
            scan: Scan::Diagonal,
            n: 2,
            height: 5,
            width: 4,
            hidden: 40,
        },
    ];
    for c in cases {
        let scan = match c.scan {
            Scan::Row(_) => "row_lstm",
            Scan::Diagonal => "diag_lstm",
        };
        for (pass, v, backward) in [("ss_fwd", 2, false), ("ss_bwd_data", 3, true)] {
            let s = if backward {
                (c.steps() - 1) / 2
            } else {
                c.steps() / 2
            };
            let run = |kernel: &str| {
                gpu.executor().take_counters();
                if backward {
                    backward_step(&gpu, &c, kernel, Precision::Bf16, s, 5)
                } else {
                    forward_step(&gpu, &c, kernel, Precision::Bf16, s, 5)
                };
                let counters = gpu.executor().take_counters();
                let launch = counters
                    .iter()
                    .find(|l| l.kernel == kernel)
                    .unwrap_or_else(|| panic!("{kernel}: no counters"));
                let (global, shared): (Vec<_>, Vec<_>) = launch
                    .sites
                    .iter()
                    .partition(|s| s.space == MemSpace::Global);
                let sectors: u64 = global.iter().map(|s| s.sectors).sum();
                let requests: u64 = global.iter().map(|s| s.requests).sum();
                let unique: u64 = global.iter().map(|s| s.unique_bytes).sum();
                let wavefronts: u64 = shared.iter().map(|s| s.wavefronts).sum();
                println!(
                    "{} {kernel}: {} sites, global {requests} requests {sectors} sectors \
                     (efficiency {:.3}), shared {wavefronts} wavefronts",
                    c.what(),
                    launch.sites.len(),
                    unique as f64 / (32 * sectors).max(1) as f64
                );
                traffic(launch)
            };
            let fp32 = run(&format!("{scan}_{pass}_v{v}"));
            for p in ["tf32", "bf16"] {
                let kernel = format!("{scan}_{pass}_{p}_v{v}");
                assert!(
                    run(&kernel) == fp32,
                    "{}: {kernel} moves other bytes",
                    c.what()
                );
            }
        }
    }
}
