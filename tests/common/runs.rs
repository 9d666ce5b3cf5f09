//! Training tiny runs with the binary and reading back what a run folder holds (config.json,
//! metrics.jsonl, the checkpoint's tensors): the helpers that tests/cli.rs, tests/cli_errors.rs,
//! tests/binarize.rs and tests/reliability_values.rs share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::Value;

use super::cli::{pixelrnn, s, write_npy_images, Out, TINY};

/// Panics with every message of `failures`, if any.
pub fn assert_none_failed(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Writes `n` random uint8 images of `h x w x c` to `dir/name` (NHWC .npy).
pub fn write_images(dir: &Path, name: &str, n: usize, h: usize, w: usize, c: usize) -> PathBuf {
    write_npy_images(dir, name, (n, h, w, c), n as u64 + c as u64)
}

/// `pixelrnn train --data DATA <TINY> --steps STEPS --out OUT <extra...>`.
pub fn train(data: &str, out: &Path, steps: u32, extra: &[&str]) -> Out {
    let steps = steps.to_string();
    let mut args = vec!["train", "--data", data];
    args.extend(TINY);
    args.extend(["--steps", &steps, "--out", s(out)]);
    args.extend(extra);
    pixelrnn(&args)
}

/// A temporary folder with a trained tiny PixelCNN run in `run/` (8 x 8 x 1, 200 images:
/// 180 train / 20 test), trained 4 steps.
pub struct Trained {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub run: PathBuf,
}

/// [`Trained`], freshly trained.
pub fn trained_pixelcnn() -> Trained {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let run = dir.path().join("run");
    train(s(&data), &run, 4, &[]).expect_ok();
    Trained { dir, data, run }
}

/// The JSON document at `path`; panics naming the file if it is missing or not JSON.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A run folder's config.json.
pub fn run_config(run: &Path) -> Value {
    read_json(&run.join("config.json"))
}

/// Every line of a run folder's metrics.jsonl, parsed (no checks: [`read_metrics`] checks
/// the documented keys).
pub fn metrics_lines(run: &Path) -> Vec<Value> {
    let path = run.join("metrics.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("metrics line {l:?}: {e}")))
        .collect()
}

/// The `step` of every line of `run`'s metrics.jsonl.
pub fn metric_steps(run: &Path) -> Vec<u64> {
    metrics_lines(run)
        .iter()
        .map(|v| v["step"].as_u64().expect("a step"))
        .collect()
}

/// The test NLL (nats/image) of the last line of `run`'s metrics.jsonl.
pub fn last_test_nll(run: &Path) -> f64 {
    let lines = metrics_lines(run);
    let last = lines.last().expect("metrics.jsonl has a line");
    last["test_nll_nats"]
        .as_f64()
        .expect("test_nll_nats is a number")
}

/// The tensors of a safetensors file: name -> (dtype, shape, bytes).
pub fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let dtype = format!("{:?}", v.dtype());
            (n, (dtype, v.shape().to_vec(), v.data().to_vec()))
        })
        .collect()
}

/// The weight tensors (no optimizer state) of a run's checkpoint: name -> bytes, by name.
pub fn weights(run: &Path) -> Vec<(String, Vec<u8>)> {
    tensors(&run.join("checkpoint.safetensors"))
        .into_iter()
        .filter(|(n, _)| !n.starts_with("optim."))
        .map(|(n, (_, _, bytes))| (n, bytes))
        .collect()
}

/// The keys every metrics.jsonl line has (README, "Run folders").
pub const METRIC_KEYS: [&str; 6] = [
    "step",
    "train_nll",
    "test_nll_nats",
    "test_bits_per_dim",
    "images_per_sec",
    "seconds",
];

/// Reads metrics.jsonl, checking that every line is a JSON object with the documented keys,
/// that steps start at 0 and increase, and that bits/dim agrees with nats/image.
pub fn read_metrics(run: &Path, dims: usize) -> Vec<Value> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).expect("metrics.jsonl exists");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("metrics line {l:?}: not JSON: {e}"))
        })
        .collect();
    assert!(!lines.is_empty(), "metrics.jsonl is empty");
    let mut prev: Option<u64> = None;
    for m in &lines {
        let obj = m.as_object().expect("each metrics line is an object");
        for k in METRIC_KEYS {
            assert!(obj.contains_key(k), "metrics line lacks {k:?}: {m}");
        }
        let step = m["step"].as_u64().expect("step is an integer");
        match prev {
            None => assert_eq!(step, 0, "the first metrics line is step 0: {m}"),
            Some(p) => assert!(step > p, "steps must increase: {p} then {step}"),
        }
        prev = Some(step);
        let nats = m["test_nll_nats"]
            .as_f64()
            .expect("test_nll_nats is a number");
        let bits = m["test_bits_per_dim"]
            .as_f64()
            .expect("test_bits_per_dim is a number");
        assert!(nats.is_finite() && nats > 0.0, "{m}");
        assert_close(
            bits,
            nats / (dims as f64 * std::f64::consts::LN_2),
            1e-9,
            "bits/dim",
        );
        assert!(m["seconds"].as_f64().is_some_and(|v| v >= 0.0), "{m}");
        if step == 0 {
            assert!(m["train_nll"].is_null(), "step 0 has no train_nll: {m}");
        } else {
            assert!(m["train_nll"].as_f64().is_some_and(f64::is_finite), "{m}");
            assert!(m["images_per_sec"].as_f64().is_some_and(|v| v > 0.0), "{m}");
        }
    }
    lines
}

/// Panics unless `a` and `b` agree to `rel` relative.
pub fn assert_close(a: f64, b: f64, rel: f64, what: &str) {
    let scale = a.abs().max(b.abs()).max(1e-300);
    assert!(
        (a - b).abs() / scale <= rel,
        "{what}: {a} vs {b} differ by more than {rel} relative"
    );
}
