//! Loss curves as SVG charts: a run's train and test NLL against the optimizer step (written
//! to its run folder as `loss.svg` at every evaluation), or the test NLL of several runs side
//! by side (`pixelrnn plot`). SVG keeps the text as text: no font files, any browser shows it.
//! The metrics come from the run folder ([`crate::run_dir`]), not from training itself.

use plotters::prelude::*;

use crate::checkpoint;
use crate::error::{Error, Result};
use crate::run_dir::{read_metrics, Metrics, RunDir};

/// One line of a chart: `(step, value)` points in step order.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    /// Legend entry.
    pub label: String,
    /// The points; non-finite values are left out when drawn.
    pub points: Vec<(u64, f64)>,
}

/// What a run's curves measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// NLL in nats per image (what `train` prints).
    NatsPerImage,
    /// NLL in bits per dimension (comparable across image sizes).
    BitsPerDim,
}

impl Unit {
    /// The axis label.
    pub fn label(self) -> &'static str {
        match self {
            Unit::NatsPerImage => "NLL (nats / image)",
            Unit::BitsPerDim => "NLL (bits / dim)",
        }
    }
}

/// Factor from nats per image to `unit`, read off the metrics themselves (test bits per dim
/// over test nats), so that no dataset size is needed.
fn scale(metrics: &[Metrics], unit: Unit) -> f64 {
    match unit {
        Unit::NatsPerImage => 1.0,
        Unit::BitsPerDim => metrics
            .iter()
            .find(|m| m.test_nll_nats > 0.0 && m.test_bits_per_dim.is_finite())
            .map_or(f64::NAN, |m| m.test_bits_per_dim / m.test_nll_nats),
    }
}

/// The curves of one run: train NLL (the mean over each window between evaluations, drawn at
/// the window's last step), test NLL and, for a multi-scale model, its two stages' test NLL.
pub fn run_curves(metrics: &[Metrics], unit: Unit) -> Vec<Curve> {
    let k = scale(metrics, unit);
    let series = |label: &str, f: &dyn Fn(&Metrics) -> Option<f64>| Curve {
        label: label.to_string(),
        points: metrics
            .iter()
            .filter_map(|m| f(m).map(|v| (m.step, v * k)))
            .collect(),
    };
    let mut curves = vec![
        series("train", &|m| m.train_nll),
        series("test", &|m| Some(m.test_nll_nats)),
        series("test, stage 1", &|m| m.stage1_nll_nats),
        series("test, stage 2", &|m| m.stage2_nll_nats),
    ];
    curves.retain(|c| !c.points.is_empty());
    curves
}

