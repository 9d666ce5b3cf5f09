//! The runner: measures the ceilings, then for each config every selected op case under each
//! kernel variant the backend offers (validated against the CPU backend, then timed), then
//! the training steps.

use super::case::OpCase;
use super::ops::{self, plan};
use super::report::{fill_speedups, one_line, rec_name, utc_date};
use super::steps::{self, time_step};
use super::timing::Choice;
use super::{BenchBackend, BenchConfig, Ceilings, OpRow, Options, Part, Report};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Precision, Recurrence};
use crate::error::{Error, Result};
use crate::models::ModelKind;
use crate::parity;

/// Number of rows (ceilings excluded) that [`run`] will produce, for a progress bar.
pub fn count_rows<B: BenchBackend>(be: &B, o: &Options) -> Result<usize> {
    let mut rows = 0;
    for cfg in &o.configs {
        if o.part != Part::Steps {
            for case in plan::<B>(cfg, &o.recurrences)? {
                if ops::selected(&o.op_filter, case.name) {
                    rows += op_choices(be, &case, o).len();
                }
            }
        }
        if o.part != Part::Ops {
            for &kind in &o.models {
                for rec in steps::recurrences(kind, o) {
                    rows += step_choices(be, kind, rec, o).len();
                }
            }
        }
    }
    Ok(rows)
}

/// Runs the bench on `be`; `progress` is called after each row. An op filter that matches no
/// op is an error.
pub fn run<B: BenchBackend>(
    be: &B,
    o: &Options,
    progress: &mut dyn FnMut(&OpRow),
) -> Result<Report> {
    run_streaming(be, o, &mut |report: &Report| {
        if let Some(row) = report.rows.last() {
            progress(row);
        }
        Ok(())
    })
}

/// Runs the bench on `be` like [`run`], handing `on_row` the whole report so far after every
/// row (ceilings included): its last row is the new one, `speedup_vs_unfused` is filled in
/// for the rows whose unfused twin has run, and `complete` is false. A caller that writes the
/// report out each time (`pixelrnn bench --json`) leaves, when it is killed, every row
/// measured until then. An error from `on_row` stops the run and is returned.
///
/// Order: per config, the op rows, then the training-step rows: first those that the
/// fused-vs-unfused comparison is about (PixelCNN, and every model's fused and unfused
/// recurrence in the default layout, folded), then the rest (persistent, and the Diagonal
/// BiLSTM's materialised layout), so that a run cut short has measured the rows that matter.
pub fn run_streaming<B: BenchBackend>(
    be: &B,
    o: &Options,
    on_row: &mut dyn FnMut(&Report) -> Result<()>,
) -> Result<Report> {
    ops::check_filter(&o.op_filter)?;
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (ceilings, ceiling_rows) = be.measure_ceilings(o.iters)?;
    let mut report = Report {
        device: be.name(),
        timer: be.timer(),
        emulated: be.emulated(),
        unix_time,
        date: utc_date(unix_time),
        warmup: o.warmup,
        kernels: be.variants().map(|v| v.to_string()),
        complete: false,
        ceilings,
        rows: Vec::new(),
    };
    let mut push = |report: &mut Report, row: OpRow| -> Result<()> {
        report.rows.push(row);
        fill_speedups(&mut report.rows);
        on_row(report)
    };
    for row in ceiling_rows {
        push(&mut report, row)?;
    }
    let ceilings = report.ceilings.clone();
    let cpu = CpuBackend::new();
    // The CPU backend is the reference: when it is the backend timed, nothing to compare.
    let validate = !be.is_reference();
    if o.part != Part::Steps {
        for cfg in &o.configs {
            let cases = plan::<B>(cfg, &o.recurrences)?;
            let references = plan::<CpuBackend>(cfg, &o.recurrences)?;
            for (case, reference) in cases.iter().zip(&references) {
                if case.name != reference.name {
                    return Err(Error::Config(format!(
                        "bench: case {} planned against reference {}",
                        case.name, reference.name
                    )));
                }
                if !ops::selected(&o.op_filter, case.name) {
                    continue;
                }
                let reference = validate.then_some(reference);
                time_op(be, &cpu, cfg, case, reference, o, &ceilings, &mut |row| {
                    push(&mut report, row)
                })?;
            }
        }
    }
    if o.part != Part::Ops {
        for cfg in &o.configs {
            for (kind, rec, choice) in step_rows(be, o) {
                let row = time_step(be, &cpu, cfg, kind, rec, &choice, o, &ceilings, validate);
                push(&mut report, row)?;
            }
        }
    }
    report.complete = true;
    Ok(report)
}

