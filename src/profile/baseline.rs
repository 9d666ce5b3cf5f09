//! The counter regression baseline: per profiled step and kernel, the global efficiency
//! (byte-weighted and of the worst site) and the shared-memory conflict degree (mean and of
//! the worst site), as a tab-separated file that is updated deliberately (the gate test in
//! tests/counter_gate.rs compares a fresh profile with it).

use std::fmt::Write as _;

use super::StepProfile;
use crate::error::{Error, Result};

/// How much a figure may move before the gate calls it a change: one percentage point of
/// efficiency, 0.01 of conflict degree. The counters of one build are exact, but a kernel
/// whose accesses depend on its data (`relu_bwd` reads `dy` only where `x > 0`) moves by a
/// few tenths of a point when a kernel upstream changes the values it sees; a broken
/// coalescing pattern moves by tens of points.
pub const GATE_SLACK: f64 = 0.01;

/// One kernel of one profiled step.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineEntry {
    /// The step (`pixelcnn`, `row-lstm fused`, `diag-bilstm unfused/materialised`).
    pub step: String,
    /// The kernel.
    pub kernel: String,
    /// Byte-weighted global efficiency (`None`: no global access).
    pub efficiency: Option<f64>,
    /// The worst site's efficiency.
    pub worst_efficiency: Option<f64>,
    /// Mean shared conflict excess (`None`: no shared memory).
    pub shared_conflict: Option<f64>,
    /// The worst shared site's conflict excess.
    pub shared_conflict_max: Option<f64>,
}

impl BaselineEntry {
    /// The entries of a profiled step, one per kernel, in kernel-name order.
    pub fn of_step(p: &StepProfile) -> Vec<BaselineEntry> {
        let mut v: Vec<BaselineEntry> = p
            .kernels
            .iter()
            .map(|k| BaselineEntry {
                step: p.target.clone(),
                kernel: k.kernel.clone(),
                efficiency: (k.global_requests > 0).then_some(k.efficiency),
                worst_efficiency: k.worst.as_ref().map(|w| w.efficiency),
                shared_conflict: k.shared_conflict,
                shared_conflict_max: k.shared_conflict_max,
            })
            .collect();
        v.sort_by(|a, b| a.kernel.cmp(&b.kernel));
        v
    }
}

/// What the gate found for one kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum GateFinding {
    /// A figure got worse than the baseline: fails the gate.
    Worse {
        /// Step.
        step: String,
        /// Kernel.
        kernel: String,
        /// `efficiency`, `worst_efficiency`, `shared_conflict`, `shared_conflict_max`.
        metric: &'static str,
        /// The baseline's value (`None`: absent).
        baseline: Option<f64>,
        /// Today's.
        now: Option<f64>,
    },
    /// A kernel the baseline does not have: fails (add it deliberately).
    New {
        /// Step.
        step: String,
        /// Kernel.
        kernel: String,
    },
    /// A kernel of the baseline no longer launched: fails (remove it deliberately).
    Gone {
        /// Step.
        step: String,
        /// Kernel.
        kernel: String,
    },
    /// A figure got better: does not fail; the baseline should be updated to lock it in.
    Better {
        /// Step.
        step: String,
        /// Kernel.
        kernel: String,
        /// As in `Worse`.
        metric: &'static str,
        /// The baseline's value.
        baseline: Option<f64>,
        /// Today's.
        now: Option<f64>,
    },
}

impl GateFinding {
    /// Whether it fails the gate.
    pub fn fails(&self) -> bool {
        !matches!(self, GateFinding::Better { .. })
    }
}

impl std::fmt::Display for GateFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |x: &Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
        match self {
            GateFinding::Worse {
                step,
                kernel,
                metric,
                baseline,
                now,
            } => write!(
                f,
                "WORSE  {step}: {kernel} {metric} {} -> {}",
                v(baseline),
                v(now)
            ),
            GateFinding::Better {
                step,
                kernel,
                metric,
                baseline,
                now,
            } => write!(
                f,
                "better {step}: {kernel} {metric} {} -> {}",
                v(baseline),
                v(now)
            ),
            GateFinding::New { step, kernel } => {
                write!(f, "NEW    {step}: {kernel} is not in the baseline")
            }
            GateFinding::Gone { step, kernel } => {
                write!(
                    f,
                    "GONE   {step}: {kernel} is in the baseline but not launched"
                )
            }
        }
    }
}

const HEADER: &str = "\
# pixelrnn emulator memory-counter baseline (tests/counter_gate.rs). One line per profiled
# training step and kernel: byte-weighted global efficiency, the worst site's efficiency,
# mean and worst shared-memory bank-conflict excess (1.0 = conflict-free); '-' = no such
# access. Update it deliberately, with the reason in the commit message:
#   PIXELRNN_UPDATE_BASELINE=1 cargo test --release --test counter_gate
# step\tkernel\tefficiency\tworst_efficiency\tshared_conflict\tshared_conflict_max
";

/// The baseline file's text for `entries`.
pub fn write_baseline(entries: &[BaselineEntry]) -> String {
    let v = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.4}"));
    let mut s = HEADER.to_string();
    for e in entries {
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.step,
            e.kernel,
            v(e.efficiency),
            v(e.worst_efficiency),
            v(e.shared_conflict),
            v(e.shared_conflict_max)
        );
    }
    s
}

