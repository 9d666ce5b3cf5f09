//! The `pixelrnn` binary end to end, the happy paths: train, eval --json, eval --dump-nll,
//! --resume and info write and print what the docs promise. Bad input is
//! tests/cli_errors.rs, the devices and bench tests/cli_devices.rs.
//!
//! Models are tiny (1 layer, h = 4, head 8, batch 4, a few steps) and data files are small
//! and generated here, so the whole file runs in seconds on two cores.

mod common;

use std::path::Path;

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{assert_clean_error, assert_no_panic, pixelrnn, pixelrnn_in, s, TINY};
use common::runs::{
    assert_close, read_json, read_metrics, tensors, train, trained_pixelcnn, write_images,
};

// ---------------------------------------------------------------------------------- helpers

/// Checks the run folder of a finished run of `steps` steps on `h x w x c` data.
fn check_run_folder(run: &Path, steps: u64, (h, w, c): (usize, usize, usize)) -> Vec<Value> {
    for f in ["config.json", "metrics.jsonl", "checkpoint.safetensors"] {
        assert!(run.join(f).is_file(), "the run folder lacks {f}");
    }
    let cfg = read_json(&run.join("config.json"));
    assert_eq!(cfg["model"]["kind"], "pixelcnn", "{cfg}");
    assert_eq!(cfg["model"]["height"], h, "{cfg}");
    assert_eq!(cfg["model"]["width"], w, "{cfg}");
    assert_eq!(cfg["model"]["channels"], c, "{cfg}");
    assert_eq!(cfg["steps"], steps, "{cfg}");
    let metrics = read_metrics(run, h * w * c);
    assert_eq!(
        metrics.last().unwrap()["step"],
        steps,
        "the last metrics line is the last step"
    );
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("the checkpoint is valid safetensors");
    assert!(!st.is_empty());
    // loss.svg: one marker per test point (every line) and per train point (all but step 0).
    let svg = std::fs::read_to_string(run.join("loss.svg")).expect("the run folder has loss.svg");
    assert!(svg.starts_with("<svg"), "loss.svg is not an SVG");
    assert_eq!(
        svg.matches("<circle").count(),
        2 * metrics.len() - 1,
        "loss.svg: one marker per train and test point"
    );
    metrics
}

// -------------------------------------------------------------------------- happy paths

#[test]
fn train_on_generated_grey_npy_writes_a_run_folder() {
    let t = trained_pixelcnn();
    let metrics = check_run_folder(&t.run, 4, (8, 8, 1));
    assert_eq!(metrics.len(), 2, "step 0 and step 4 (eval every 250)");
}

#[test]
fn train_on_generated_rgb_npy_writes_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "rgb.npy", 40, 8, 8, 3);
    let run = dir.path().join("run");
    train(s(&data), &run, 4, &["--eval-every", "2"]).expect_ok();
    let metrics = check_run_folder(&run, 4, (8, 8, 3));
    let steps: Vec<u64> = metrics
        .iter()
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [0, 2, 4]);
    // Evaluated on all 4 test images (40 / 10), so eval without --limit agrees.
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--json"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["images"], 4);
    assert_close(
        v["test_nll_nats"].as_f64().unwrap(),
        metrics[2]["test_nll_nats"].as_f64().unwrap(),
        1e-4,
        "eval vs last metrics line",
    );
}

#[test]
fn train_on_embedded_binarized_mnist_writes_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train("binarized-mnist", &run, 4, &[]).expect_ok();
    let metrics = check_run_folder(&run, 4, (28, 28, 1));
    let cfg = read_json(&run.join("config.json"));
    assert_eq!(cfg["model"]["binary"], true, "{cfg}");
    // Binary data: at most ln 2 nats per dimension for any sane model near initialisation.
    let bits = metrics[0]["test_bits_per_dim"].as_f64().unwrap();
    assert!(bits > 0.0 && bits < 2.0, "bits/dim {bits}");
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--json", "--limit", "16"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_close(
        v["test_nll_nats"].as_f64().unwrap(),
        metrics.last().unwrap()["test_nll_nats"].as_f64().unwrap(),
        1e-4,
        "eval vs last metrics line",
    );
}

