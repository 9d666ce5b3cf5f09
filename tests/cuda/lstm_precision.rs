//! The CUDA recurrences at tf32/bf16 (cuda/lstm_precision.rs): the fused, unfused and
//! persistent paths with the skew folded and the sampler's `*_forward_at` run (their parity
//! with the twin: tests/cuda/lstm_mma.rs, tests/cuda/lstm_unfused_precision.rs,
//! tests/cuda/lstm_persistent_precision.rs, tests/cuda/lstm_at_precision.rs); the
//! materialised Diagonal layout must refuse with one clear error naming the
//! op, the path and the precision instead of silently running fp32; at fp32 the same calls run
//! and match the CPU twin.

use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, Executor, Variants};
use pixelrnn::backend::{Backend, LstmState, Precision, Recurrence};
use pixelrnn::error::Error;
use pixelrnn::tensor::Tensor;

crate::parity_tests! {
    recurrences_at_tf32_and_bf16_run_or_refuse => super::check_recurrences_at_tf32_and_bf16_run_or_refuse,
}

/// `r` is the refusal of `op` by `variant` at `p`, and prints as one line naming them.
fn assert_refused<T>(r: pixelrnn::error::Result<T>, op: &str, variant: &str, p: Precision) {
    let Err(e) = r else {
        panic!("{op} ({variant}) at {p}: ran instead of refusing");
    };
    let msg = e.to_string();
    assert!(
        matches!(e, Error::PrecisionUnsupported { .. }),
        "{op} ({variant}) at {p}: another error: {msg}"
    );
    for part in [op, variant, p.name()] {
        assert!(
            msg.contains(part),
            "{op} ({variant}) at {p}: `{msg}` lacks `{part}`"
        );
    }
    assert!(!msg.contains('\n'), "not one line: {msg}");
}

type G<E> = CudaBackend<E>;
/// A backward's `(d_is, d_w_ss)`.
type Grads<E> = pixelrnn::error::Result<(Tensor<G<E>>, Tensor<G<E>>)>;

fn forward<B: Backend>(
    gpu: &B,
    diagonal: bool,
    is: &Tensor<B>,
    w: &Tensor<B>,
    rec: Recurrence,
) -> pixelrnn::error::Result<LstmState<B>> {
    if diagonal {
        gpu.diag_lstm_forward(is, w, rec)
    } else {
        gpu.row_lstm_forward(is, w, rec)
    }
}

fn backward<E: Executor>(
    gpu: &G<E>,
    diagonal: bool,
    state: &LstmState<G<E>>,
    w: &Tensor<G<E>>,
    dh: &Tensor<G<E>>,
    rec: Recurrence,
) -> Grads<E> {
    if diagonal {
        gpu.diag_lstm_backward(state, w, dh, rec)
    } else {
        gpu.row_lstm_backward(state, w, dh, rec)
    }
}

pub fn check_recurrences_at_tf32_and_bf16_run_or_refuse<E: Executor>(gpu: &CudaBackend<E>) {
    let (n, hgt, wid, hd) = (2, 3, 4, 8);
    let g = 4 * hd;
    for diagonal in [false, true] {
        let scan = if diagonal { "diag_lstm" } else { "row_lstm" };
        let wshape = if diagonal {
            [g, hd, 2, 1]
        } else {
            [g, hd, 1, 3]
        };
        let (is_c, is) = crate::pair(gpu, &[n, hgt, wid, g], 1, 1.0);
        let (w_c, w) = crate::pair(gpu, &wshape, 2, 0.3);
        let (_, dh) = crate::pair(gpu, &[n, hgt, wid, hd], 3, 1.0);
        let layouts: &[DiagLstmLayout] = if diagonal {
            &[DiagLstmLayout::Folded, DiagLstmLayout::Materialised]
        } else {
            &[DiagLstmLayout::Folded]
        };
        for &layout in layouts {
            let _sel = gpu.select(Variants {
                diag_lstm_layout: layout,
                ..Variants::default()
            });
            for rec in [
                Recurrence::Fused,
                Recurrence::Unfused,
                Recurrence::Persistent,
            ] {
                let variant = match (layout, rec) {
                    (DiagLstmLayout::Materialised, _) => "materialised-layout",
                    (_, Recurrence::Fused) => "fused",
                    (_, Recurrence::Unfused) => "unfused",
                    (_, Recurrence::Persistent) => "persistent",
                };
                // The fp32 state that the backward refusals are asked with; fp32 still runs
                // and matches the twin.
                gpu.set_precision(Precision::Fp32);
                let state = forward(gpu, diagonal, &is, &w, rec).expect("fp32 forward");
                let cpu = pixelrnn::backend::cpu::CpuBackend::new();
                let want = forward(&cpu, diagonal, &is_c, &w_c, rec).expect("cpu forward");
                crate::assert_close(
                    &format!("{scan} {variant} fp32 h"),
                    gpu,
                    &state.h,
                    &want.h,
                    crate::DEEP_REL_TOL,
                );
                for p in [Precision::Tf32, Precision::Bf16] {
                    gpu.set_precision(p);
                    if variant == "fused" || variant == "unfused" || variant == "persistent" {
                        let st = forward(gpu, diagonal, &is, &w, rec)
                            .unwrap_or_else(|e| panic!("{scan} {variant} at {p}: {e}"));
                        backward(gpu, diagonal, &st, &w, &dh, rec)
                            .unwrap_or_else(|e| panic!("{scan} {variant} backward at {p}: {e}"));
                        continue;
                    }
                    let fwd = format!("{scan}_forward");
                    let bwd = format!("{scan}_backward");
                    assert_refused(forward(gpu, diagonal, &is, &w, rec), &fwd, variant, p);
                    assert_refused(
                        backward(gpu, diagonal, &state, &w, &dh, rec),
                        &bwd,
                        variant,
                        p,
                    );
                }
                gpu.set_precision(Precision::Fp32);
            }
        }
        // The sampler's one-position step runs at every precision (no refusal).
        let (_, is_at) = crate::pair(gpu, &[n, g], 4, 1.0);
        let mut hm =
            Tensor::from_slice(gpu, &[n, hgt, wid, hd], &vec![0.0; n * hgt * wid * hd]).unwrap();
        let mut cm = hm.clone();
        for p in Precision::ALL {
            gpu.set_precision(p);
            let r = if diagonal {
                gpu.diag_lstm_forward_at(&is_at, &w, &mut hm, &mut cm, 1, 1)
            } else {
                gpu.row_lstm_forward_at(&is_at, &w, &mut hm, &mut cm, 1, 1)
            };
            r.unwrap_or_else(|e| panic!("{scan}_forward_at at {p}: {e}"));
        }
        gpu.set_precision(Precision::Fp32);
    }
}
