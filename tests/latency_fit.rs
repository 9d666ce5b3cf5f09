//! `H200_LATENCY` against the data it was fitted to: data/latency-profiles/first-device-run.json
//! (written by `scripts/fit_latency_model.py --save`; docs/kernels.md, "The latency model") holds
//! the emulator's per-kernel chains of the first device run's 18 fp32 steps with their measured
//! times, and of the persistent steps whose kernels have measured op rows. The model's
//! formula (src/profile/latency.rs) at the committed times must reproduce the documented fit
//! (rms log error 0.081) and ranking (the measured fastest version of every op row, 40 of 42
//! pairs in order): a change to the times or the formula that is not refitted fails here.

use std::collections::{BTreeMap, HashMap};

use pixelrnn::profile::{WarpChain, H200_LATENCY};
use serde::Deserialize;

/// One version of an op row: its version, measured and modelled ms per launch.
#[derive(Debug)]
struct Version {
    version: String,
    measured: f64,
    model: f64,
}

#[derive(Deserialize)]
struct Profiles {
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    config: String,
    target: String,
    roofline: Roofline,
    kernels: Vec<Kernel>,
    measured_ms: Option<f64>,
    #[serde(default)]
    measured_kernel_ms: HashMap<String, f64>,
}

#[derive(Deserialize)]
struct Roofline {
    launch_s: f64,
}

#[derive(Deserialize)]
struct Kernel {
    kernel: String,
    launches: u64,
    estimate_s: f64,
    chain: Option<WarpChain>,
}

/// Milliseconds of `kernel`'s mean launch under the model: the larger of its roofline work and
/// its chain's time, plus the launch (the chain is linear, so its mean is its sum over n).
fn launch_ms(k: &Kernel, launch_s: f64) -> f64 {
    let n = k.launches as f64;
    let work = k.estimate_s / n - launch_s;
    let latency = k.chain.map_or(0.0, |c| H200_LATENCY.time_s(&c) / n);
    1e3 * (work.max(latency) + launch_s)
}

/// data/latency-profiles/`name`.
fn read(name: &str) -> Profiles {
    let path = format!(
        "{}/data/latency-profiles/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the profiles"))
        .expect("parse the profiles")
}

fn profiles() -> Profiles {
    read("first-device-run.json")
}

/// The model's time of a whole step, ms.
fn step_ms(s: &Step) -> f64 {
    s.kernels
        .iter()
        .map(|k| k.launches as f64 * launch_ms(k, s.roofline.launch_s))
        .sum()
}

#[test]
fn the_committed_times_reproduce_the_documented_fit() {
    let p = profiles();
    let mut squares = Vec::new();
    for s in p.steps.iter().filter(|s| s.measured_ms.is_some()) {
        let ratio = step_ms(s) / s.measured_ms.unwrap();
        assert!(
            (0.85..1.2).contains(&ratio),
            "{} {}: model / measured {ratio:.3}",
            s.config,
            s.target
        );
        squares.push(ratio.ln().powi(2));
    }
    assert_eq!(squares.len(), 18);
    let rms = (squares.iter().sum::<f64>() / squares.len() as f64).sqrt();
    assert!((rms - 0.081).abs() < 0.0015, "rms log error {rms:.4}");
}