/// The test NLL of one run, labelled `label` (for comparing runs).
pub fn test_curve(metrics: &[Metrics], unit: Unit, label: &str) -> Curve {
    let k = scale(metrics, unit);
    Curve {
        label: label.to_string(),
        points: metrics
            .iter()
            .map(|m| (m.step, m.test_nll_nats * k))
            .collect(),
    }
}

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A y-axis tick value to about three significant digits.
fn tick_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// An SVG line chart of `curves` against the step, titled `title`. The y axis is logarithmic
/// (values drawn as their log, labelled with the values) when they span more than a factor of
/// 3: the first evaluation of a run is often far above the rest.
pub fn chart_svg(title: &str, unit: Unit, curves: &[Curve]) -> Result<String> {
    let keep = |p: &(u64, f64)| p.1.is_finite() && p.1 > 0.0;
    let all: Vec<(u64, f64)> = curves
        .iter()
        .flat_map(|c| c.points.iter().copied())
        .filter(keep)
        .collect();
    let x_max = all.iter().map(|p| p.0).max().unwrap_or(1).max(1);
    let lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let log = lo.is_finite() && hi / lo > 3.0;
    let to_axis = |v: f64| if log { v.log10() } else { v };
    let (lo, hi) = match (lo.is_finite(), hi > lo) {
        (true, true) => (to_axis(lo), to_axis(hi)),
        (true, false) => (to_axis(lo) * 0.9, to_axis(lo) * 1.1),
        (false, _) => (0.0, 1.0),
    };
    let pad = (hi - lo) * 0.05;
    let err = |e: &dyn std::fmt::Display| Error::Unsupported(format!("drawing the chart: {e}"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0..x_max, lo - pad..hi + pad)
            .map_err(|e| err(&e))?;
        let label = |v: &f64| tick_label(if log { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(if log {
                format!("{} (log scale)", unit.label())
            } else {
                unit.label().to_string()
            })
            .y_label_formatter(&label)
            .light_line_style(BLACK.mix(0.04))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, c) in curves.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<(u64, f64)> = c
                .points
                .iter()
                .filter(|p| keep(p))
                .map(|&(x, y)| (x, to_axis(y)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(c.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Redraws `run`'s `loss.svg` from its `metrics.jsonl`.
pub fn write_loss_curve(run: &RunDir, title: &str) -> Result<()> {
    let metrics = read_metrics(&run.metrics())?;
    let svg = chart_svg(
        title,
        Unit::NatsPerImage,
        &run_curves(&metrics, Unit::NatsPerImage),
    )?;
    checkpoint::write_atomic(&run.loss_curve(), svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(step: u64, train: Option<f64>, test: f64) -> Metrics {
        Metrics {
            step,
            train_nll: train,
            test_nll_nats: test,
            test_bits_per_dim: test / (784.0 * std::f64::consts::LN_2),
            stage1_nll_nats: None,
            stage2_nll_nats: None,
            images_per_sec: None,
            seconds: 0.0,
        }
    }

    #[test]
    fn run_curves_hold_train_and_test_points_in_the_unit_asked() {
        let ms = [
            m(0, None, 552.0),
            m(250, Some(120.0), 110.0),
            m(500, Some(90.0), 88.0),
        ];
        let c = run_curves(&ms, Unit::NatsPerImage);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].label, "train");
        assert_eq!(c[0].points, vec![(250, 120.0), (500, 90.0)]);
        assert_eq!(c[1].points, vec![(0, 552.0), (250, 110.0), (500, 88.0)]);
        let bits = run_curves(&ms, Unit::BitsPerDim);
        let want = 88.0 / (784.0 * std::f64::consts::LN_2);
        assert!((bits[1].points[2].1 - want).abs() < 1e-12);
    }

    #[test]
    fn a_multiscale_run_adds_its_two_stages() {
        let mut ms = [m(0, None, 552.0), m(250, Some(120.0), 110.0)];
        for (x, (a, b)) in ms.iter_mut().zip([(150.0, 402.0), (30.0, 80.0)]) {
            x.stage1_nll_nats = Some(a);
            x.stage2_nll_nats = Some(b);
        }
        let c = run_curves(&ms, Unit::NatsPerImage);
        let labels: Vec<&str> = c.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["train", "test", "test, stage 1", "test, stage 2"]);
        assert_eq!(c[3].points, vec![(0, 402.0), (250, 80.0)]);
    }

    #[test]
    fn chart_draws_every_curve_with_its_legend() {
        let ms = [
            m(0, None, 552.0),
            m(250, Some(120.0), 110.0),
            m(500, Some(90.0), 88.0),
        ];
        let svg = chart_svg(
            "a run",
            Unit::NatsPerImage,
            &run_curves(&ms, Unit::NatsPerImage),
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        for text in ["a run", "train", "test", "step", "log scale"] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        // One polyline per curve, plus the legend's samples.
        assert!(svg.matches("<polyline").count() >= 2);
        // Degenerate inputs still draw: one point, no finite point, no curve.
        for curves in [
            vec![Curve {
                label: "x".into(),
                points: vec![(0, 5.0)],
            }],
            vec![Curve {
                label: "x".into(),
                points: vec![(3, f64::NAN)],
            }],
            vec![],
        ] {
            assert!(chart_svg("t", Unit::BitsPerDim, &curves)
                .unwrap()
                .starts_with("<svg"));
        }
    }
}
