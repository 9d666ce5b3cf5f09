//! `--precision fp32|tf32|bf16` end to end (issue 18 item 3): `train` records it in the
//! checkpoint's training config and says it in its banner, `--resume` may change it (and says
//! so), `eval` and `sample` default to the checkpoint's precision and take the flag over it,
//! a checkpoint from before the key reads as fp32, and a bad value is one clear error.
//!
//! Tiny models on generated 8 x 8 data: the file runs in seconds on two cores.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{assert_clean_error, pixelrnn, s, write_npy_images, Out, TINY};

/// `pixelrnn train --data DATA <TINY> --steps STEPS --out OUT <extra...>`.
fn train(data: &Path, out: &Path, steps: u32, extra: &[&str]) -> Out {
    let steps = steps.to_string();
    let mut args = vec!["train", "--data", s(data)];
    args.extend(TINY);
    args.extend(["--steps", &steps, "--out", s(out)]);
    args.extend(extra);
    pixelrnn(&args)
}

/// The checkpoint's metadata, key by key.
fn metadata(run: &Path) -> HashMap<String, String> {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    md.metadata().clone().expect("pixelrnn metadata")
}

/// The `precision` key of the checkpoint's training config (`None` if absent).
fn recorded_precision(run: &Path) -> Option<String> {
    let train: Value = serde_json::from_str(&metadata(run)["train_config"]).unwrap();
    train
        .get("precision")
        .map(|v| v.as_str().unwrap().to_string())
}

/// A temporary folder with 8 x 8 x 1 images and a tiny PixelCNN trained 4 steps at `precision`.
fn trained(precision: &str) -> (tempfile::TempDir, PathBuf, PathBuf, Out) {
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "grey.npy", (120, 8, 8, 1), 7);
    let run = dir.path().join("run");
    let out = train(&data, &run, 4, &["--precision", precision]).expect_ok();
    (dir, data, run, out)
}

#[test]
fn train_records_the_precision_and_resume_may_change_it() {
    let (_dir, data, run, out) = trained("bf16");
    assert!(
        out.stderr.contains("precision bf16"),
        "the banner names the precision:\n{}",
        out.stderr
    );
    assert_eq!(recorded_precision(&run).as_deref(), Some("bf16"));
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["precision"], "bf16", "config.json: {config}");

    // Resume at another precision: allowed, said in the log, recorded.
    let resumed = pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(&run),
        "--steps",
        "6",
        "--precision",
        "tf32",
    ])
    .expect_ok();
    assert!(
        resumed
            .stderr
            .contains("--resume: precision tf32 (the saved run trained at bf16 until step 4)"),
        "the resume says the change:\n{}",
        resumed.stderr
    );
    assert_eq!(recorded_precision(&run).as_deref(), Some("tf32"));

    // Resume without the flag keeps the saved precision, silently.
    let again = pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", "7"]).expect_ok();
    assert!(
        !again.stderr.contains("--resume: precision"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("precision tf32"), "{}", again.stderr);
    assert_eq!(recorded_precision(&run).as_deref(), Some("tf32"));
    let _ = data;
}

#[test]
fn eval_and_sample_default_to_the_checkpoint_precision_and_take_the_flag() {
    let (dir, _data, run, _) = trained("bf16");
    let eval = |extra: &[&str]| -> Value {
        let mut args = vec!["eval", "--checkpoint", s(&run), "--json", "--device", "cpu"];
        args.extend(extra);
        let out = pixelrnn(&args).expect_ok();
        serde_json::from_str(out.stdout.trim()).unwrap()
    };
    assert_eq!(
        eval(&[])["precision"],
        "bf16",
        "eval defaults to the checkpoint's"
    );
    let fp32 = eval(&["--precision", "fp32"]);
    assert_eq!(fp32["precision"], "fp32");
    assert_eq!(eval(&["--precision", "tf32"])["precision"], "tf32");
    // The precision is applied, not only printed: bf16 operands change the NLL.
    let bf16 = eval(&[]);
    assert_ne!(
        bf16["test_nll_nats"].as_f64(),
        fp32["test_nll_nats"].as_f64(),
        "eval at bf16 and fp32 gave the same NLL: the precision was not applied"
    );

    let png = dir.path().join("s.png");
    let sample = |extra: &[&str]| -> Out {
        let mut args = vec![
            "sample",
            "--checkpoint",
            s(&run),
            "--n",
            "2",
            "--out",
            s(&png),
            "--device",
            "cpu",
        ];
        args.extend(extra);
        pixelrnn(&args).expect_ok()
    };
    assert!(
        sample(&[]).stdout.contains(", bf16)"),
        "sample defaults to bf16"
    );
    assert!(sample(&["--precision", "tf32"]).stdout.contains(", tf32)"));
}

/// A checkpoint written before the key existed (its training config has no `precision`)
/// reads as fp32 in eval and on resume.
#[test]
fn a_checkpoint_without_the_key_reads_as_fp32() {
    let (_dir, _data, run, _) = trained("bf16");
    let path = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let mut info = metadata(&run);
    let mut train: Value = serde_json::from_str(&info["train_config"]).unwrap();
    train.as_object_mut().unwrap().remove("precision");
    info.insert("train_config".into(), train.to_string());
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let out_bytes = safetensors::serialize(st.tensors(), Some(info)).unwrap();
    std::fs::write(&path, out_bytes).unwrap();
    assert_eq!(recorded_precision(&run), None);

    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--json", "--device", "cpu"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["precision"], "fp32");
    let resumed = pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", "5"]).expect_ok();
    assert!(
        resumed.stderr.contains("precision fp32"),
        "{}",
        resumed.stderr
    );
    assert_eq!(recorded_precision(&run).as_deref(), Some("fp32"));
}

#[test]
fn a_bad_precision_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "grey.npy", (40, 8, 8, 1), 3);
    let run = dir.path().join("run");
    assert_clean_error(&train(&data, &run, 2, &["--precision", "fp16"]), &["fp16"]);
    assert!(
        !run.exists(),
        "a refused command line must not create the run folder"
    );
    for cmd in ["eval", "sample"] {
        let out = pixelrnn(&[cmd, "--checkpoint", s(&run), "--precision", "half"]);
        assert_clean_error(&out, &["half"]);
    }
    let out = pixelrnn(&["bench", "--device", "cpu", "--precision", "fp64"]);
    assert_clean_error(&out, &["fp64"]);
}