#[test]
fn the_committed_times_rank_the_persistent_versions_as_documented() {
    let p = profiles();
    // (config, kernel without its version) -> its versions.
    let mut groups: BTreeMap<(String, String), Vec<Version>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for s in &p.steps {
        for k in &s.kernels {
            let Some(&measured) = s.measured_kernel_ms.get(&k.kernel) else {
                continue;
            };
            if !seen.insert((s.config.clone(), k.kernel.clone())) {
                continue;
            }
            let (base, version) = k.kernel.rsplit_once("_v").unwrap();
            groups
                .entry((s.config.clone(), base.to_string()))
                .or_default()
                .push(Version {
                    version: version.to_string(),
                    measured,
                    model: launch_ms(k, s.roofline.launch_s),
                });
        }
    }
    assert_eq!(groups.len(), 5);
    let (mut agree, mut pairs) = (0, 0);
    for ((config, base), rows) in &groups {
        let fastest = |by: fn(&Version) -> f64| {
            rows.iter()
                .min_by(|a, b| by(a).total_cmp(&by(b)))
                .unwrap()
                .version
                .clone()
        };
        assert_eq!(
            fastest(|r| r.model),
            fastest(|r| r.measured),
            "{config} {base}: the model's fastest is not the measured one: {rows:?}"
        );
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                pairs += 1;
                agree += usize::from((a.measured < b.measured) == (a.model < b.model));
            }
        }
    }
    assert_eq!((agree, pairs), (40, 42));
}

/// The predictions docs/kernels.md lists for today's defaults ("What it says about today's
/// defaults"), from data/latency-profiles/predicted.json: the steps as the emulator profiled
/// them (binaries of 508ee29, the Diagonal BiLSTM's at cifar-large of 9216198: the same kernels
/// and counters; the persistent v7 steps of 0e16ce3, the fused v8 steps of 06349ec), modelled
/// at the committed times.
#[test]
fn the_committed_times_give_the_documented_predictions() {
    let p = read("predicted.json");
    let want = [
        ("cifar-large", "pixelcnn", "masked_conv2d_fwd_v4", 9.67),
        ("cifar-large", "pixelcnn", "masked_conv2d_fwd_v5", 9.53),
        (
            "cifar-large",
            "row-lstm fused",
            "row_lstm_step_bwd_v2",
            164.19,
        ),
        (
            "cifar-large",
            "row-lstm persistent",
            "row_lstm_persistent_bwd_v6",
            35.14,
        ),
        (
            "cifar-large",
            "diag-bilstm fused",
            "diag_lstm_step_bwd_v2",
            405.91,
        ),
        (
            "cifar-large",
            "diag-bilstm persistent",
            "diag_lstm_persistent_bwd_v6",
            68.04,
        ),
        (
            "mnist",
            "row-lstm persistent",
            "row_lstm_persistent_bwd_v6",
            8.66,
        ),
        (
            "mnist",
            "diag-bilstm persistent",
            "diag_lstm_persistent_bwd_v6",
            20.84,
        ),
        // The persistent v7 steps (binary of 0e16ce3, 2026-12-08).
        (
            "cifar-large",
            "row-lstm persistent",
            "row_lstm_persistent_bwd_v7",
            21.95,
        ),
        (
            "cifar-large",
            "diag-bilstm persistent",
            "diag_lstm_persistent_bwd_v7",
            45.08,
        ),
        (
            "mnist",
            "row-lstm persistent",
            "row_lstm_persistent_bwd_v7",
            6.86,
        ),
        (
            "mnist",
            "diag-bilstm persistent",
            "diag_lstm_persistent_bwd_v7",
            17.43,
        ),
        // The fused steps under the stepwise v8 kernels (binary of 06349ec, 2026-12-08).
        (
            "cifar-large",
            "row-lstm fused",
            "row_lstm_step_bwd_v8",
            61.07,
        ),
        (
            "cifar-large",
            "diag-bilstm fused",
            "diag_lstm_step_bwd_v8",
            126.49,
        ),
    ];
    for (config, target, kernel, ms) in want {
        let s = p
            .steps
            .iter()
            .find(|s| {
                s.config == config
                    && s.target == target
                    && s.kernels.iter().any(|k| k.kernel == kernel)
            })
            .unwrap_or_else(|| panic!("no {config} {target} step with {kernel}"));
        let got = step_ms(s);
        assert!(
            (got - ms).abs() <= 0.0051,
            "{config} {target} ({kernel}): {got:.3} ms, documented {ms}"
        );
    }
}
