//! `--condition class` end to end through the binary: train a tiny class-conditional model on
//! the embedded MNIST, eval reports the conditional NLL, `sample --class K` and
//! `sample --classes all` (one grid row per class); and the one-line errors: `--condition
//! class` on data without labels, `--class` on an unconditional checkpoint, a class out of
//! range, a conditional checkpoint sampled without a class.
//!
//! Run with `cargo test --release --test conditional_cli`.

mod common;

use common::cli::{assert_clean_error, pixelrnn, s, sample_npy, write_npy_images, TINY};

fn train(out: &std::path::Path, data: &str, extra: &[&str]) -> common::cli::Out {
    let mut args = vec!["train", "--data", data, "--steps", "2", "--out", s(out)];
    args.extend(TINY);
    args.extend(extra);
    pixelrnn(&args)
}

#[test]
fn conditional_train_eval_sample() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(
        &run,
        "mnist",
        &["--condition", "class", "--eval-every", "2"],
    )
    .expect_ok();
    let cfg = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(
        cfg.contains("\"classes\":10") || cfg.contains("\"classes\": 10"),
        "{cfg}"
    );

    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "8", "--json"]).expect_ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["classes"], 10);
    assert!(v["test_nll_nats"].as_f64().unwrap() > 0.0);
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "8"]).expect_ok();
    assert!(out.stdout.contains("conditional NLL"), "{}", out.stdout);

    let (_, drawn) = sample_npy(
        &run,
        dir.path(),
        "k",
        &["--class", "3", "--n", "2", "--device", "cpu"],
    );
    assert_eq!(drawn.n, 2);
    let png = dir.path().join("k.png");
    let all = dir.path().join("all.png");
    pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&run),
        "--classes",
        "all",
        "--n",
        "1",
        "--out",
        s(&all),
        "--device",
        "cpu",
    ])
    .expect_ok();
    // 10 rows of 1 image: the PNG is ten times as tall as wide (images and borders).
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&all).unwrap()));
    let info = dec.read_info().unwrap().info().clone();
    assert!(
        info.height > 9 * info.width,
        "{} x {}",
        info.width,
        info.height
    );

    assert_clean_error(
        &pixelrnn(&[
            "sample",
            "--checkpoint",
            s(&run),
            "--class",
            "10",
            "--out",
            s(&png),
        ]),
        &["--class 10 is out of range", "10 classes"],
    );
    assert_clean_error(
        &pixelrnn(&["sample", "--checkpoint", s(&run), "--out", s(&png)]),
        &["class-conditional", "--class K or --classes all"],
    );
    // Data-parallel ranks and dynamic binarization carry the labels too.
    train(
        &dir.path().join("dp"),
        "mnist",
        &[
            "--condition",
            "class",
            "--workers",
            "2",
            "--binarize",
            "dynamic",
        ],
    )
    .expect_ok();
    // Resuming with another --condition is refused.
    assert_clean_error(
        &pixelrnn(&[
            "train",
            "--out",
            s(&run),
            "--resume",
            "--condition",
            "none",
            "--steps",
            "3",
        ]),
        &["--condition"],
    );
}

#[test]
fn condition_class_errors() {
    let dir = tempfile::tempdir().unwrap();
    let npy = write_npy_images(dir.path(), "x.npy", (10, 4, 4, 1), 1);
    assert_clean_error(
        &train(&dir.path().join("a"), s(&npy), &["--condition", "class"]),
        &["no class labels", "--condition class"],
    );
    let run = dir.path().join("plain");
    train(&run, s(&npy), &[]).expect_ok();
    assert_clean_error(
        &pixelrnn(&["sample", "--checkpoint", s(&run), "--class", "1"]),
        &["not class-conditional"],
    );
}

/// Gated PixelCNN with `--condition class` through the binary: it trains on the embedded
/// MNIST (the refusal is gone), eval reports the conditional NLL, and the cached and naive
/// samplers draw the same images of class 7 (the class tables after two steps are nonzero,
/// so the cached path's class maps are exercised).
#[test]
fn gated_pixelcnn_conditional_train_eval_sample() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("gated");
    train(
        &run,
        "mnist",
        &["--model", "gated-pixelcnn", "--condition", "class"],
    )
    .expect_ok();
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "8", "--json"]).expect_ok();
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["classes"], 10);
    assert!(v["test_nll_nats"].as_f64().unwrap() > 0.0);
    let draw = |method: &str| {
        let args = [
            "--class", "7", "--n", "2", "--method", method, "--device", "cpu",
        ];
        sample_npy(&run, dir.path(), method, &args).1
    };
    assert_eq!(draw("cached"), draw("naive"), "cached and naive differ");
}