#[test]
fn eval_json_matches_the_last_metrics_line() {
    let t = trained_pixelcnn();
    let metrics = read_metrics(&t.run, 64);
    let last = metrics.last().unwrap();
    // Same images as training's evaluation (--eval-images 16), with and without --data.
    for extra in [vec![], vec!["--data", s(&t.data)]] {
        let mut args = vec!["eval", "--checkpoint", s(&t.run), "--json", "--limit", "16"];
        args.extend(extra);
        let out = pixelrnn(&args).expect_ok();
        let text = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
        assert_eq!(text.lines().count(), 1, "one JSON object: {}", out.stdout);
        let v: Value = serde_json::from_str(text).expect("stdout is JSON");
        assert!(v.is_object(), "{v}");
        let nats = v["test_nll_nats"].as_f64().expect("test_nll_nats");
        let bits = v["test_bits_per_dim"].as_f64().expect("test_bits_per_dim");
        assert_close(
            bits,
            nats / (64.0 * std::f64::consts::LN_2),
            1e-9,
            "bits vs nats",
        );
        assert_close(nats, last["test_nll_nats"].as_f64().unwrap(), 1e-4, "nats");
        assert_close(
            bits,
            last["test_bits_per_dim"].as_f64().unwrap(),
            1e-4,
            "bits",
        );
        assert_eq!(v["step"], 4, "{v}");
        assert_eq!(v["images"], 16, "{v}");
        for k in ["images_per_sec", "seconds"] {
            assert!(v[k].as_f64().is_some(), "eval --json lacks {k}: {v}");
        }
    }
    // Without --limit it scores all 20 test images: a different (valid) number.
    let out = pixelrnn(&["eval", "--checkpoint", s(&t.run), "--json"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["images"], 20, "{v}");
}

#[test]
fn eval_dump_nll_sums_to_the_reported_nll() {
    let t = trained_pixelcnn();
    let rgb = write_images(t.dir.path(), "rgb.npy", 40, 8, 8, 3);
    let rgb_run = t.dir.path().join("rgb-run");
    train(s(&rgb), &rgb_run, 2, &[]).expect_ok();
    for (run, c, limit, n) in [(&t.run, 1u64, "16", 16u64), (&rgb_run, 3, "100", 4)] {
        let dump = t.dir.path().join(format!("nll-{c}.npy"));
        let out = pixelrnn(&[
            "eval",
            "--checkpoint",
            s(run),
            "--json",
            "--limit",
            limit,
            "--dump-nll",
            s(&dump),
        ])
        .expect_ok();
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        let nats = v["test_nll_nats"].as_f64().unwrap();
        let file = std::fs::read(&dump).expect("the dump exists");
        let npy = npyz::NpyFile::new(&file[..]).expect("the dump is a .npy");
        assert_eq!(npy.header().dtype().descr(), "'<f4'", "float32");
        assert_eq!(npy.shape(), [n, 8, 8, c], "N x H x W x C");
        let values: Vec<f32> = npy.into_vec().unwrap();
        assert!(
            values.iter().all(|x| x.is_finite() && *x >= 0.0),
            "a discrete NLL is finite and non-negative"
        );
        let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
        assert_close(mean, nats, 1e-3, "dump sum / N vs test_nll_nats");
    }
}

/// 8 steps straight == 4 steps, then --resume to 8: the same weights, bit for bit, and the
/// same metrics (exactly: the same floats are computed in the same order).
#[test]
fn resume_continues_exactly() {
    check_resume_exact(&[]);
}

#[test]
fn resume_continues_exactly_row_lstm() {
    check_resume_exact(&["--model", "row-lstm", "--recurrence", "unfused"]);
}

#[test]
fn resume_continues_exactly_diag_bilstm() {
    check_resume_exact(&["--model", "diag-bilstm"]);
}

/// 8 steps straight equal 4 steps, then `--resume --steps 8`: bitwise, weights and metrics.
fn check_resume_exact(model: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let flags: Vec<&str> = ["--eval-every", "4"].iter().chain(model).copied().collect();
    train(s(&data), &a, 8, &flags).expect_ok();
    train(s(&data), &b, 4, &flags).expect_ok();
    assert_eq!(read_metrics(&b, 64).len(), 2);
    pixelrnn(&["train", "--resume", "--out", s(&b), "--steps", "8"]).expect_ok();

    let (ta, tb) = (
        tensors(&a.join("checkpoint.safetensors")),
        tensors(&b.join("checkpoint.safetensors")),
    );
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "the same tensor names"
    );
    let weights = ta.keys().filter(|n| !n.starts_with("optim.")).count();
    assert!(weights > 0);
    for (name, x) in &ta {
        let y = &tb[name];
        assert_eq!((&x.0, &x.1), (&y.0, &y.1), "{name}: dtype and shape");
        assert!(x.2 == y.2, "{name}: the resumed run's tensor differs");
    }

    let (ma, mb) = (read_metrics(&a, 64), read_metrics(&b, 64));
    let steps = |m: &[Value]| {
        m.iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(&ma), [0, 4, 8]);
    assert_eq!(steps(&mb), [0, 4, 8]);
    for (x, y) in ma.iter().zip(&mb) {
        for k in ["step", "train_nll", "test_nll_nats", "test_bits_per_dim"] {
            assert_eq!(
                x[k], y[k],
                "{k} differs between the straight and resumed runs"
            );
        }
    }
}