/// Parses a baseline file's text (`#` lines are comments).
pub fn parse_baseline(text: &str) -> Result<Vec<BaselineEntry>> {
    let num = |line: usize, f: &str| -> Result<Option<f64>> {
        if f == "-" {
            return Ok(None);
        }
        f.parse::<f64>().map(Some).map_err(|_| {
            Error::Config(format!(
                "counter baseline line {line}: `{f}` is not a number"
            ))
        })
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 6 {
            return Err(Error::Config(format!(
                "counter baseline line {}: {} tab-separated fields, expected 6",
                i + 1,
                f.len()
            )));
        }
        out.push(BaselineEntry {
            step: f[0].to_string(),
            kernel: f[1].to_string(),
            efficiency: num(i + 1, f[2])?,
            worst_efficiency: num(i + 1, f[3])?,
            shared_conflict: num(i + 1, f[4])?,
            shared_conflict_max: num(i + 1, f[5])?,
        });
    }
    Ok(out)
}

/// Compares today's entries with the baseline's, for the steps present in `now` (a baseline
/// may hold more steps than one run profiles). Efficiency may not fall and conflict may not
/// rise by more than [`GATE_SLACK`]; a figure appearing where the baseline had none counts as
/// worse for conflicts (new shared traffic is fine to have, but only deliberately) and as
/// nothing for efficiency.
pub fn compare(baseline: &[BaselineEntry], now: &[BaselineEntry]) -> Vec<GateFinding> {
    let mut out = Vec::new();
    let find = |set: &[BaselineEntry], step: &str, kernel: &str| {
        set.iter()
            .find(|e| e.step == step && e.kernel == kernel)
            .cloned()
    };
    for e in now {
        let Some(b) = find(baseline, &e.step, &e.kernel) else {
            out.push(GateFinding::New {
                step: e.step.clone(),
                kernel: e.kernel.clone(),
            });
            continue;
        };
        // (metric, baseline, now, higher is better)
        let metrics: [(&'static str, Option<f64>, Option<f64>, bool); 4] = [
            ("efficiency", b.efficiency, e.efficiency, true),
            (
                "worst_efficiency",
                b.worst_efficiency,
                e.worst_efficiency,
                true,
            ),
            (
                "shared_conflict",
                b.shared_conflict,
                e.shared_conflict,
                false,
            ),
            (
                "shared_conflict_max",
                b.shared_conflict_max,
                e.shared_conflict_max,
                false,
            ),
        ];
        for (metric, bv, nv, higher_better) in metrics {
            let change = match (bv, nv) {
                (Some(x), Some(y)) => {
                    let d = if higher_better { y - x } else { x - y };
                    if d < -GATE_SLACK {
                        Some(false)
                    } else if d > GATE_SLACK {
                        Some(true)
                    } else {
                        None
                    }
                }
                (None, Some(_)) if !higher_better => Some(false),
                (Some(_), None) if !higher_better => Some(true),
                _ => None,
            };
            let (step, kernel) = (e.step.clone(), e.kernel.clone());
            match change {
                Some(false) => out.push(GateFinding::Worse {
                    step,
                    kernel,
                    metric,
                    baseline: bv,
                    now: nv,
                }),
                Some(true) => out.push(GateFinding::Better {
                    step,
                    kernel,
                    metric,
                    baseline: bv,
                    now: nv,
                }),
                None => {}
            }
        }
    }
    for b in baseline {
        let profiled = now.iter().any(|e| e.step == b.step);
        if profiled && find(now, &b.step, &b.kernel).is_none() {
            out.push(GateFinding::Gone {
                step: b.step.clone(),
                kernel: b.kernel.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kernel: &str, eff: f64, conflict: Option<f64>) -> BaselineEntry {
        BaselineEntry {
            step: "pixelcnn".into(),
            kernel: kernel.into(),
            efficiency: Some(eff),
            worst_efficiency: Some(eff / 2.0),
            shared_conflict: conflict,
            shared_conflict_max: conflict,
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let v = vec![e("a_v1", 0.5, None), e("b_v2", 1.0, Some(2.0))];
        let back = parse_baseline(&write_baseline(&v)).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn worse_new_and_gone_fail_better_does_not() {
        let base = vec![e("a_v1", 0.5, Some(1.0)), e("b_v1", 0.9, None)];
        let now = vec![e("a_v1", 0.4, Some(1.0)), e("c_v1", 1.0, None)];
        let f = compare(&base, &now);
        assert!(f.iter().any(|x| matches!(x, GateFinding::Worse { kernel, metric: "efficiency", .. } if kernel == "a_v1")));
        assert!(f
            .iter()
            .any(|x| matches!(x, GateFinding::New { kernel, .. } if kernel == "c_v1")));
        assert!(f
            .iter()
            .any(|x| matches!(x, GateFinding::Gone { kernel, .. } if kernel == "b_v1")));
        assert!(f.iter().all(GateFinding::fails));

        let better = vec![e("a_v1", 0.8, Some(1.0)), e("b_v1", 0.9, None)];
        let f = compare(&base, &better);
        assert!(!f.is_empty() && f.iter().all(|x| !x.fails()), "{f:?}");

        let conflicted = vec![e("a_v1", 0.5, Some(2.0)), e("b_v1", 0.9, None)];
        let f = compare(&base, &conflicted);
        assert!(f.iter().any(|x| matches!(
            x,
            GateFinding::Worse {
                metric: "shared_conflict",
                ..
            }
        )));
        // Within the slack: no finding.
        let same = vec![e("a_v1", 0.505, Some(1.0)), e("b_v1", 0.9, None)];
        assert!(compare(&base, &same).is_empty());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse_baseline("a\tb\tc\n").is_err());
        assert!(parse_baseline("a\tb\tx\t-\t-\t-\n").is_err());
    }
}
