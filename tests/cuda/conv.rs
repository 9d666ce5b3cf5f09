//! Parity of the convolution kernels (`kernels/masked_conv2d.cu`, `kernels/conv_transpose2d.cu`)
//! with their CPU twins: `masked_conv2d` forward and backward (every kernel version, every
//! kernel shape and mask the models use, channel-group and gate-block specs, odd map sizes;
//! the 128x128 GEMM versions v3, v4 and v5 to the bit),
//! its weight gradient in every version (shapes across several 128-wide tiles and position
//! splits, the same bits on every run and every schedule), the one-position
//! `masked_conv2d_forward_at` against the full forward, and `conv_transpose2d` with strides 2
//! and 3. Shapes are small: the emulated runs execute every GPU thread on two CPU cores. The
//! cases are conv_cases.rs's; the memory-counter targets are conv_counters.rs's.

use pixelrnn::backend::cuda::{
    CudaBackend, EmuOptions, Emulator, Executor, MaskedConv2d, MaskedConv2dWeight, Variants,
};
use pixelrnn::backend::{Backend, ConvSpec, Mask};
use pixelrnn::tensor::Tensor;

use crate::{assert_close, pair, FP32_REL_TOL};

crate::parity_tests! {
    masked_conv2d_forward_backward => super::check_masked_conv2d,
    masked_conv2d_gemm_versions_same_bits => super::check_masked_conv2d_gemm_versions_same_bits,
    masked_conv2d_weight_grad_deterministic => super::check_masked_conv2d_weight_deterministic,
    masked_conv2d_forward_at => super::check_masked_conv2d_forward_at,
    masked_conv2d_errors => super::check_masked_conv2d_errors,
    conv_transpose2d_forward_backward => super::check_conv_transpose2d,
}

use crate::conv_cases::{cases, cpu, download, Case};

/// Forward and backward of every case under every version against the CPU twin; the weight
/// gradient must be exactly 0 on masked weights, and `need_dx = false` must give no `dx` and
/// the same `dw`, `db`.
pub fn check_masked_conv2d<E: Executor>(gpu: &CudaBackend<E>) {
    for (k, c) in cases().iter().enumerate() {
        let seed = 100 * k as u64;
        let spec = &c.spec;
        let (x_c, x_g) = pair(gpu, &[c.n, c.h, c.w, c.cin], seed, 1.0);
        let (w_c, w_g) = pair(gpu, &[c.cout, c.cin, spec.kh, spec.kw], seed + 1, 0.5);
        let (b_c, b_g) = pair(gpu, &[c.cout], seed + 2, 0.5);
        let (dy_c, dy_g) = pair(gpu, &[c.n, c.h, c.w, c.cout], seed + 3, 1.0);

        let y_want = cpu().masked_conv2d_forward(&x_c, &w_c, &b_c, spec).unwrap();
        let grads_want = cpu()
            .masked_conv2d_backward(&x_c, &w_c, &dy_c, spec, true)
            .unwrap();
        let dx_want = grads_want.dx.as_ref().expect("cpu dx");

        // Every version of `fwd` and `bwd_data` (the weight gradient's default with each).
        for version in MaskedConv2d::ALL {
            let _selected = gpu.select(Variants {
                masked_conv2d: version,
                ..Variants::default()
            });
            // dw and db here come from the default weight version, checked again below.
            let what = |part: &str| {
                let weight = Variants::default().masked_conv2d_weight;
                format!(
                    "masked_conv2d {version} (weight {weight}) {part}, {}",
                    c.what
                )
            };

            let y = gpu
                .masked_conv2d_forward(&x_g, &w_g, &b_g, spec)
                .unwrap_or_else(|e| panic!("{}: {e}", what("forward")));
            assert_close(&what("forward"), gpu, &y, &y_want, FP32_REL_TOL);

            let grads = gpu
                .masked_conv2d_backward(&x_g, &w_g, &dy_g, spec, true)
                .unwrap_or_else(|e| panic!("{}: {e}", what("backward")));
            let dx = grads.dx.as_ref().expect("need_dx = true gives dx");
            assert_close(&what("dx"), gpu, dx, dx_want, FP32_REL_TOL);
            assert_close(&what("dw"), gpu, &grads.dw, &grads_want.dw, FP32_REL_TOL);
            assert_close(&what("db"), gpu, &grads.db, &grads_want.db, FP32_REL_TOL);
        }
        // Every version of the weight gradient, without dx (the weight kernels do not depend
        // on it); fresh NaN-poisoned outputs each time.
        for weight in MaskedConv2dWeight::ALL {
            let _selected = gpu.select(Variants {
                masked_conv2d_weight: weight,
                ..Variants::default()
            });
            let what = |part: &str| format!("masked_conv2d weight {weight} {part}, {}", c.what);
            let grads = gpu
                .masked_conv2d_backward(&x_g, &w_g, &dy_g, spec, false)
                .unwrap_or_else(|e| panic!("{}: {e}", what("backward without dx")));
            assert!(grads.dx.is_none(), "{}: need_dx = false gave dx", c.what);
            assert_close(&what("dw"), gpu, &grads.dw, &grads_want.dw, FP32_REL_TOL);
            assert_close(&what("db"), gpu, &grads.db, &grads_want.db, FP32_REL_TOL);
            assert_masked_zero(&what("dw"), &download(gpu, &grads.dw, &what("dw")), c);
        }
    }
}