/// The training-step rows of one config, in the order they are timed: the rows of
/// [`steps::comes_first`] (PixelCNN; fused and unfused in the default layout), then the
/// others, each group in the order of `o.models`, `o.recurrences` and the backend's layouts.
fn step_rows<B: BenchBackend>(be: &B, o: &Options) -> Vec<(ModelKind, Option<Recurrence>, Choice)> {
    let mut rows = Vec::new();
    for &kind in &o.models {
        for rec in steps::recurrences(kind, o) {
            for choice in step_choices(be, kind, rec, o) {
                rows.push((kind, rec, choice));
            }
        }
    }
    // A stable sort: within each group, the order above.
    rows.sort_by_key(|(_, rec, choice)| !steps::comes_first(*rec, choice));
    rows
}

/// The backend's variants of op row `case` whose precision `o` asks for (`--precision`).
fn op_choices<B: BenchBackend>(be: &B, case: &OpCase<B>, o: &Options) -> Vec<Choice> {
    be.choices(Some(case.kernel), case.sweep, case.recurrence)
        .into_iter()
        .filter(|c| o.precisions.contains(&c.precision))
        .collect()
}

/// The training-step rows of `kind` by `rec`: each variant of its sweep once per precision of
/// `o` (the step's ops that honour the precision run their tensor-core kernels, the rest fp32).
fn step_choices<B: BenchBackend>(
    be: &B,
    kind: ModelKind,
    rec: Option<Recurrence>,
    o: &Options,
) -> Vec<Choice> {
    let mut out = Vec::new();
    for &p in &o.precisions {
        for choice in be.choices(None, steps::sweep(kind, rec), rec) {
            out.push(Choice {
                precision: p,
                ..choice
            });
        }
    }
    out
}

/// A case's reference outputs on the CPU (or why they failed).
type Reference = Result<Vec<Vec<f32>>>;

