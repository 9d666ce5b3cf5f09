//! `--likelihood logistic-mixture` through the binary: train, eval and sample read it from the
//! checkpoint; bad combinations end with one clear line.

mod common;

use common::cli::{assert_clean_error, pixelrnn, s, sample_npy, write_npy_images, TINY};

#[test]
fn train_eval_and_sample_a_mixture_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "rgb.npy", (24, 6, 5, 3), 9);
    let run = dir.path().join("run");
    let mut args = vec!["train", "--data", s(&data)];
    args.extend(TINY);
    args.extend([
        "--likelihood",
        "logistic-mixture",
        "--mixtures",
        "3",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--out",
        s(&run),
    ]);
    pixelrnn(&args).expect_ok();
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(
        config.contains(r#""logistic-mixture""#) && config.contains(r#""mixtures": 3"#),
        "{config}"
    );
    let eval = pixelrnn(&["eval", "--checkpoint", s(&run), "--json"]).expect_ok();
    let v: serde_json::Value = serde_json::from_str(eval.stdout.trim()).unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(
        v["test_nll_nats"], last["test_nll_nats"],
        "eval equals training's evaluation"
    );
    let (_, drawn) = sample_npy(&run, dir.path(), "s", &["--n", "2"]);
    assert_eq!(drawn.n, 2);
    // The likelihood cannot change on resume.
    assert_clean_error(
        &pixelrnn(&[
            "train",
            "--out",
            s(&run),
            "--resume",
            "--steps",
            "3",
            "--likelihood",
            "softmax",
        ]),
        &["--likelihood", "logistic-mixture"],
    );
}

#[test]
fn bad_mixture_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    // The default data is binarized MNIST: a mixture needs 256 levels.
    let mut args = vec!["train", "--likelihood", "logistic-mixture", "--steps", "1"];
    args.extend(["--out", s(&out)]);
    assert_clean_error(&pixelrnn(&args), &["logistic-mixture", "256-level"]);
    assert_clean_error(
        &pixelrnn(&[
            "train",
            "--data",
            "mnist",
            "--mixtures",
            "4",
            "--out",
            s(&out),
        ]),
        &["--mixtures", "--likelihood logistic-mixture"],
    );
    assert_clean_error(
        &pixelrnn(&[
            "train",
            "--data",
            "mnist",
            "--likelihood",
            "logistic-mixture",
            "--mixtures",
            "33",
            "--out",
            s(&out),
        ]),
        &["--mixtures", "1..=32"],
    );
}
