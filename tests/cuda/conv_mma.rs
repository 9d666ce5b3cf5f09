//! Parity of masked_conv2d's tensor-core kernels (kernels/masked_conv2d_mma.cu,
//! kernels/masked_conv2d_mma_weight.cu) with their CPU twin: the CPU backend at the same
//! precision (operands rounded with the same conversions, fp32 accumulation). For tf32 and
//! bf16: forward, input, weight and bias gradients on shapes with ragged M (positions), N
//! (features) and K (live taps x features) against the 128 x 64 x 16 tiles, masks A and B with
//! 1 and 3 channel groups, several position splits of the weight gradient; masked weights get
//! exactly 0; the same bits run to run; causality exact at every precision.
//!
//! Tolerance: [`MMA_REL_TOL`] (pixelrnn::parity, with its reason). Each check also asserts
//! that the fp32 result is further than that from the twin, so that a kernel that skipped the
//! rounding (computing fp32) would fail.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{Backend, ConvSpec, Mask, Precision};
use pixelrnn::parity::{l2_rel_err, MMA_REL_TOL};

use crate::conv_cases::{self, case, download, Case};
use crate::{assert_close, pair, rel_err, RoundingGap};

crate::parity_tests! {
    masked_conv2d_mma_forward_backward => super::check_masked_conv2d_mma,
    masked_conv2d_mma_causal => super::check_masked_conv2d_mma_causal,
}

/// The shapes the models use ([`conv_cases::cases`]), then the edges of the tensor-core tiles
/// (128 positions x 64 features, K chunks of 16; weight gradient 128 outputs x 64 columns,
/// splits of a multiple of 16 positions) that those do not reach.
fn cases() -> Vec<Case> {
    let plain = |kh, kw, mask, groups, cin, cout| ConvSpec::new(kh, kw, mask, groups, cin, cout);
    let mut all = conv_cases::cases();
    all.extend([
        // 143 positions: two position tiles, the second 15 rows.
        case(
            "3x3 mask B, C=1",
            [1, 13, 11],
            5,
            9,
            plain(3, 3, Mask::B, 1, 5, 9),
        ),
        // Weight gradient: 2 x 3 tiles (130 outputs, 150 columns), 2 position splits (899
        // positions: 464 + 435, the last ending inside a chunk of 16).
        case(
            "3x3 mask A, C=3, 2x3 tiles, 2 splits",
            [1, 29, 31],
            30,
            130,
            plain(3, 3, Mask::A, 3, 30, 130),
        ),
    ]);
    all
}

/// The CPU twin at `precision`.
fn twin(precision: Precision) -> CpuBackend {
    let cpu = CpuBackend::new();
    cpu.set_precision(precision);
    cpu
}

