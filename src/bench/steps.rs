//! Training-step rows: one whole step (forward, loss, backward, RMSProp) of each model, by
//! each recurrence, checked against the same step on the CPU (loss and global gradient norm),
//! then timed.

use super::report::{one_line, rec_name};
use super::timing::{Choice, Sweep};
use super::{step_flops, BenchBackend, BenchConfig, Ceilings, OpRow, Options};
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::DiagLstmLayout;
use crate::backend::{Backend, Precision, Recurrence};
use crate::data::Images;
use crate::error::Result;
use crate::models::{Model, ModelKind};
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};
use crate::parity;

/// One training step of `model` on `images`: forward, loss, backward, RMSProp. Returns the
/// summed NLL (nats) and the gradients' global norm.
fn train_step<X: Backend>(
    be: &X,
    model: &mut Model<X>,
    opt: &mut Optimizer<X>,
    images: &Images,
    need_numbers: bool,
) -> Result<(f64, f64)> {
    let idx: Vec<usize> = (0..images.n).collect();
    let scale = 1.0 / (images.n * model.config.dims()) as f32;
    let (x, t) = model.batch(be, images, &idx)?;
    let (logits, cache) = model.forward(be, &x)?;
    let (nll, dl) = model.loss(be, &logits, &t, scale)?;
    model.backward(be, cache, &dl, false)?;
    let stats = opt.step(be, model.params_mut())?;
    let loss = if need_numbers { be.sum(&nll)? } else { 0.0 };
    Ok((loss, stats.grad_norm))
}

fn optimizer<X: Backend>() -> Optimizer<X> {
    Optimizer::new(OptimConfig {
        kind: OptimizerKind::RmsProp,
        ..OptimConfig::default()
    })
}

/// The recurrences a step row of `kind` is timed by: none for PixelCNN.
pub(crate) fn recurrences(kind: ModelKind, o: &Options) -> Vec<Option<Recurrence>> {
    if kind == ModelKind::PixelCnn {
        vec![None]
    } else {
        o.recurrences.iter().copied().map(Some).collect()
    }
}

/// The variants a step row of `kind` by `rec` is swept over: the Diagonal BiLSTM's scans in
/// each layout.
pub(crate) fn sweep(kind: ModelKind, rec: Option<Recurrence>) -> Sweep {
    if kind == ModelKind::DiagBiLstm && rec.is_some() {
        Sweep::DiagLstmLayout
    } else {
        Sweep::None
    }
}

/// Whether a step row by `rec` under `choice` is one of those timed first (the runner's
/// order): PixelCNN (no recurrence), and the fused and unfused recurrences in the default
/// layout (folded, or a backend with one layout), the rows the fused-vs-unfused comparison is
/// about. The persistent recurrence and the materialised layout come after them.
pub(crate) fn comes_first(rec: Option<Recurrence>, choice: &Choice) -> bool {
    let default_layout = choice.layout.is_none_or(|l| l == DiagLstmLayout::default());
    let compared = matches!(rec, None | Some(Recurrence::Fused | Recurrence::Unfused));
    default_layout && compared
}

/// The training-step row of `kind` with recurrence `rec` under `choice` (selected for the
/// whole row, then the selection before it again).
#[allow(clippy::too_many_arguments)]
pub(crate) fn time_step<B: BenchBackend>(
    be: &B,
    cpu: &CpuBackend,
    cfg: &BenchConfig,
    kind: ModelKind,
    rec: Option<Recurrence>,
    choice: &Choice,
    o: &Options,
    ceilings: &Ceilings,
    validate: bool,
) -> OpRow {
    let mc = cfg.model(kind);
    let mut variant = rec.map_or_else(|| "-".to_string(), rec_name);
    if let Some(l) = choice.layout.filter(|&l| l != DiagLstmLayout::Folded) {
        variant = format!("{variant}/{l}");
    }
    if choice.precision != Precision::Fp32 {
        variant = format!("{variant}/{}", choice.precision);
    }
    let mut row = OpRow::new(
        "step",
        format!("{} train step", kind.name()),
        cfg.name,
        cfg.label(),
        variant,
    );
    row.recurrence = rec.map(rec_name);
    row.layout = choice.layout.map(|l| l.name().to_string());
    row.set_precision(choice.precision);
    // The loss to DEEP_REL_TOL (MMA_REL_TOL at tf32 / bf16); the grad norm to its own, looser
    // tolerance (parity::STEP_GRAD_NORM_REL_TOL says why). The row's `tol` is the norm's.
    let (loss_tol, norm_tol) = if choice.precision == Precision::Fp32 {
        (parity::DEEP_REL_TOL, parity::STEP_GRAD_NORM_REL_TOL)
    } else {
        (
            parity::DEEP_REL_TOL.max(parity::MMA_REL_TOL),
            parity::STEP_GRAD_NORM_ROUNDED_REL_TOL,
        )
    };
    row.tol = norm_tol;
    row.flops = step_flops(&mc, cfg.batch).map(|(_, s)| s);
    let result = be.with_variants(choice.variants, choice.precision, || -> Result<()> {
        row.variants = be.variants();
        let images = cfg.images()?;
        let mut model = Model::new(be, mc.clone(), 0)?;
        model.set_recurrence(rec.unwrap_or_default());
        let mut opt = optimizer::<B>();
        let (loss, norm) = train_step(be, &mut model, &mut opt, &images, true)?;
        if validate {
            // The CPU twin at the row's precision: the same roundings of the same operands.
            cpu.set_precision(choice.precision);
            let twin = (|| -> Result<(f64, f64)> {
                let mut cm = Model::new(cpu, mc.clone(), 0)?;
                cm.set_recurrence(rec.unwrap_or_default());
                let mut copt = optimizer::<CpuBackend>();
                train_step(cpu, &mut cm, &mut copt, &images, true)
            })();
            cpu.set_precision(Precision::Fp32);
            let (l, n) = twin?;
            let (loss_err, norm_err) = (((loss - l) / l).abs(), ((norm - n) / n).abs());
            row.rel_err = Some(loss_err.max(norm_err));
            let within = loss_err <= loss_tol && norm_err <= norm_tol; // NaN is not within
            if !within {
                row.status = "WRONG".into();
                row.note = format!(
                    "loss {loss:.6e} vs cpu {l:.6e}, grad norm {norm:.6e} vs {n:.6e}: not timed"
                );
                return Ok(());
            }
        } else if !(loss.is_finite() && norm.is_finite()) {
            row.status = "WRONG".into();
            row.note = "non-finite loss or gradient: not timed".into();
            return Ok(());
        }
        for _ in 0..o.warmup.min(3) {
            train_step(be, &mut model, &mut opt, &images, false)?;
        }
        let mut times = Vec::new();
        for _ in 0..o.step_iters.max(1) {
            times.push(
                be.time_ms(&mut || train_step(be, &mut model, &mut opt, &images, false).map(drop))?,
            );
        }
        row.set_times(&mut times, ceilings);
        let ips = row.ms.map(|ms| cfg.batch as f64 / (ms / 1e3));
        row.note = ips.map_or_else(String::new, |v| format!("{v:.0} images/s"));
        Ok(())
    });
    if let Err(e) = result {
        // A path that refuses the row's precision is skipped, with the refusal as the reason.
        let refused = matches!(e, crate::error::Error::PrecisionUnsupported { .. });
        row.status = if refused { "skipped" } else { "error" }.into();
        row.note = one_line(&e.to_string());
    }
    row
}
