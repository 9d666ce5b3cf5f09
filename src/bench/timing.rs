//! How the bench times a call on each backend ([`BenchBackend`], [`ExecTimer`]) and which
//! kernel variants it times an op under ([`Sweep`], [`Choice`]).
//!
//! Every row runs under a selection of [`Variants`] made for it and dropped after it
//! ([`BenchBackend::with_variants`]): a row that times masked_conv2d v1 leaves the selection
//! it found (the defaults) to the rows after it, training steps included, by construction.

use std::time::Instant;

use super::{ceilings, Ceilings, OpRow};
use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::{
    persistent_kernel_version, stepwise_kernel_version, CudaBackend, Device, DiagLstm,
    DiagLstmLayout, Emulator, Executor, LstmWeightFp32, MaskedConv2d, MaskedConv2dWeight, RowLstm,
    Variants,
};
use crate::backend::{Backend, Precision, Recurrence};
use crate::error::{Error, Result};

/// Which kernel variants a row is timed under, one row each (declared by its op case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// The defaults only (the op's kernels have one version).
    None,
    /// Every [`MaskedConv2d`] version.
    MaskedConv2d,
    /// Every [`MaskedConv2dWeight`] version (the weight gradient).
    MaskedConv2dWeight,
    /// Both [`DiagLstmLayout`]s.
    DiagLstmLayout,
    /// Every [`RowLstm`] version, one row per distinct kernel: a forward row stands for v2
    /// to v7 (`v2+v3+v4+v5+v6+v7`: their forward is v2's kernels) and a backward row v2, v6
    /// and v7 (`v2+v6+v7`), v8 a row of its own, but under the persistent recurrence, where
    /// v4's to v7's forward and backward have rows of their own (`v2+v3`, `v4`, `v5`, `v6`,
    /// `v7+v8`: v8's persistent kernels are v7's).
    RowLstm,
    /// Every [`DiagLstm`] version in both [`DiagLstmLayout`]s, as [`Sweep::RowLstm`].
    DiagLstm,
    /// Every [`LstmWeightFp32`] version (the recurrences' fp32 weight gradient), at fp32 only.
    LstmWeightFp32,
}

/// One variant a row is timed under, as the backend offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The row's `variant`: `v1`, `v2` on CUDA, `cpu` on the CPU.
    pub version: String,
    /// The Diagonal LSTM layout, where the backend has several.
    pub layout: Option<DiagLstmLayout>,
    /// What to select for the row (`None`: nothing to select, as on the CPU).
    pub variants: Option<Variants>,
    /// Whether the row's kernel runs here (the emulator skips GPU-only kernels).
    pub runnable: bool,
    /// The backend's precision for the row (`Backend::set_precision`): tf32 and bf16 rows time
    /// the tensor-core kernels, validated against the CPU twin at the same precision.
    pub precision: Precision,
}

impl Choice {
    /// The one choice of a backend without variants (the CPU).
    fn only() -> Self {
        Choice {
            version: "cpu".into(),
            layout: None,
            variants: None,
            runnable: true,
            precision: Precision::Fp32,
        }
    }
}

/// A backend that the bench can time: how to time a call, its ceilings, its kernel variants.
pub trait BenchBackend: Backend {
    /// Whether this is the reference backend (the CPU): its results are not compared with
    /// themselves, only checked to be finite.
    fn is_reference(&self) -> bool {
        false
    }

    /// Whether times say nothing about real hardware (the emulator).
    fn emulated(&self) -> bool {
        false
    }

    /// How calls are timed, in words.
    fn timer(&self) -> String {
        "wall clock between synchronize() calls".into()
    }