/// Forward and backward of every case at tf32 and bf16 against the twin at the same
/// precision; masked weights exactly 0; dw and db the same bits when run again.
pub fn check_masked_conv2d_mma<E: Executor>(gpu: &CudaBackend<E>) {
    for precision in [Precision::Tf32, Precision::Bf16] {
        gpu.set_precision(precision);
        let cpu = twin(precision);
        let fp32 = CpuBackend::new();
        // ||twin - fp32|| over every output of every case: the rounding must show.
        let mut gap = RoundingGap::default();
        for (k, c) in cases().iter().enumerate() {
            let seed = 700 + 10 * k as u64;
            let spec = &c.spec;
            let (n, h, w) = (c.n, c.h, c.w);
            let (x_c, x_g) = pair(gpu, &[n, h, w, c.cin], seed, 1.0);
            let (w_c, w_g) = pair(gpu, &[c.cout, c.cin, spec.kh, spec.kw], seed + 1, 0.5);
            let (b_c, b_g) = pair(gpu, &[c.cout], seed + 2, 0.5);
            let (dy_c, dy_g) = pair(gpu, &[n, h, w, c.cout], seed + 3, 1.0);
            let what = |part: &str| format!("masked_conv2d {precision} {part}, {}", c.what);

            let y_want = cpu.masked_conv2d_forward(&x_c, &w_c, &b_c, spec).unwrap();
            let want = cpu
                .masked_conv2d_backward(&x_c, &w_c, &dy_c, spec, true)
                .unwrap();
            let y = gpu
                .masked_conv2d_forward(&x_g, &w_g, &b_g, spec)
                .unwrap_or_else(|e| panic!("{}: {e}", what("forward")));
            assert_close(&what("forward"), gpu, &y, &y_want, MMA_REL_TOL);
            let grads = gpu
                .masked_conv2d_backward(&x_g, &w_g, &dy_g, spec, true)
                .unwrap_or_else(|e| panic!("{}: {e}", what("backward")));
            let dx_want = want.dx.as_ref().expect("cpu dx");
            assert_close(
                &what("dx"),
                gpu,
                grads.dx.as_ref().expect("dx"),
                dx_want,
                MMA_REL_TOL,
            );
            assert_close(&what("dw"), gpu, &grads.dw, &want.dw, MMA_REL_TOL);
            assert_close(&what("db"), gpu, &grads.db, &want.db, MMA_REL_TOL);
            let dw = download(gpu, &grads.dw, &what("dw"));
            for (e, &g) in dw.iter().enumerate() {
                if !spec_allows(c, e) {
                    assert_eq!(g.to_bits(), 0, "{}: masked weight {e} is {g}", what("dw"));
                }
            }
            // Without dx: the same weight gradient, bit for bit (a fixed-order reduction).
            let again = gpu
                .masked_conv2d_backward(&x_g, &w_g, &dy_g, spec, false)
                .unwrap_or_else(|e| panic!("{}: {e}", what("backward without dx")));
            assert!(again.dx.is_none());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&download(gpu, &again.dw, "dw")),
                bits(&dw),
                "{}",
                what("dw again")
            );
            assert_eq!(
                bits(&download(gpu, &again.db, "db")),
                bits(&download(gpu, &grads.db, "db")),
                "{}",
                what("db again")
            );

            // The twin's distance from fp32, pooled over the GEMM outputs.
            let y32 = fp32.masked_conv2d_forward(&x_c, &w_c, &b_c, spec).unwrap();
            let g32 = fp32
                .masked_conv2d_backward(&x_c, &w_c, &dy_c, spec, true)
                .unwrap();
            for (t, f) in [
                (&y_want.data, &y32.data),
                (&dx_want.data, &g32.dx.as_ref().expect("dx").data),
                (&want.dw.data, &g32.dw.data),
            ] {
                gap.add(t, f);
            }
            // bf16's rounding is visible in every case with live taps.
            if precision == Precision::Bf16 && !spec.taps().is_empty() {
                let gap = rel_err(&what("twin vs fp32"), &y_want.data, &y32.data);
                assert!(
                    gap > 10.0 * MMA_REL_TOL,
                    "{}: gap {gap:e}",
                    what("twin vs fp32")
                );
            }
        }
        let gap = gap.value();
        assert!(
            gap > 2.0 * MMA_REL_TOL && gap < precision.rel_tol_vs_fp32(),
            "{precision}: the twin is {gap:e} from fp32"
        );
        // The backend's precision is the one that was set, and setting fp32 restores the fp32
        // kernels (their result: within fp32 noise of the fp32 CPU).
        assert_eq!(gpu.precision(), precision);
    }
    gpu.set_precision(Precision::Fp32);
    let c = &cases()[2];
    let (n, h, w) = (c.n, c.h, c.w);
    let (x_c, x_g) = pair(gpu, &[n, h, w, c.cin], 1, 1.0);
    let (w_c, w_g) = pair(gpu, &[c.cout, c.cin, c.spec.kh, c.spec.kw], 2, 0.5);
    let (b_c, b_g) = pair(gpu, &[c.cout], 3, 0.5);
    let y = gpu
        .masked_conv2d_forward(&x_g, &w_g, &b_g, &c.spec)
        .unwrap();
    let want = CpuBackend::new()
        .masked_conv2d_forward(&x_c, &w_c, &b_c, &c.spec)
        .unwrap();
    let err = l2_rel_err(&download(gpu, &y, "fp32 forward"), &want.data);
    assert!(
        err <= pixelrnn::parity::FP32_REL_TOL,
        "fp32 after bf16: {err:e}"
    );
}

