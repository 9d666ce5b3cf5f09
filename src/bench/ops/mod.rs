//! Every op the bench times, one file per op family. Each case carries its row name, kernel
//! stem, shapes, FLOP and byte formulas, tolerance, inputs and the op call
//! ([`super::OpCase`]); adding an op means adding one case to its family's file (a new family:
//! a file and one line in [`plan`]).

mod class_bias;
mod clip;
mod elementwise;
mod gated;
mod losses;
mod lstm;
mod masked_conv2d;
mod moves;
mod optim;

use super::{BenchConfig, OpCase};
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Recurrence};
use crate::error::{Error, Result};

/// The op cases of `cfg` on backend `X`, in bench order: the layer shapes of its models, the
/// LSTM cases once per recurrence of `recurrences`.
pub fn plan<X: Backend>(cfg: &BenchConfig, recurrences: &[Recurrence]) -> Result<Vec<OpCase<X>>> {
    let mut cases = masked_conv2d::cases(cfg);
    cases.extend(elementwise::cases(cfg));
    cases.extend(gated::cases(cfg));
    cases.extend(losses::cases(cfg));
    cases.extend(lstm::cases(cfg, recurrences));
    cases.extend(moves::cases(cfg));
    cases.extend(clip::cases(cfg));
    cases.extend(class_bias::cases(cfg));
    cases.extend(optim::cases(cfg)?);
    Ok(cases)
}

/// The name of every op row, in bench order, for `--op` (help and checks).
pub fn op_row_names() -> Vec<&'static str> {
    use clap::ValueEnum;
    let mut names: Vec<&'static str> = Vec::new();
    let tiny = super::config("tiny").expect("the tiny config exists");
    // Planning builds no inputs; the tiny model's parameter count cannot fail.
    let cases = plan::<CpuBackend>(tiny, Recurrence::value_variants()).unwrap_or_default();
    for c in cases {
        if !names.contains(&c.name) {
            names.push(c.name);
        }
    }
    names
}

/// Whether op row `name` is selected by `filter` (a row is when its name contains one of the
/// filter's words; an empty filter selects every row).
pub fn selected(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
}

/// An error naming the first word of `filter` (`--op`) that matches no op row.
pub fn check_filter(filter: &[String]) -> Result<()> {
    let names = op_row_names();
    match filter
        .iter()
        .find(|f| !names.iter().any(|n| n.contains(f.as_str())))
    {
        Some(f) => Err(Error::Config(format!(
            "--op {f}: matches no op (ops: {})",
            names.join(", ")
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    fn every_case(cfg: &BenchConfig) -> Vec<OpCase<CpuBackend>> {
        plan::<CpuBackend>(cfg, Recurrence::value_variants()).unwrap()
    }

    /// Every row name has its cases, and each name times the kernels of one op, which exist in
    /// kernels/*.cu (from v1, or from v2 or v3 for a sweep whose versions start there) (the kernel signatures are parsed with or without a CUDA compiler).
    #[test]
    fn every_op_name_has_a_planned_case() {
        let planned = every_case(super::super::config("tiny").unwrap());
        let names = op_row_names();
        assert!(!names.is_empty());
        for name in names {
            assert!(planned.iter().any(|p| p.name == name), "{name}");
            let key = planned.iter().find(|p| p.name == name).unwrap().kernel;
            assert!(
                planned
                    .iter()
                    .filter(|p| p.name == name)
                    .all(|p| p.kernel == key),
                "{name}: key {key}"
            );
            // v1, or the first version of a sweep that starts later (the fp32 weight
            // gradient's v2 and v3).
            assert!(
                (1..=3).any(|v| crate::kernels::signature(&format!("{key}_v{v}")).is_some()),
                "{name}: no kernel {key}_v1 to _v3"
            );
        }
    }

    /// Each case's byte formula is its compulsory traffic: every input read once, every
    /// output (and updated input) written once, at two sizes (square C = 1, and H != W with
    /// C = 3).
    #[test]
    fn byte_formulas_count_every_input_and_output_once() {
        let odd = BenchConfig {
            name: "odd",
            height: 5,
            width: 6,
            channels: 3,
            layers: 1,
            hidden: 3,
            head: 8,
            batch: 2,
        };
        let cpu = CpuBackend::new();
        for cfg in [super::super::config("tiny").unwrap(), &odd] {
            for case in every_case(cfg) {
                let host = (case.inputs)().unwrap();
                let mut args = case.upload(&cpu, &host).unwrap();
                let got = case.results(&cpu, &mut args).unwrap();
                let read: usize = host.iter().map(|h| h.data.len()).sum();
                let written: usize = got.iter().map(Vec::len).sum();
                assert_eq!(
                    case.bytes,
                    4.0 * (read + written) as f64,
                    "{} {} on {}",
                    case.name,
                    case.shape,
                    cfg.name
                );
            }
        }
    }
}