    /// Milliseconds taken by `f` (with the device idle before and done after).
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.synchronize()?;
        let t0 = Instant::now();
        f()?;
        self.synchronize()?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }

    /// Measures the copy bandwidth, the FP32 rate and (CUDA) the tensor-core rates at tf32 and
    /// bf16; `rows` receives one row for each.
    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)>;

    /// The variants a row is timed under, one row each: for an op row, `kernel` is the stem
    /// `<op>_<pass>` of its kernels and `rec` its recurrence (if it has one); a training step
    /// has no kernel.
    fn choices(&self, kernel: Option<&str>, sweep: Sweep, rec: Option<Recurrence>) -> Vec<Choice> {
        let _ = (kernel, sweep, rec);
        vec![Choice::only()]
    }

    /// Runs `f` with `variants` selected and the backend at `precision`, then the selection
    /// and the precision before it again.
    fn with_variants<R>(
        &self,
        variants: Option<Variants>,
        precision: Precision,
        f: impl FnOnce() -> R,
    ) -> R {
        let _ = variants;
        let before = self.precision();
        self.set_precision(precision);
        let r = f();
        self.set_precision(before);
        r
    }

    /// The variants in force (`None`: the backend has none).
    fn variants(&self) -> Option<Variants> {
        None
    }
}

impl BenchBackend for CpuBackend {
    fn is_reference(&self) -> bool {
        true
    }

    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)> {
        ceilings::cpu(iters)
    }
}

/// How an executor times a call and whether it is real hardware.
pub trait ExecTimer: Executor {
    /// True for the emulator.
    const EMULATED: bool;
    /// The timer, in words.
    fn timer_name(&self) -> &'static str;
    /// Milliseconds taken by `f` (`synchronize` is this executor's).
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64>;
}

impl ExecTimer for Device {
    const EMULATED: bool = false;

    fn timer_name(&self) -> &'static str {
        "CUDA events on the launch stream"
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        use cudarc::driver::sys::CUevent_flags;
        let err = |what: &str, e: cudarc::driver::DriverError| {
            Error::Device(format!("CUDA event {what}: {e}"))
        };
        let ctx = self.context();
        let stream = self.stream();
        let start = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("create", e))?;
        let end = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("create", e))?;
        Executor::synchronize(self)?;
        start.record(stream).map_err(|e| err("record", e))?;
        f()?;
        end.record(stream).map_err(|e| err("record", e))?;
        let ms = start.elapsed_ms(&end).map_err(|e| err("elapsed", e))?;
        Ok(ms as f64)
    }
}

impl ExecTimer for Emulator {
    const EMULATED: bool = true;

    fn timer_name(&self) -> &'static str {
        "wall clock (emulated: meaningless for a GPU)"
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let t0 = Instant::now();
        f()?;
        Executor::synchronize(self)?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }
}

/// The earliest recurrence kernel version whose kernels version `v` runs in the row of kernel
/// stem `kernel` (its pass: `bwd` in the stem) under recurrence `rec` (`None`: kernels of its
/// own, or a training step, which has no stem), by the backend's own mapping: the persistent
/// kernels' ([`persistent_kernel_version`]: v3's forward is v2's) under the persistent
/// recurrence, the stepwise kernels' ([`stepwise_kernel_version`]: v3's forward is v2's, v4's
/// and v5's kernels are v3's, v6's and v7's v2's; v8's its own) under the others.
pub(crate) fn runs_kernels_of(
    kernel: Option<&str>,
    v: u32,
    rec: Option<Recurrence>,
) -> Option<u32> {
    let backward = kernel?.contains("bwd");
    let runs = if rec == Some(Recurrence::Persistent) {
        persistent_kernel_version
    } else {
        stepwise_kernel_version
    };
    let mine = runs(v, backward);
    (1..v).find(|&u| runs(u, backward) == mine)
}

/// The `(version, choice)`s of a recurrence sweep, in order, with each version that runs an
/// earlier one's kernels ([`runs_kernels_of`]) folded into that one's row of the same layout:
/// one row per distinct kernel and layout, labelled with every version it stands for (`v2+v3`,
/// `v2+v6`).
fn distinct_rows(
    kernel: Option<&str>,
    rec: Option<Recurrence>,
    versions: impl Iterator<Item = (u32, Choice)>,
) -> Vec<Choice> {
    let mut out: Vec<Choice> = Vec::new();
    for (v, c) in versions {
        let earlier = runs_kernels_of(kernel, v, rec).map(|u| format!("v{u}"));
        // The earlier version's row of the same layout (a Diagonal sweep runs both).
        let row = earlier.and_then(|u| {
            out.iter_mut()
                .find(|r| r.layout == c.layout && r.version.split('+').any(|label| label == u))
        });
        match row {
            Some(row) => row.version = format!("{}+v{v}", row.version),
            None => out.push(c),
        }
    }
    out
}