/// The 128x128 GEMM versions (v3; v4, its two-blocks-per-SM build; v5, its cp.async pipeline)
/// share the operands, micro-kernel and FMA order, so their forward and input gradient must
/// agree to the bit on every case, whatever stages, copy widths and zero-fills v5 used.
pub fn check_masked_conv2d_gemm_versions_same_bits<E: Executor>(gpu: &CudaBackend<E>) {
    let bits = |t: &Tensor<CudaBackend<E>>, what: &str| -> Vec<u32> {
        download(gpu, t, what).iter().map(|v| v.to_bits()).collect()
    };
    for (k, c) in cases().iter().enumerate() {
        let seed = 300 + 10 * k as u64;
        let spec = &c.spec;
        let (_, x) = pair(gpu, &[c.n, c.h, c.w, c.cin], seed, 1.0);
        let (_, w) = pair(gpu, &[c.cout, c.cin, spec.kh, spec.kw], seed + 1, 0.5);
        let (_, b) = pair(gpu, &[c.cout], seed + 2, 0.5);
        let (_, dy) = pair(gpu, &[c.n, c.h, c.w, c.cout], seed + 3, 1.0);
        let mut first: Option<(MaskedConv2d, Vec<u32>, Vec<u32>)> = None;
        for version in [MaskedConv2d::V3, MaskedConv2d::V4, MaskedConv2d::V5] {
            let _selected = gpu.select(Variants {
                masked_conv2d: version,
                ..Variants::default()
            });
            let what = format!("masked_conv2d {version}, {}", c.what);
            let y = gpu.masked_conv2d_forward(&x, &w, &b, spec).unwrap();
            let g = gpu.masked_conv2d_backward(&x, &w, &dy, spec, true).unwrap();
            let (y, dx) = (bits(&y, &what), bits(g.dx.as_ref().unwrap(), &what));
            match &first {
                None => first = Some((version, y, dx)),
                Some((v0, y0, dx0)) => {
                    assert!(*y0 == y, "{what}: forward bits differ from {v0}'s");
                    assert!(*dx0 == dx, "{what}: input gradient bits differ from {v0}'s");
                }
            }
        }
    }
}

/// Every structurally masked weight of `c` (taps after the centre, the centre tap's group
/// rule) has a gradient of exactly 0 in `dw` ([cout, cin, kh, kw]).
fn assert_masked_zero(what: &str, dw: &[f32], c: &Case) {
    let spec = &c.spec;
    for (e, v) in dw.iter().enumerate() {
        let (kx, ky) = (e % spec.kw, (e / spec.kw) % spec.kh);
        let (i, o) = (
            (e / (spec.kw * spec.kh)) % c.cin,
            e / (spec.kw * spec.kh * c.cin),
        );
        if !spec.allows(o, i, ky, kx) {
            assert_eq!(
                v.to_bits(),
                0.0f32.to_bits(),
                "{what}: masked weight [{o}, {i}, {ky}, {kx}] is {v}"
            );
        }
    }
}

