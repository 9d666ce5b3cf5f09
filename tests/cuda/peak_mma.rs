//! The tensor-core ceiling kernels (kernels/peak_mma.cu) against their CPU twin, and the
//! bench's use of them: every tf32 / bf16 row's compute fraction is set against the
//! tensor-core ceiling of its precision, fp32 rows against the FMA ceiling, and the CPU (no
//! tensor cores) reports those ceilings absent instead of a number.
//!
//! Exactness: the kernels' values are integers below 2^24 (exact in tf32, bf16 and fp32), so
//! the twin ([`bench::peak_mma_expected`]) is compared bit for bit, on a NaN-poisoned output.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, BLOCK};
use pixelrnn::backend::{Precision, Recurrence};
use pixelrnn::bench::{self, Ceilings, ExecTimer, OpRow, Options, Part};
use pixelrnn::models::ModelKind;

crate::parity_tests! {
    peak_mma_kernels => super::check_peak_mma_kernels,
    bench_ceilings_every_precision => super::check_bench_ceilings,
}

/// Both kernels, one and several blocks, zero and several rounds: every thread's value is the
/// twin's, bit for bit (check_peak_mma compares all of them).
pub fn check_peak_mma_kernels<E: ExecTimer>(gpu: &CudaBackend<E>) {
    for p in [Precision::Tf32, Precision::Bf16] {
        for (blocks, rounds) in [(1u32, 0usize), (1, 1), (3, 3)] {
            bench::check_peak_mma(gpu, p, blocks, rounds)
                .unwrap_or_else(|e| panic!("{p} {blocks} blocks {rounds} rounds: {e}"));
        }
    }
    // fp32 has no tensor-core kernel: a clear error, no launch.
    assert!(bench::check_peak_mma(gpu, Precision::Fp32, 1, 1).is_err());
}

/// The twin can fail: its value moves with every mma (most threads' sums of A B are not 0, so
/// a kernel that skipped or misplaced an mma writes something else), differs between tf32
/// and bf16 (K = 8 vs 16) and between warps (A and B depend on the warp).
#[test]
fn the_twin_depends_on_every_mma() {
    let threads = 2 * BLOCK as usize;
    let e = |p, t, r| bench::peak_mma_expected(p, t, r).unwrap();
    for p in [Precision::Tf32, Precision::Bf16] {
        let moved = (0..threads).filter(|&t| e(p, t, 3) != e(p, t, 4)).count();
        assert!(
            moved * 4 >= threads * 3,
            "{p}: only {moved} of {threads} move"
        );
        let warps = (0..7).map(|w| e(p, w * 32 + 5, 3)).collect::<Vec<_>>();
        assert!(warps.windows(2).any(|x| x[0] != x[1]), "{p}: {warps:?}");
    }
    let differ = (0..threads)
        .filter(|&t| e(Precision::Tf32, t, 3) != e(Precision::Bf16, t, 3))
        .count();
    assert!(
        differ > threads / 2,
        "tf32 and bf16 agree on {differ} threads"
    );
    // FLOPs: 8 chains x 2 mma per round, 2 * 16 * 8 * K each.
    assert_eq!(
        bench::peak_mma_flops(Precision::Bf16, 64, 10),
        Some((2 * 10 * 16 * 4096) as f64)
    );
    assert_eq!(bench::peak_mma_flops(Precision::Fp32, 64, 10), None);
}

/// The bench at every precision. On the emulator: the ceiling kernels ran and were checked
/// (their rows, each with its precision), no ceiling is measured, and every op and step row
/// names the ceiling of its own precision. On a GPU: the four ceilings are measured (copy, fp32
/// FMA, tf32 and bf16 mma), each row is set against its own precision's.
pub fn check_bench_ceilings<E: ExecTimer>(gpu: &CudaBackend<E>) {
    let o = Options {
        part: Part::All,
        iters: 1,
        step_iters: 1,
        warmup: 0,
        models: vec![ModelKind::PixelCnn],
        configs: vec![bench::config("tiny").expect("the tiny config")],
        recurrences: vec![Recurrence::Fused],
        op_filter: vec!["masked_conv2d fwd".into()],
        precisions: Precision::ALL.to_vec(),
    };
    let report = bench::run(gpu, &o, &mut |_| {}).unwrap_or_else(|e| panic!("bench: {e}"));
    let ceiling: Vec<(&str, Precision)> = report
        .rows
        .iter()
        .filter(|r| r.kind == "ceiling")
        .map(|r| (r.name.as_str(), r.precision))
        .collect();
    let c = &report.ceilings;
    if E::EMULATED {
        assert_eq!(
            ceiling,
            [
                ("peak_fma", Precision::Fp32),
                ("peak_mma_tf32", Precision::Tf32),
                ("peak_mma_bf16", Precision::Bf16)
            ]
        );
        assert!(c.tf32_gflop_per_s.is_none() && c.bf16_gflop_per_s.is_none());
    } else {
        assert_eq!(
            ceiling,
            [
                ("copy", Precision::Fp32),
                ("fp32", Precision::Fp32),
                ("tf32", Precision::Tf32),
                ("bf16", Precision::Bf16)
            ]
        );
        for p in Precision::ALL {
            let rate = c.gflop_per_s(p);
            assert!(rate.is_some_and(|r| r > 0.0), "{p} ceiling: {rate:?}");
        }
    }
    assert!(c.how.contains("peak_mma_bf16_v1"), "{}", c.how);
    for p in Precision::ALL {
        for kind in ["op", "step"] {
            let rows: Vec<&OpRow> = report
                .rows
                .iter()
                .filter(|r| r.kind == kind && r.precision == p)
                .collect();
            assert!(!rows.is_empty(), "no {p} {kind} rows");
            for r in rows {
                assert_eq!(r.status, "ok", "{} {}: {}", r.name, r.variant, r.note);
                assert_eq!(r.peak, p.name(), "{} {}", r.name, r.variant);
                if E::EMULATED {
                    assert_eq!(r.frac_peak, None, "emulated: no ceiling to set it against");
                } else {
                    let f = r.frac_peak;
                    assert!(
                        f.is_some_and(|f| f > 0.0),
                        "{} {}: {f:?}",
                        r.name,
                        r.variant
                    );
                }
            }
        }
    }
}

