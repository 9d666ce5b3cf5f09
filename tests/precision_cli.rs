//! `--precision fp32|tf32|bf16` through the binary (issue 18 item 3): `train` records it in the
//! run's config and the checkpoint's training config (fp32 unless given), `--resume` may change
//! it and says so, `eval` and `sample` default to the precision the checkpoint was trained at
//! and take the flag to override it, `bench --precision all` prints a row per precision, and a
//! bad value is one clear line.

mod common;

use std::path::Path;

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{assert_clean_error, pixelrnn, s};
use common::runs::{last_test_nll, run_config, train, write_images};

/// The `precision` of the training config in `run`'s checkpoint metadata.
fn checkpoint_precision(run: &Path) -> Value {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = md.metadata().clone().expect("pixelrnn metadata");
    let train: Value = serde_json::from_str(&meta["train_config"]).unwrap();
    train["precision"].clone()
}

/// `eval --json --limit 16` of `run` with `extra` flags: (precision, test NLL).
fn eval(run: &Path, extra: &[&str]) -> (String, f64) {
    let mut args = vec!["eval", "--checkpoint", s(run), "--json", "--limit", "16"];
    args.extend(extra);
    let out = pixelrnn(&args).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    (
        v["precision"]
            .as_str()
            .expect("eval --json has precision")
            .to_string(),
        v["test_nll_nats"].as_f64().unwrap(),
    )
}

#[test]
fn train_records_the_precision_and_eval_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let (plain, rounded) = (dir.path().join("fp32"), dir.path().join("bf16"));
    train(s(&data), &plain, 3, &[]).expect_ok();
    let out = train(s(&data), &rounded, 3, &["--precision", "bf16"]).expect_ok();
    assert!(out.stderr.contains("precision bf16"), "{}", out.stderr);
    assert_eq!(run_config(&plain)["precision"], "fp32");
    assert_eq!(run_config(&rounded)["precision"], "bf16");
    assert_eq!(checkpoint_precision(&rounded), "bf16");
    // The same seed and data: only the rounding differs, so the runs do.
    assert_ne!(last_test_nll(&plain), last_test_nll(&rounded));
    // eval scores at the trained precision unless told otherwise: the NLL the run reported.
    let (p, nll) = eval(&rounded, &[]);
    assert_eq!(p, "bf16");
    let reported = last_test_nll(&rounded);
    assert!(
        (nll - reported).abs() <= 1e-4 * reported,
        "{nll} vs {reported}"
    );
    let (p, nll32) = eval(&rounded, &["--precision", "fp32"]);
    assert_eq!(p, "fp32");
    assert_ne!(nll32, nll, "--precision fp32 scored at bf16");
    assert_eq!(eval(&plain, &[]).0, "fp32");
}

#[test]
fn resume_may_change_the_precision_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let run = dir.path().join("run");
    train(s(&data), &run, 2, &["--precision", "tf32"]).expect_ok();
    let out = pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(&run),
        "--steps",
        "4",
        "--precision",
        "bf16",
        "--device",
        "cpu",
    ])
    .expect_ok();
    assert!(
        out.stderr
            .contains("--resume: precision bf16 (the run was trained at tf32 so far)"),
        "{}",
        out.stderr
    );
    assert_eq!(checkpoint_precision(&run), "bf16");
    // Without the flag a resume keeps the run's precision.
    let out = pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(&run),
        "--steps",
        "5",
        "--device",
        "cpu",
    ])
    .expect_ok();
    assert!(
        !out.stderr.contains("--resume: precision"),
        "{}",
        out.stderr
    );
    assert_eq!(checkpoint_precision(&run), "bf16");
}

#[test]
fn sample_takes_the_precision() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let run = dir.path().join("run");
    train(s(&data), &run, 2, &["--precision", "bf16"]).expect_ok();
    let draw = |extra: &[&str], name: &str| {
        let npy = dir.path().join(name);
        let mut args = vec![
            "sample",
            "--checkpoint",
            s(&run),
            "--n",
            "2",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--out",
        ];
        let png = dir.path().join(format!("{name}.png"));
        args.push(s(&png));
        args.extend(["--npy", s(&npy)]);
        args.extend(extra);
        pixelrnn(&args).expect_ok();
        std::fs::read(&npy).unwrap()
    };
    // The default is the trained precision: the same images as asking for it.
    assert_eq!(draw(&[], "a.npy"), draw(&["--precision", "bf16"], "b.npy"));
}

#[test]
fn bad_precision_is_one_clear_line() {
    for cmd in [
        vec!["train", "--precision", "fp16"],
        vec!["eval", "--checkpoint", "x", "--precision", "fp16"],
        vec!["sample", "--checkpoint", "x", "--precision", "fp16"],
        vec!["bench", "--precision", "fp16"],
    ] {
        let out = pixelrnn(&cmd);
        assert_clean_error(&out, &["fp16", "--precision"]);
    }
}

#[test]
fn bench_prints_a_step_row_per_precision() {
    let json = tempfile::tempdir().unwrap();
    let path = json.path().join("bench.json");
    pixelrnn(&[
        "bench",
        "--device",
        "cpu",
        "--part",
        "steps",
        "--model",
        "pixelcnn",
        "--config",
        "tiny",
        "--step-iters",
        "1",
        "--warmup",
        "0",
        "--precision",
        "all",
        "--json",
        s(&path),
    ])
    .expect_ok();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let variants: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["-", "- tf32", "- bf16"], "{report}");
}