/// The cases whose weight gradient v2 splits over several position chunks and tiles.
fn split_cases() -> Vec<Case> {
    cases()
        .into_iter()
        .filter(|c| c.what.contains("splits"))
        .collect()
}

/// The split-K weight gradients: v2 and v3 (v2 through cp.async) share the launch, the
/// partials and the summation order, so they must give the same bits.
const SPLIT_WEIGHT_VERSIONS: [MaskedConv2dWeight; 2] =
    [MaskedConv2dWeight::V2, MaskedConv2dWeight::V3];

/// dw and db of `c` by weight gradient `version` on `gpu`, as bits.
fn weight_grad_bits<E: Executor>(
    gpu: &CudaBackend<E>,
    c: &Case,
    seed: u64,
    version: MaskedConv2dWeight,
) -> Vec<u32> {
    let _selected = gpu.select(Variants {
        masked_conv2d_weight: version,
        ..Variants::default()
    });
    let (_, x) = pair(gpu, &[c.n, c.h, c.w, c.cin], seed, 1.0);
    let (_, w) = pair(gpu, &[c.cout, c.cin, c.spec.kh, c.spec.kw], seed + 1, 0.5);
    let (_, dy) = pair(gpu, &[c.n, c.h, c.w, c.cout], seed + 2, 1.0);
    let g = gpu
        .masked_conv2d_backward(&x, &w, &dy, &c.spec, false)
        .unwrap_or_else(|e| panic!("{}: {e}", c.what));
    let mut bits: Vec<u32> = download(gpu, &g.dw, c.what)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    bits.extend(download(gpu, &g.db, c.what).iter().map(|v| v.to_bits()));
    bits
}

/// Weight gradients v2 and v3 give the same bits when run twice (a fixed-order reduction, no
/// atomics), and the same bits as each other: on the device, run to run; the emulated test
/// below adds schedules and workers.
pub fn check_masked_conv2d_weight_deterministic<E: Executor>(gpu: &CudaBackend<E>) {
    for (k, c) in split_cases().iter().enumerate() {
        let seed = 500 + 10 * k as u64;
        let first = weight_grad_bits(gpu, c, seed, MaskedConv2dWeight::V2);
        for version in SPLIT_WEIGHT_VERSIONS {
            let again = weight_grad_bits(gpu, c, seed, version);
            assert!(
                first == again,
                "{}: weight gradient {version} differs from v2's first run",
                c.what
            );
        }
    }
}

/// The same bits under every scheduling seed and worker count of the emulator: the blocks of
/// a split run in a different order and on different threads each time.
#[test]
fn masked_conv2d_weight_grad_same_bits_on_every_schedule() {
    for (k, c) in split_cases().iter().enumerate() {
        let seed = 500 + 10 * k as u64;
        let mut first: Option<Vec<u32>> = None;
        for (schedule, workers) in [(1, 2), (0x5eed, 2), (7, 1), (99, 3)] {
            let exec = Emulator::new(EmuOptions {
                seed: schedule,
                workers,
                bounds_check: true,
            })
            .unwrap_or_else(|e| panic!("emulator: {e}"));
            let gpu = CudaBackend::with_options(exec, true);
            for version in SPLIT_WEIGHT_VERSIONS {
                let bits = weight_grad_bits(&gpu, c, seed, version);
                match &first {
                    None => first = Some(bits),
                    Some(want) => assert!(
                        *want == bits,
                        "{}: weight gradient {version} differs under schedule {schedule}, \
                         {workers} workers",
                        c.what
                    ),
                }
            }
        }
    }
}