#[test]
fn info_mentions_kernels() {
    let out = pixelrnn(&["info"]).expect_ok();
    assert!(out.stdout.contains("kernels"), "{}", out.stdout);
    assert_no_panic(&out);
    // With kernels compiled, the versions a run uses unless told otherwise.
    if pixelrnn::kernels::KERNELS_COMPILED {
        let want = format!(
            "default kernel versions: {} (",
            pixelrnn::backend::cuda::Variants::default()
        );
        assert!(out.stdout.contains(&want), "{}", out.stdout);
    }
}

/// A run folder names its data so that eval and --resume work from any working directory.
#[test]
fn run_folder_works_from_another_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    write_images(&work, "grey.npy", 40, 8, 8, 1);
    let mut args = vec!["train", "--data", "grey.npy"];
    args.extend(TINY);
    args.extend(["--steps", "2", "--out", "run"]);
    pixelrnn_in(&work, &args).expect_ok();
    let run = work.join("run");
    pixelrnn_in(dir.path(), &["eval", "--checkpoint", s(&run)]).expect_ok();
    pixelrnn_in(
        dir.path(),
        &["train", "--resume", "--out", s(&run), "--steps", "4"],
    )
    .expect_ok();
}

/// `--model multiscale` trains through the binary (both stages, one checkpoint), reports both
/// parts in metrics.jsonl and `eval --json`, samples the two scales, and resumes.
#[test]
fn multiscale_trains_evaluates_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let run = dir.path().join("run");
    let ms = [
        "--model",
        "multiscale",
        "--base",
        "row-lstm",
        "--scale",
        "4",
        "--cond-features",
        "3",
    ];
    train(s(&data), &run, 2, &ms).expect_ok();
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    let (a, b) = (
        last["stage1_nll_nats"].as_f64().unwrap(),
        last["stage2_nll_nats"].as_f64().unwrap(),
    );
    let total = last["test_nll_nats"].as_f64().unwrap();
    assert!((a + b - total).abs() < 1e-6 * total, "{a} + {b} != {total}");
    assert!(run.join("samples.png").exists());
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--json"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["model"], "multiscale");
    let (a, b) = (
        v["stage1_nll_nats"].as_f64().unwrap(),
        v["stage2_nll_nats"].as_f64().unwrap(),
    );
    assert!((a + b - v["test_nll_nats"].as_f64().unwrap()).abs() < 1e-3);
    let png = dir.path().join("s.png");
    let npy = dir.path().join("s.npy");
    pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&run),
        "--n",
        "2",
        "--out",
        s(&png),
        "--npy",
        s(&npy),
    ])
    .expect_ok();
    assert!(png.exists() && npy.exists());
    // Stage 2 alone, resumed to a later step; other stages' flags stay checked.
    let run2 = dir.path().join("run2");
    train(s(&data), &run2, 2, &[&ms[..], &["--stage", "2"]].concat()).expect_ok();
    let out = train(s(&data), &run2, 3, &["--resume", "--stage", "1"]);
    assert_clean_error(&out, &["--stage"]);
    train(s(&data), &run2, 3, &["--resume"]).expect_ok();
    let out = train(
        s(&data),
        &dir.path().join("r4"),
        2,
        &[
            "--model",
            "multiscale",
            "--base",
            "pixelcnn",
            "--scale",
            "3",
        ],
    );
    assert_clean_error(&out, &["--scale 3"]);
}

/// `--model multiscale` alone takes the defaults `--help` states: a Row LSTM base, stage 1 on
/// the image at half its side, both stages trained together; an image with no half side is a
/// clear error naming `--scale`.
#[test]
fn multiscale_alone_takes_its_stated_defaults() {
    let help = pixelrnn(&["train", "--help"]).expect_ok().stdout;
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for stated in [
        "multiscale alone is a Row LSTM base",
        "[default: row-lstm]",
        "[default: half the image side, 14 for MNIST]",
        "[default: both, one loss = the sum]",
    ] {
        assert!(
            flat.contains(stated),
            "train --help lacks {stated:?}:\n{help}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let run = dir.path().join("run");
    train(s(&data), &run, 1, &["--model", "multiscale"]).expect_ok();
    let cfg = read_json(&run.join("config.json"));
    assert_eq!(cfg["model"]["kind"], "multiscale");
    assert_eq!(cfg["model"]["multiscale"]["base"], "row-lstm");
    assert_eq!(cfg["model"]["multiscale"]["scale"], 4);
    assert_eq!(cfg["model"]["multiscale"]["cond_features"], 4, "F = h");
    assert!(cfg.get("stage").is_none(), "both stages: {cfg}");
    let lines = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let last: Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert!(last["stage1_nll_nats"].as_f64().unwrap() > 0.0);
    assert!(last["stage2_nll_nats"].as_f64().unwrap() > 0.0);
    let odd = write_images(dir.path(), "odd.npy", 40, 7, 7, 1);
    let out = train(
        s(&odd),
        &dir.path().join("r-odd"),
        1,
        &["--model", "multiscale"],
    );
    assert_clean_error(&out, &["--scale", "7x7"]);
}