impl<E: ExecTimer> BenchBackend for CudaBackend<E> {
    fn emulated(&self) -> bool {
        E::EMULATED
    }

    fn timer(&self) -> String {
        self.executor().timer_name().into()
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.executor().time_ms(f)
    }

    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)> {
        ceilings::cuda(self, iters)
    }

    /// Each variant of `sweep` on top of the selection in force, which is the defaults unless
    /// the caller selected others (every row puts back what it found); the kernels of the
    /// other families have one version (`v1`). The masked_conv2d sweeps add the tensor-core
    /// kernels at tf32 and bf16 (rows `tf32-v1`, `bf16-v1`).
    fn choices(&self, kernel: Option<&str>, sweep: Sweep, rec: Option<Recurrence>) -> Vec<Choice> {
        let base = CudaBackend::variants(self);
        let runnable = |name: String| {
            !E::EMULATED || crate::kernels::signature(&name).is_none_or(|s| s.emulated)
        };
        let choice = |version: u32, layout: Option<DiagLstmLayout>, variants: Variants| Choice {
            version: format!("v{version}"),
            layout,
            variants: Some(variants),
            runnable: kernel.is_none_or(|k| runnable(format!("{k}_v{version}"))),
            precision: Precision::Fp32,
        };
        // The tensor-core rows: `kernel` is `masked_conv2d_<pass>`.
        let mma = || {
            let v = base.masked_conv2d_mma.number();
            [Precision::Tf32, Precision::Bf16].map(|p| Choice {
                version: format!("{p}-v{v}"),
                layout: None,
                variants: Some(base),
                runnable: kernel.is_none_or(|k| runnable(format!("{k}_{p}_v{v}"))),
                precision: p,
            })
        };
        match sweep {
            Sweep::None => vec![choice(1, None, base)],
            Sweep::MaskedConv2d => MaskedConv2d::ALL
                .iter()
                .map(|&v| {
                    let variants = Variants {
                        masked_conv2d: v,
                        ..base
                    };
                    choice(v.number(), None, variants)
                })
                .chain(mma())
                .collect(),
            Sweep::MaskedConv2dWeight => MaskedConv2dWeight::ALL
                .iter()
                .map(|&v| {
                    let variants = Variants {
                        masked_conv2d_weight: v,
                        ..base
                    };
                    choice(v.number(), None, variants)
                })
                .chain(mma())
                .collect(),
            Sweep::DiagLstmLayout => DiagLstmLayout::ALL
                .iter()
                .map(|&l| {
                    let variants = Variants {
                        diag_lstm_layout: l,
                        ..base
                    };
                    choice(1, Some(l), variants)
                })
                .collect(),
            Sweep::RowLstm => distinct_rows(
                kernel,
                rec,
                RowLstm::ALL.iter().map(|&v| {
                    let variants = Variants {
                        row_lstm: v,
                        ..base
                    };
                    (v.number(), choice(v.number(), None, variants))
                }),
            ),
            Sweep::DiagLstm => {
                let versions = DiagLstmLayout::ALL
                    .iter()
                    .flat_map(|&l| DiagLstm::ALL.iter().map(move |&v| (l, v)))
                    .map(|(l, v)| {
                        let variants = Variants {
                            diag_lstm_layout: l,
                            diag_lstm: v,
                            ..base
                        };
                        (v.number(), choice(v.number(), Some(l), variants))
                    });
                distinct_rows(kernel, rec, versions)
            }
            Sweep::LstmWeightFp32 => LstmWeightFp32::ALL
                .iter()
                .map(|&v| {
                    let variants = Variants {
                        lstm_weight_fp32: v,
                        ..base
                    };
                    choice(v.number(), None, variants)
                })
                .collect(),
        }
    }

    fn with_variants<R>(
        &self,
        variants: Option<Variants>,
        precision: Precision,
        f: impl FnOnce() -> R,
    ) -> R {
        let _selected = variants.map(|v| self.select(v));
        let before = Backend::precision(self);
        self.set_precision(precision);
        let r = f();
        self.set_precision(before);
        r
    }

    fn variants(&self) -> Option<Variants> {
        Some(CudaBackend::variants(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which versions fold into an earlier one's row: v3 into v2's in every forward row; in the
    /// rows of every recurrence but the persistent one v4 and v5 into v3's backward and v2's
    /// forward, v6 and v7 into v2's both ways; nothing for a training step (no kernel stem) or
    /// for v2.
    #[test]
    fn versions_fold_where_they_run_earlier_kernels() {
        let (fwd, bwd) = (Some("row_lstm_step_fwd"), Some("row_lstm_step_bwd"));
        let persistent = Some(Recurrence::Persistent);
        for rec in [
            None,
            Some(Recurrence::Fused),
            Some(Recurrence::Unfused),
            persistent,
        ] {
            let unless_persistent = |u: u32| (rec != persistent).then_some(u);
            assert_eq!(runs_kernels_of(fwd, 3, rec), Some(2));
            assert_eq!(runs_kernels_of(bwd, 3, rec), None);
            assert_eq!(runs_kernels_of(fwd, 2, rec), None);
            for (k, v3) in [(fwd, 2), (bwd, 3)] {
                assert_eq!(runs_kernels_of(k, 4, rec), unless_persistent(v3));
                assert_eq!(runs_kernels_of(k, 5, rec), unless_persistent(v3));
                assert_eq!(runs_kernels_of(k, 6, rec), unless_persistent(2));
                assert_eq!(runs_kernels_of(k, 7, rec), unless_persistent(2));
                // v8 has stepwise kernels of its own, and v7's persistent ones.
                let v8 = if rec == persistent { Some(7) } else { None };
                assert_eq!(runs_kernels_of(k, 8, rec), v8);
            }
            for v in 1..=8 {
                assert_eq!(runs_kernels_of(None, v, rec), None);
            }
        }
    }

    /// The rows a fused backward sweep of v1 to v8 gets: v6 and v7 join v2's row, not the last
    /// one; v8 has a row of its own there and joins v7's under the persistent recurrence.
    #[test]
    fn later_versions_fold_into_the_rows_whose_kernels_they_run() {
        let choice = |v: u32| Choice {
            version: format!("v{v}"),
            ..Choice::only()
        };
        let rows = distinct_rows(
            Some("row_lstm_step_bwd"),
            Some(Recurrence::Fused),
            (1..=8).map(|v| (v, choice(v))),
        );
        let labels: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(labels, ["v1", "v2+v6+v7", "v3+v4+v5", "v8"]);
        let rows = distinct_rows(
            Some("row_lstm_step_fwd"),
            Some(Recurrence::Persistent),
            (1..=8).map(|v| (v, choice(v))),
        );
        let labels: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(labels, ["v1", "v2+v3", "v4", "v5", "v6", "v7+v8"]);
        // A Diagonal sweep runs both layouts, one after the other: each folds into its own.
        let laid = |layout: DiagLstmLayout, v: u32| Choice {
            layout: Some(layout),
            ..choice(v)
        };
        let rows = distinct_rows(
            Some("diag_lstm_step_bwd"),
            Some(Recurrence::Fused),
            DiagLstmLayout::ALL
                .into_iter()
                .flat_map(|l| (1..=8).map(move |v| (v, laid(l, v)))),
        );
        let labels: Vec<(&str, Option<DiagLstmLayout>)> = rows
            .iter()
            .map(|r| (r.version.as_str(), r.layout))
            .collect();
        let (f, m) = (
            Some(DiagLstmLayout::Folded),
            Some(DiagLstmLayout::Materialised),
        );
        assert_eq!(
            labels,
            [
                ("v1", f),
                ("v2+v6+v7", f),
                ("v3+v4+v5", f),
                ("v8", f),
                ("v1", m),
                ("v2+v6+v7", m),
                ("v3+v4+v5", m),
                ("v8", m)
            ]
        );
    }
}
