//! `pixelrnn bench` on the CUDA backend: each row runs under the kernel variants chosen for
//! it and puts back the selection it found, so the training steps timed after the op rows run
//! the default variants. (Issue 15: the op rows used to reset `masked_conv2d` to v1 instead
//! of its default v2, and every training step after them was timed with v1.)

use pixelrnn::backend::cuda::{CudaBackend, DiagLstmLayout, MaskedConv2d, Variants};
use pixelrnn::backend::Recurrence;
use pixelrnn::bench::{self, ExecTimer, Options, Part};
use pixelrnn::models::ModelKind;

crate::parity_tests! {
    bench_restores_default_variants => super::check_bench_restores_default_variants,
}

/// The masked_conv2d forward rows (every version), then a PixelCNN step and a Diagonal
/// BiLSTM step by the fused, unfused and persistent recurrences in both layouts, at every precision, on
/// the tiny size: each op row ran under its own version, each step under the defaults (but for
/// its layout), the steps that refuse their precision are `skipped`, and the defaults are in
/// force afterwards.
pub fn check_bench_restores_default_variants<E: ExecTimer>(gpu: &CudaBackend<E>) {
    let o = Options {
        part: Part::All,
        iters: 1,
        step_iters: 1,
        warmup: 0,
        models: vec![ModelKind::PixelCnn, ModelKind::DiagBiLstm],
        configs: vec![bench::config("tiny").expect("the tiny config")],
        recurrences: vec![
            Recurrence::Fused,
            Recurrence::Unfused,
            Recurrence::Persistent,
        ],
        op_filter: vec!["masked_conv2d fwd".into()],
        precisions: pixelrnn::backend::Precision::ALL.to_vec(),
    };
    let report = bench::run(gpu, &o, &mut |_| {}).unwrap_or_else(|e| panic!("bench: {e}"));
    for r in &report.rows {
        // At tf32/bf16 the fused, unfused and persistent recurrences with the skew folded have
        // CUDA kernels (cuda/lstm_precision.rs): the materialised layout's step rows are
        // skipped with the refusal, naming the op and the precision; every other row runs (the
        // unfused and persistent tf32/bf16 rows too, validated against the twin: issue 18).
        let refused = r.kind == "step"
            && r.variant.contains("materialised")
            && (r.variant.contains("/tf32") || r.variant.contains("/bf16"));
        if refused {
            assert_eq!(r.status, "skipped", "{} {}: {}", r.name, r.variant, r.note);
            assert!(
                r.note.contains("diag_lstm_forward")
                    && r.note.contains("materialised")
                    && r.note.contains(&r.variant[r.variant.len() - 4..]),
                "{} {}: {}",
                r.name,
                r.variant,
                r.note
            );
            continue;
        }
        assert_eq!(
            r.status, "ok",
            "{} {} {}: {}",
            r.name, r.shape, r.variant, r.note
        );
    }
    let ops: Vec<_> = report.rows.iter().filter(|r| r.kind == "op").collect();
    for version in MaskedConv2d::ALL {
        let rows: Vec<_> = ops
            .iter()
            .filter(|r| r.variant == version.to_string())
            .collect();
        assert_eq!(rows.len(), 4, "masked_conv2d fwd {version} rows");
        for r in rows {
            let want = Variants {
                masked_conv2d: version,
                ..Variants::default()
            };
            assert_eq!(
                r.variants,
                Some(want),
                "{} {} {}",
                r.name,
                r.shape,
                r.variant
            );
        }
    }
    let steps: Vec<_> = report.rows.iter().filter(|r| r.kind == "step").collect();
    assert_eq!(
        steps.len(),
        7 * pixelrnn::backend::Precision::ALL.len(),
        "pixelcnn, diag-bilstm fused, unfused and persistent, folded and materialised, at each precision"
    );
    let unfused_rounded = steps
        .iter()
        .filter(|r| {
            r.recurrence.as_deref() == Some("unfused")
                && !r.variant.contains("materialised")
                && (r.variant.contains("/tf32") || r.variant.contains("/bf16"))
        })
        .count();
    assert_eq!(
        unfused_rounded, 2,
        "the unfused tf32 and bf16 rows (folded)"
    );
    let persistent_rounded = steps
        .iter()
        .filter(|r| {
            r.recurrence.as_deref() == Some("persistent")
                && !r.variant.contains("materialised")
                && (r.variant.contains("/tf32") || r.variant.contains("/bf16"))
        })
        .count();
    assert_eq!(
        persistent_rounded, 2,
        "the persistent tf32 and bf16 rows (folded)"
    );
    for r in steps {
        let layout = if r.variant.contains("/materialised") {
            DiagLstmLayout::Materialised
        } else {
            DiagLstmLayout::Folded
        };
        let want = Variants {
            diag_lstm_layout: layout,
            ..Variants::default()
        };
        assert_eq!(
            r.variants,
            Some(want),
            "{} {}: timed after the op rows, not under the default variants",
            r.name,
            r.variant
        );
    }
    assert_eq!(gpu.variants(), Variants::default(), "after the bench");
}