/// `masked_conv2d_forward_at` at corners, edges and the interior equals the full forward at
/// that position (the CPU's and the GPU's), for the specs of incremental sampling.
pub fn check_masked_conv2d_forward_at<E: Executor>(gpu: &CudaBackend<E>) {
    let specs = [
        (
            "7x7 mask A, C=3",
            3,
            6,
            ConvSpec::new(7, 7, Mask::A, 3, 3, 6),
        ),
        (
            "7x7 mask A, C=1",
            1,
            4,
            ConvSpec::new(7, 7, Mask::A, 1, 1, 4),
        ),
        (
            "3x3 mask B, C=3",
            5,
            5,
            ConvSpec::new(3, 3, Mask::B, 3, 5, 5),
        ),
        (
            "1x3 mask B gate blocks",
            4,
            8,
            ConvSpec {
                out_block: 2,
                ..ConvSpec::new(1, 3, Mask::B, 3, 4, 8)
            },
        ),
        ("1x1 mask B", 4, 7, ConvSpec::new(1, 1, Mask::B, 3, 4, 7)),
        (
            "3x3 unmasked",
            3,
            5,
            ConvSpec::new(3, 3, Mask::None, 1, 3, 5),
        ),
        // Gated PixelCNN's vertical stack (incremental sampling evaluates it per position).
        (
            "3x3 vertical, C=3",
            4,
            8,
            ConvSpec::new(3, 3, Mask::Vertical, 3, 4, 8),
        ),
    ];
    let (n, h, w) = (2, 5, 6);
    for (k, (what, cin, cout, spec)) in specs.into_iter().enumerate() {
        let seed = 7000 + 10 * k as u64;
        let (x_c, x_g) = pair(gpu, &[n, h, w, cin], seed, 1.0);
        let (w_c, w_g) = pair(gpu, &[cout, cin, spec.kh, spec.kw], seed + 1, 0.5);
        let (b_c, b_g) = pair(gpu, &[cout], seed + 2, 0.5);
        let full_c = cpu()
            .masked_conv2d_forward(&x_c, &w_c, &b_c, &spec)
            .unwrap();
        let full_g = gpu
            .masked_conv2d_forward(&x_g, &w_g, &b_g, &spec)
            .unwrap_or_else(|e| panic!("{what}: forward: {e}"));
        let packed = gpu
            .masked_conv2d_pack(&w_g, &spec)
            .unwrap_or_else(|e| panic!("{what}: pack: {e}"));
        for (i, j) in [(0, 0), (0, w - 1), (2, 3), (h - 1, 0), (h - 1, w - 1)] {
            let at = gpu
                .masked_conv2d_forward_at(&x_g, &packed, &b_g, &spec, i, j)
                .unwrap_or_else(|e| panic!("{what} at ({i}, {j}): {e}"));
            let want = cpu().read_position(&full_c, i, j).unwrap();
            assert_close(
                &format!("{what} at ({i}, {j}) vs cpu"),
                gpu,
                &at,
                &want,
                FP32_REL_TOL,
            );
            let full_at = gpu.read_position(&full_g, i, j).unwrap();
            let full_at = crate::cpu_tensor(&full_at.shape, &download(gpu, &full_at, what));
            assert_close(
                &format!("{what} at ({i}, {j}) vs gpu forward"),
                gpu,
                &at,
                &full_at,
                FP32_REL_TOL,
            );
        }
    }
}

/// Bad shapes and unknown versions are errors, not panics or launches.
pub fn check_masked_conv2d_errors<E: Executor>(gpu: &CudaBackend<E>) {
    let spec = ConvSpec::new(3, 3, Mask::B, 1, 2, 4);
    let (_, x) = pair(gpu, &[1, 4, 4, 2], 1, 1.0);
    let (_, w) = pair(gpu, &[4, 2, 3, 3], 2, 1.0);
    let (_, b) = pair(gpu, &[4], 3, 1.0);
    let (_, bad_b) = pair(gpu, &[5], 4, 1.0);
    let (_, bad_w) = pair(gpu, &[4, 3, 3, 3], 5, 1.0);
    let (_, dy) = pair(gpu, &[1, 4, 4, 4], 6, 1.0);
    let (_, bad_dy) = pair(gpu, &[1, 4, 4, 3], 7, 1.0);
    assert!(gpu.masked_conv2d_forward(&x, &w, &bad_b, &spec).is_err());
    assert!(gpu.masked_conv2d_forward(&x, &bad_w, &b, &spec).is_err());
    let even = ConvSpec::new(2, 1, Mask::None, 1, 2, 4);
    assert!(gpu.masked_conv2d_forward(&x, &w, &b, &even).is_err());
    assert!(gpu
        .masked_conv2d_backward(&x, &w, &bad_dy, &spec, true)
        .is_err());
    let packed = gpu.masked_conv2d_pack(&w, &spec).expect("pack");
    assert!(gpu
        .masked_conv2d_forward_at(&x, &packed, &b, &spec, 4, 0)
        .is_err());
    assert!(gpu
        .masked_conv2d_forward_at(&x, &packed, &bad_b, &spec, 0, 0)
        .is_err());
    // Versions are typed: an unknown one is refused when it is named, before any launch.
    let err = MaskedConv2d::try_from(6);
    assert!(err.is_err(), "version 6 does not exist");
    assert!(MaskedConv2dWeight::try_from(4).is_err(), "weight version 4");
    let _v1 = gpu.select(Variants {
        masked_conv2d: MaskedConv2d::V1,
        masked_conv2d_weight: MaskedConv2dWeight::V1,
        ..Variants::default()
    });
    assert!(gpu
        .masked_conv2d_backward(&x, &w, &dy, &spec, false)
        .is_ok());
    // conv_transpose2d: k - r odd, and a bias of the wrong length.
    let (_, tw) = pair(gpu, &[2, 3, 3, 3], 8, 1.0);
    let (_, tb) = pair(gpu, &[3], 9, 1.0);
    assert!(gpu.conv_transpose2d_forward(&x, &tw, &tb, 2).is_err());
    assert!(gpu.conv_transpose2d_forward(&x, &tw, &b, 3).is_err());
    assert!(gpu.conv_transpose2d_forward(&x, &tw, &tb, 3).is_ok());
}