/// A constructed report: a tf32 row is set against the tf32 ceiling, a bf16 row against the
/// bf16 one, an fp32 row against the FMA rate; the JSON and the table say which. Exact values:
/// 1e9 FLOPs in 1 ms = 1000 GFLOP/s.
#[test]
fn each_row_uses_the_ceiling_of_its_precision() {
    let ceilings = Ceilings {
        copy_gb_per_s: Some(100.0),
        fp32_gflop_per_s: Some(4000.0),
        tf32_gflop_per_s: Some(2000.0),
        bf16_gflop_per_s: Some(8000.0),
        how: "constructed".into(),
    };
    let mut fracs = Vec::new();
    for (p, want) in [
        (Precision::Fp32, 0.25),
        (Precision::Tf32, 0.5),
        (Precision::Bf16, 0.125),
    ] {
        let mut row = OpRow::new(
            "op",
            "masked_conv2d fwd".into(),
            "x",
            "s".into(),
            "v1".into(),
        );
        row.set_precision(p);
        row.flops = Some(1e9);
        row.set_times(&mut [1.0, 3.0, 0.5], &ceilings);
        assert_eq!(row.gflop_per_s, Some(1000.0), "{p}");
        assert_eq!(row.frac_peak, Some(want), "{p}");
        assert_eq!(row.peak, p.name());
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!(v["peak"], p.name());
        assert_eq!(v["precision"], p.name());
        assert_eq!(v["frac_peak"].as_f64(), Some(want));
        assert!(v.get("frac_fp32").is_none(), "the old field is gone");
        let line = bench::table_row(&row);
        let cell = format!("{:.0}% {}", want * 100.0, p.name());
        assert!(line.contains(&cell), "{cell:?} not in {line:?}");
        fracs.push(row.frac_peak);
    }
    assert_eq!(ceilings.gflop_per_s(Precision::Tf32), Some(2000.0));
    // Without a tensor-core ceiling a tf32 row has no fraction (never the FMA rate's).
    let cpu_like = Ceilings {
        tf32_gflop_per_s: None,
        ..ceilings
    };
    let mut row = OpRow::new("step", "s".into(), "x", "s".into(), "-/tf32".into());
    row.set_precision(Precision::Tf32);
    row.flops = Some(1e9);
    row.set_times(&mut [1.0], &cpu_like);
    assert_eq!((row.gflop_per_s, row.frac_peak), (Some(1000.0), None));
    assert!(bench::table_row(&row).contains(" - "));
}

/// The CPU backend: no tensor-core ceilings, said in the output; its fp32 step row has a
/// fraction of the sgemm rate, its tf32 and bf16 step rows none.
#[test]
fn the_cpu_has_no_tensor_core_ceilings() {
    let o = Options {
        part: Part::Steps,
        iters: 1,
        step_iters: 1,
        warmup: 0,
        models: vec![ModelKind::PixelCnn],
        configs: vec![bench::config("tiny").expect("the tiny config")],
        recurrences: vec![Recurrence::Fused],
        op_filter: Vec::new(),
        precisions: Precision::ALL.to_vec(),
    };
    let report = bench::run(&CpuBackend::new(), &o, &mut |_| {}).expect("cpu bench");
    let c = &report.ceilings;
    assert!(c.fp32_gflop_per_s.is_some());
    assert!(c.tf32_gflop_per_s.is_none() && c.bf16_gflop_per_s.is_none());
    assert!(c.how.contains("no tensor cores"), "{}", c.how);
    let header = bench::table_header(&report);
    assert!(
        header.contains("tf32 - GFLOP/s, bf16 - GFLOP/s"),
        "{header}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["ceilings"]["tf32_gflop_per_s"].is_null());
    let steps: Vec<&OpRow> = report.rows.iter().filter(|r| r.kind == "step").collect();
    assert_eq!(steps.len(), 3);
    for r in steps {
        assert_eq!(r.status, "ok", "{}: {}", r.variant, r.note);
        assert_eq!(r.peak, r.precision.name());
        assert_eq!(
            r.frac_peak.is_some(),
            r.precision == Precision::Fp32,
            "{}",
            r.variant
        );
    }
}
