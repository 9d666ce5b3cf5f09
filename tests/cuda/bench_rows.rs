//! `pixelrnn bench`'s recurrence rows: one row per distinct kernel. v3 of the recurrences is
//! v2 but for the backward through time, v4 and v5 are v3 but for the persistent recurrence,
//! v6 and v7 are v2 but for it, v8 is v7 but for the stepwise kernels, so under the fused
//! recurrence the forward rows time v1, `v2+v3+v4+v5+v6+v7` (under v2's selection) and v8 in
//! each layout and the backward rows v1, `v2+v6+v7`, `v3+v4+v5` and v8; under the persistent
//! recurrence the forward rows v1, `v2+v3`, v4, v5, v6 and `v7+v8`, the backward rows v1 to v6
//! and `v7+v8` (src/bench/timing.rs); every row validated.
use pixelrnn::backend::cuda::{CudaBackend, DiagLstm, DiagLstmLayout, RowLstm, Variants};
use pixelrnn::backend::Recurrence;
use pixelrnn::bench::{self, ExecTimer, Options, Part};

crate::parity_tests! {
    bench_lstm_rows_once_per_kernel => super::check_lstm_rows,
}

/// The `(variant, layout)` labels of the op rows named `name` of recurrence `rec`, in order.
fn labels(report: &bench::Report, name: &str, rec: &str) -> Vec<(String, Option<String>)> {
    report
        .rows
        .iter()
        .filter(|r| r.kind == "op" && r.name == name && r.recurrence.as_deref() == Some(rec))
        .map(|r| (r.variant.clone(), r.layout.clone()))
        .collect()
}

pub fn check_lstm_rows<E: ExecTimer>(gpu: &CudaBackend<E>) {
    let o = Options {
        part: Part::Ops,
        iters: 1,
        step_iters: 1,
        warmup: 0,
        models: vec![],
        configs: vec![bench::config("tiny").expect("the tiny config")],
        recurrences: vec![Recurrence::Fused, Recurrence::Persistent],
        op_filter: [
            "row_lstm fwd",
            "row_lstm bwd",
            "diag_lstm fwd",
            "diag_lstm bwd",
        ]
        .map(String::from)
        .to_vec(),
        precisions: vec![pixelrnn::backend::Precision::Fp32],
    };
    let report = bench::run(gpu, &o, &mut |_| {}).unwrap_or_else(|e| panic!("bench: {e}"));
    for r in &report.rows {
        assert_eq!(r.status, "ok", "{} {}: {}", r.name, r.variant, r.note);
    }
    let plain = |v: &[&str]| -> Vec<(String, Option<String>)> {
        v.iter().map(|s| (s.to_string(), None)).collect()
    };
    let laid = |v: &[&str]| -> Vec<(String, Option<String>)> {
        ["folded", "materialised"]
            .iter()
            .flat_map(|l| v.iter().map(move |s| (s.to_string(), Some(l.to_string()))))
            .collect()
    };
    let fused = "fused";
    assert_eq!(
        labels(&report, "row_lstm fwd", fused),
        plain(&["v1", "v2+v3+v4+v5+v6+v7", "v8"])
    );
    // Under the fused recurrence v4's and v5's backward is v3's kernels, v6's and v7's v2's (they
    // differ in the persistent recurrence only): one row each.
    assert_eq!(
        labels(&report, "row_lstm bwd", fused),
        plain(&["v1", "v2+v6+v7", "v3+v4+v5", "v8"])
    );
    assert_eq!(
        labels(&report, "diag_lstm fwd", fused),
        laid(&["v1", "v2+v3+v4+v5+v6+v7", "v8"])
    );
    assert_eq!(
        labels(&report, "diag_lstm bwd", fused),
        laid(&["v1", "v2+v6+v7", "v3+v4+v5", "v8"])
    );
    // Under the persistent recurrence v4 to v7 have a forward and a backward kernel of their
    // own.
    let persistent = "persistent";
    assert_eq!(
        labels(&report, "row_lstm fwd", persistent),
        plain(&["v1", "v2+v3", "v4", "v5", "v6", "v7+v8"])
    );
    assert_eq!(
        labels(&report, "row_lstm bwd", persistent),
        plain(&["v1", "v2", "v3", "v4", "v5", "v6", "v7+v8"])
    );
    assert_eq!(
        labels(&report, "diag_lstm fwd", persistent),
        laid(&["v1", "v2+v3", "v4", "v5", "v6", "v7+v8"])
    );
    assert_eq!(
        labels(&report, "diag_lstm bwd", persistent),
        laid(&["v1", "v2", "v3", "v4", "v5", "v6", "v7+v8"])
    );
    // The shared forward rows run under v2's selection.
    for r in report.rows.iter().filter(|r| {
        r.variant == "v2+v3+v4+v5+v6+v7" || r.variant == "v2+v3" || r.variant == "v2+v6+v7"
    }) {
        let layout = match r.layout.as_deref() {
            Some("materialised") => DiagLstmLayout::Materialised,
            _ => DiagLstmLayout::Folded,
        };
        let mut want = Variants {
            diag_lstm_layout: layout,
            ..Variants::default()
        };
        if r.name.starts_with("row_lstm") {
            want.row_lstm = RowLstm::V2;
        } else {
            want.diag_lstm = DiagLstm::V2;
        }
        assert_eq!(r.variants, Some(want), "{} {:?}", r.name, r.layout);
    }
}