/// Whether weight element `e` ([cout, cin, kh, kw]) of case `c` is live.
fn spec_allows(c: &Case, e: usize) -> bool {
    let s = &c.spec;
    let (kx, ky) = (e % s.kw, (e / s.kw) % s.kh);
    let (i, o) = ((e / (s.kw * s.kh)) % c.cin, e / (s.kw * s.kh * c.cin));
    s.allows(o, i, ky, kx)
}

/// Causality at every precision: changing the input at one position (every feature) leaves
/// every output at an earlier raster position bit-identical, for masks A and B (the packed
/// weights hold exact zeros where the mask cuts, whatever the rounding).
pub fn check_masked_conv2d_mma_causal<E: Executor>(gpu: &CudaBackend<E>) {
    let specs = [
        ("3x3 mask B, C=3", ConvSpec::new(3, 3, Mask::B, 3, 6, 9)),
        ("5x5 mask A, C=1", ConvSpec::new(5, 5, Mask::A, 1, 6, 9)),
    ];
    let (n, h, w, cin, cout) = (1, 6, 7, 6, 9);
    for precision in Precision::ALL {
        gpu.set_precision(precision);
        for (what, spec) in &specs {
            let (mut x_c, x_g) = pair(gpu, &[n, h, w, cin], 41, 1.0);
            let (_, w_g) = pair(gpu, &[cout, cin, spec.kh, spec.kw], 42, 0.5);
            let (_, b_g) = pair(gpu, &[cout], 43, 0.5);
            let y0 = download(
                gpu,
                &gpu.masked_conv2d_forward(&x_g, &w_g, &b_g, spec).unwrap(),
                what,
            );
            let p = 3 * w + 4; // (3, 4)
            for v in &mut x_c.data[p * cin..(p + 1) * cin] {
                *v += 0.75;
            }
            let x2 = crate::to_gpu(gpu, &x_c);
            let y1 = download(
                gpu,
                &gpu.masked_conv2d_forward(&x2, &w_g, &b_g, spec).unwrap(),
                what,
            );
            for q in 0..p {
                for o in 0..cout {
                    assert_eq!(
                        y0[q * cout + o].to_bits(),
                        y1[q * cout + o].to_bits(),
                        "{precision} {what}: output ({q}, {o}) depends on position {p}"
                    );
                }
            }
            // ... and the perturbation does reach later outputs (the check can fail).
            assert!(
                (p + 1..h * w).any(|q| y0[q * cout] != y1[q * cout]),
                "{precision} {what}: the perturbation changed nothing"
            );
        }
    }
    gpu.set_precision(Precision::Fp32);
}

/// The tensor-core kernels' memory counters (the emulator's, docs/emulator.md) at a 3x3
/// mask-B 64 -> 64 layer on 2 x 8 x 8 (one 128-position tile, one 64-feature tile): every pass
/// at both precisions, printed for docs/kernels.md, with the design targets asserted:
/// byte-weighted global efficiency >= 80 % (the gathers read 32- or 64-byte runs), shared
/// accesses at most 2x their conflict-free wavefronts (the fragment reads conflict-free by the
/// pitch; bf16's packed-weight tile stores 2-way).
#[test]
fn masked_conv2d_mma_counters_meet_the_targets() {
    use crate::conv_counters::{assert_coalesced_and_conflict_free, conv_counters_at, Pass};
    use pixelrnn::backend::cuda::Variants;
    let (cin, cout) = (64, 64);
    let spec = ConvSpec::new(3, 3, Mask::B, 3, cin, cout);
    for precision in [Precision::Tf32, Precision::Bf16] {
        for (pass, kernel) in [
            (Pass::Forward, "fwd"),
            (Pass::Data, "bwd_data"),
            (Pass::Weight, "bwd_weight"),
        ] {
            let kernel = format!("masked_conv2d_{kernel}_{precision}_v1");
            let launches = conv_counters_at(
                [2, 8, 8],
                cin,
                cout,
                &spec,
                Variants::default(),
                pass,
                precision,
            );
            let k = launches
                .iter()
                .find(|k| k.kernel == kernel)
                .unwrap_or_else(|| panic!("no {kernel} launch"));
            assert_coalesced_and_conflict_free(k, &kernel);
        }
    }
}