/// The rows of op `case`, one per variant the backend offers: each checked against
/// `reference` (the same case on the CPU; `None` when the CPU itself is timed: its results
/// are only checked to be finite), then timed. A row's variants are selected for it alone.
/// Each row goes to `emit` as soon as it is measured. An error only when the case's inputs
/// cannot be built or `emit` fails; a failing op is a row of status `error`.
#[allow(clippy::too_many_arguments)]
fn time_op<B: BenchBackend>(
    be: &B,
    cpu: &CpuBackend,
    cfg: &BenchConfig,
    case: &OpCase<B>,
    reference: Option<&OpCase<CpuBackend>>,
    o: &Options,
    ceilings: &Ceilings,
    emit: &mut dyn FnMut(OpRow) -> Result<()>,
) -> Result<()> {
    let host = (case.inputs)()?;
    // The reference result, once per precision for all variants: the CPU twin at the row's
    // precision (the tensor-core rows' operands rounded as their kernels round them).
    let mut wants: Vec<(Precision, Option<Reference>)> = Vec::new();
    for choice in op_choices(be, case, o) {
        if !wants.iter().any(|(p, _)| *p == choice.precision) {
            let want = reference.map(|r| {
                cpu.set_precision(choice.precision);
                let out = r
                    .upload(cpu, &host)
                    .and_then(|mut args| r.results(cpu, &mut args));
                cpu.set_precision(Precision::Fp32);
                out
            });
            wants.push((choice.precision, want));
        }
        let want = &wants
            .iter()
            .find(|(p, _)| *p == choice.precision)
            .expect("computed above")
            .1;
        // Tensor-core rows: the twin's tolerance (parity::MMA_REL_TOL, with its reason).
        let tol = if choice.precision == Precision::Fp32 {
            case.tol
        } else {
            case.tol.max(parity::MMA_REL_TOL)
        };
        let mut row = OpRow::new(
            "op",
            case.name.to_string(),
            cfg.name,
            case.shape.clone(),
            choice.version.clone(),
        );
        row.recurrence = case.recurrence.map(rec_name);
        row.layout = choice.layout.map(|l| l.name().to_string());
        row.set_precision(choice.precision);
        row.flops = case.flops;
        row.tol = tol;
        if !choice.runnable {
            row.status = "skipped".into();
            row.note = "GPU-only kernel: the emulator does not run it".into();
            emit(row)?;
            continue;
        }
        let result = be.with_variants(choice.variants, choice.precision, || -> Result<()> {
            row.variants = be.variants();
            let mut args = case.upload(be, &host)?;
            let got = case.results(be, &mut args)?;
            row.bytes = Some(case.bytes);
            match want {
                Some(Ok(w)) => {
                    let err = parity::l2_rel_err_all(&got, w);
                    row.rel_err = Some(err);
                    let within = err <= tol; // NaN is not within
                    if !within {
                        row.status = "WRONG".into();
                        row.note = format!("relative error {err:.2e} > {tol:.0e}: not timed");
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    row.status = "error".into();
                    row.note = format!("CPU reference failed: {e}");
                    return Ok(());
                }
                None => {
                    if got.iter().flatten().any(|v| !v.is_finite()) {
                        row.status = "WRONG".into();
                        row.note = "non-finite output: not timed".into();
                        return Ok(());
                    }
                }
            }
            // Same inputs: the check's in-place ops updated them once already; harmless.
            for _ in 0..o.warmup {
                (case.run)(be, &mut args)?;
            }
            let mut times = Vec::with_capacity(o.iters);
            for _ in 0..o.iters.max(1) {
                times.push(be.time_ms(&mut || (case.run)(be, &mut args).map(drop))?);
            }
            row.set_times(&mut times, ceilings);
            Ok(())
        });
        if let Err(e) = result {
            row.status = "error".into();
            row.note = one_line(&e.to_string());
        }
        emit(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measure a row is validated by ([`parity::l2_rel_err_all`], pooled over the op's
    /// outputs) refuses NaN and mismatched outputs.
    #[test]
    fn rel_err_catches_nan_and_mismatch() {
        let rel_err = parity::l2_rel_err_all::<Vec<f32>, Vec<f32>>;
        let a = vec![vec![1.0, 2.0]];
        assert_eq!(rel_err(&a, &a), 0.0);
        assert!(rel_err(&[vec![1.0, f32::NAN]], &a).is_infinite());
        assert!(rel_err(&[vec![1.0]], &a).is_infinite());
        assert!(rel_err(&[vec![1.0, 2.2]], &a) > 0.05);
    }

    #[test]
    fn an_op_filter_matching_nothing_is_an_error() {
        let o = Options {
            part: Part::Ops,
            iters: 1,
            step_iters: 1,
            warmup: 0,
            models: Vec::new(),
            configs: vec![super::super::config("tiny").unwrap()],
            recurrences: vec![crate::backend::Recurrence::Fused],
            op_filter: vec!["relu".into(), "nope".into()],
            precisions: vec![Precision::Fp32],
        };
        let cpu = CpuBackend::new();
        match run(&cpu, &o, &mut |_| {}) {
            Err(Error::Config(m)) => assert!(m.contains("--op nope"), "{m}"),
            Err(e) => panic!("expected a configuration error, got {e}"),
            Ok(_) => panic!("an unknown op was accepted"),
        }
        assert!(ops::check_filter(&["conv".into(), "lstm bwd".into()]).is_ok());
    }

    /// The streaming API: after every row the caller gets the report so far (one more row
    /// each time, `complete` false until the end), which serialises to JSON that parses:
    /// written after the first row and read back, as `pixelrnn bench --json` does. The step
    /// rows run in the runner's order: fused (and PixelCNN) before persistent.
    #[test]
    fn streams_every_row_as_valid_json() {
        let o = Options {
            part: Part::Steps,
            iters: 1,
            step_iters: 1,
            warmup: 0,
            models: vec![ModelKind::RowLstm, ModelKind::PixelCnn],
            configs: vec![super::super::config("tiny").unwrap()],
            recurrences: vec![Recurrence::Persistent, Recurrence::Fused],
            op_filter: Vec::new(),
            precisions: vec![Precision::Fp32],
        };
        let dir =
            std::env::temp_dir().join(format!("pixelrnn-bench-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.json");
        let mut seen = Vec::new();
        let report = run_streaming(&CpuBackend::new(), &o, &mut |r| {
            assert!(!r.complete, "a partial report says it is complete");
            assert_eq!(r.rows.len(), seen.len() + 1, "one new row per call");
            crate::checkpoint::write_atomic(&path, serde_json::to_string(r).unwrap().as_bytes())?;
            let text = std::fs::read_to_string(&path).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(v["rows"].as_array().map(Vec::len), Some(r.rows.len()));
            assert_eq!(v["complete"], serde_json::Value::Bool(false));
            let last = r.rows.last().unwrap();
            seen.push(format!("{} {}", last.name, last.variant));
            Ok(())
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(report.complete);
        assert_eq!(report.rows.len(), seen.len());
        let steps: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|s| s.contains("train step"))
            .collect();
        assert_eq!(
            steps,
            [
                "row-lstm train step fused",
                "pixelcnn train step -",
                "row-lstm train step persistent"
            ]
        );
        assert!(report.rows.iter().all(|r| r.status == "ok"), "{report:?}");
        // An error from the callback stops the run.
        let mut calls = 0;
        let stopped = run_streaming(&CpuBackend::new(), &o, &mut |_| {
            calls += 1;
            Err(Error::Config("stop".into()))
        });
        assert!(matches!(stopped, Err(Error::Config(m)) if m == "stop"));
        assert_eq!(calls, 1);
    }
}
