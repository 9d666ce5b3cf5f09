//! `pixelrnn plot`: loss curves of one or more run folders as an SVG chart.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pixelrnn::plot::{chart_svg, run_curves, test_curve, Unit};
use pixelrnn::run_dir::{read_metrics, RunDir};
use pixelrnn::train::TrainConfig;

/// Draw the loss curves of training runs as an SVG chart. One run: its train and test NLL
/// (and a multi-scale model's two stages); several: their test NLL side by side.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Run folders written by `pixelrnn train` (each holds metrics.jsonl).
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// The SVG to write [default: RUN/loss.svg for one run, loss-comparison.svg for several].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bits per dimension instead of nats per image (comparable across image sizes).
    #[arg(long)]
    bits: bool,
}

/// A run's architecture line from its config.json, if it has a readable one.
fn summary(run: &RunDir) -> Option<String> {
    let text = std::fs::read_to_string(run.config()).ok()?;
    let cfg: TrainConfig = serde_json::from_str(&text).ok()?;
    Some(cfg.model.summary())
}

/// The run's folder name, for legends.
fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Runs `pixelrnn plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let unit = if args.bits {
        Unit::BitsPerDim
    } else {
        Unit::NatsPerImage
    };
    let mut runs = Vec::new();
    for path in &args.runs {
        let run = RunDir { root: path.clone() };
        if !run.metrics().is_file() {
            bail!(
                "{}: no metrics.jsonl here (give the run folder that `pixelrnn train --out` wrote)",
                path.display()
            );
        }
        let metrics = read_metrics(&run.metrics())?;
        if metrics.is_empty() {
            bail!(
                "{}: metrics.jsonl holds no evaluation yet",
                run.metrics().display()
            );
        }
        runs.push((run, metrics));
    }
    let (out, title, curves) = if let [(run, metrics)] = runs.as_slice() {
        let title = match summary(run) {
            Some(s) => format!("{}: {s}", name(&run.root)),
            None => name(&run.root),
        };
        let out = args.out.clone().unwrap_or_else(|| run.loss_curve());
        (out, title, run_curves(metrics, unit))
    } else {
        let curves = runs
            .iter()
            .map(|(run, m)| {
                let label = match summary(run) {
                    Some(s) => format!("{} ({s})", name(&run.root)),
                    None => name(&run.root),
                };
                test_curve(m, unit, &label)
            })
            .collect();
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("loss-comparison.svg"));
        (out, "test NLL".to_string(), curves)
    };
    super::check_writable("--out", &out)?;
    let svg = chart_svg(&title, unit, &curves)?;
    std::fs::write(&out, svg).with_context(|| format!("--out {}", out.display()))?;
    let points: usize = curves.iter().map(|c| c.points.len()).sum();
    println!(
        "wrote {} ({} curves, {points} points)",
        out.display(),
        curves.len()
    );
    Ok(())
}