/// `conv_transpose2d` forward and backward with strides 2 and 3, kernels `k = r` (no overlap)
/// and `k = r + 2` (overlapping taps, padding 1), against the CPU twin.
pub fn check_conv_transpose2d<E: Executor>(gpu: &CudaBackend<E>) {
    let (cin, cout) = (3, 5);
    // (stride, kernel, input [n, h, w]); the last input has 264 positions, more than the 256
    // threads of a reduction block (the weight gradient reduces over input positions, the bias
    // gradient over the 320 or more output positions of every case).
    let configs = [
        (2, 2, [2, 4, 5]),
        (2, 4, [2, 4, 5]),
        (3, 3, [2, 4, 5]),
        (3, 5, [2, 4, 5]),
        (2, 4, [2, 12, 11]),
    ];
    for (k_case, (r, k, [n, h, w])) in configs.into_iter().enumerate() {
        let what = format!("conv_transpose2d stride {r}, kernel {k}, input {n}x{h}x{w}");
        let seed = 9000 + 10 * k_case as u64;
        let (x_c, x_g) = pair(gpu, &[n, h, w, cin], seed, 1.0);
        let (w_c, w_g) = pair(gpu, &[cin, cout, k, k], seed + 1, 0.5);
        let (b_c, b_g) = pair(gpu, &[cout], seed + 2, 0.5);
        let (dy_c, dy_g) = pair(gpu, &[n, h * r, w * r, cout], seed + 3, 1.0);

        let y_want = cpu().conv_transpose2d_forward(&x_c, &w_c, &b_c, r).unwrap();
        let y = gpu
            .conv_transpose2d_forward(&x_g, &w_g, &b_g, r)
            .unwrap_or_else(|e| panic!("{what}: forward: {e}"));
        assert_close(&format!("{what} forward"), gpu, &y, &y_want, FP32_REL_TOL);

        let want = cpu()
            .conv_transpose2d_backward(&x_c, &w_c, &dy_c, r, true)
            .unwrap();
        for need_dx in [true, false] {
            let got = gpu
                .conv_transpose2d_backward(&x_g, &w_g, &dy_g, r, need_dx)
                .unwrap_or_else(|e| panic!("{what}: backward: {e}"));
            match (&got.dx, need_dx) {
                (Some(dx), true) => assert_close(
                    &format!("{what} dx"),
                    gpu,
                    dx,
                    want.dx.as_ref().expect("cpu dx"),
                    FP32_REL_TOL,
                ),
                (None, false) => {}
                _ => panic!(
                    "{what}: need_dx = {need_dx} but dx is {:?}",
                    got.dx.is_some()
                ),
            }
            assert_close(&format!("{what} dw"), gpu, &got.dw, &want.dw, FP32_REL_TOL);
            assert_close(&format!("{what} db"), gpu, &got.db, &want.db, FP32_REL_TOL);
        }
    }
}
