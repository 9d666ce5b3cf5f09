//! The `pixelrnn` binary end to end: every kind of bad input ends with one clear line on
//! stderr and a non-zero exit (never a panic or a backtrace), and the happy paths (train,
//! eval --json, eval --dump-nll, --resume, info) write and print what docs promise.
//!
//! Models are tiny (1 layer, h = 4, head 8, batch 4, a few steps) and data files are small
//! and generated here, so the whole file runs in seconds on two cores.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{
    assert_clean_error, assert_no_panic, bytes, check_clean_error, pixelrnn, pixelrnn_in, s,
    write_npy_images, Out, TINY,
};

// ---------------------------------------------------------------------------------- helpers

/// Panics with every message of `failures`, if any.
fn assert_none_failed(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Writes `n` random uint8 images of `h x w x c` to `dir/name` (NHWC .npy).
fn write_images(dir: &Path, name: &str, n: usize, h: usize, w: usize, c: usize) -> PathBuf {
    write_npy_images(dir, name, (n, h, w, c), n as u64 + c as u64)
}

/// `pixelrnn train --data DATA <TINY> --steps STEPS --out OUT <extra...>`.
fn train(data: &str, out: &Path, steps: u32, extra: &[&str]) -> Out {
    let steps = steps.to_string();
    let mut args = vec!["train", "--data", data];
    args.extend(TINY);
    args.extend(["--steps", &steps, "--out", s(out)]);
    args.extend(extra);
    pixelrnn(&args)
}

/// A temporary folder with a trained tiny PixelCNN run in `run/` (8 x 8 x 1, 200 images:
/// 180 train / 20 test), trained 4 steps.
struct Trained {
    dir: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
}

fn trained_pixelcnn() -> Trained {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 200, 8, 8, 1);
    let run = dir.path().join("run");
    train(s(&data), &run, 4, &[]).expect_ok();
    Trained { dir, data, run }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

const METRIC_KEYS: [&str; 6] = [
    "step",
    "train_nll",
    "test_nll_nats",
    "test_bits_per_dim",
    "images_per_sec",
    "seconds",
];

/// Reads metrics.jsonl, checking that every line is a JSON object with the documented keys,
/// that steps start at 0 and increase, and that bits/dim agrees with nats/image.
fn read_metrics(run: &Path, dims: usize) -> Vec<Value> {
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

fn assert_close(a: f64, b: f64, rel: f64, what: &str) {
    let scale = a.abs().max(b.abs()).max(1e-300);
    assert!(
        (a - b).abs() / scale <= rel,
        "{what}: {a} vs {b} differ by more than {rel} relative"
    );
}

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

/// The tensors of a safetensors file: name -> (dtype, shape, bytes).
fn tensors(path: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                (
                    format!("{:?}", v.dtype()),
                    v.shape().to_vec(),
                    v.data().to_vec(),
                ),
            )
        })
        .collect()
}

// ------------------------------------------------------------------------ bad data files

#[test]
fn data_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.npy");
    let out = train(s(&missing), &dir.path().join("run"), 4, &[]);
    assert_clean_error(&out, &["missing.npy"]);
}

#[test]
fn data_truncated_npy_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let full = write_images(dir.path(), "full.npy", 40, 8, 8, 1);
    let mut b = std::fs::read(&full).unwrap();
    b.truncate(b.len() - 100); // header intact, data cut
    let path = dir.path().join("trunc.npy");
    std::fs::write(&path, &b).unwrap();
    let out = train(s(&path), &dir.path().join("run"), 4, &[]);
    assert_clean_error(&out, &["trunc.npy"]);
}

#[test]
fn data_float64_npy_is_a_clear_error() {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().unwrap();
    let mut b = Vec::new();
    let mut w = npyz::WriteOptions::<f64>::new()
        .default_dtype()
        .shape(&[40, 8, 8, 1])
        .writer(&mut b)
        .begin_nd()
        .unwrap();
    w.extend((0..40 * 64).map(|i| (i % 256) as f64)).unwrap();
    w.finish().unwrap();
    let path = dir.path().join("f64.npy");
    std::fs::write(&path, &b).unwrap();
    let out = train(s(&path), &dir.path().join("run"), 4, &[]);
    assert_clean_error(&out, &["f64.npy"]);
}

#[test]
fn data_uint8_rank2_npy_is_a_clear_error() {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().unwrap();
    let mut b = Vec::new();
    let mut w = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&[40, 64])
        .writer(&mut b)
        .begin_nd()
        .unwrap();
    w.extend(bytes(40 * 64, 7)).unwrap();
    w.finish().unwrap();
    let path = dir.path().join("rank2.npy");
    std::fs::write(&path, &b).unwrap();
    let out = train(s(&path), &dir.path().join("run"), 4, &[]);
    assert_clean_error(&out, &["rank2.npy"]);
}

#[test]
fn data_text_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are not images\n").unwrap();
    let out = train(s(&path), &dir.path().join("run"), 4, &[]);
    assert_clean_error(&out, &["notes.txt"]);
}

// ------------------------------------------------------------------------ bad checkpoints

#[test]
fn eval_missing_checkpoint_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let out = pixelrnn(&["eval", "--checkpoint", s(&missing)]);
    assert_clean_error(&out, &["no-such-run"]);

    // A folder that exists but holds no checkpoint.
    let empty = dir.path().join("empty-run");
    std::fs::create_dir(&empty).unwrap();
    let out = pixelrnn(&["eval", "--checkpoint", s(&empty)]);
    assert_clean_error(&out, &["empty-run"]);
}

#[test]
fn eval_corrupt_checkpoint_is_a_clear_error() {
    let t = trained_pixelcnn();
    let good = std::fs::read(t.run.join("checkpoint.safetensors")).unwrap();
    let cases: [(&str, Vec<u8>); 3] = [
        ("random", bytes(5000, 99)),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, content) in cases {
        // As a file ...
        let file = t.dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&file, &content).unwrap();
        let out = pixelrnn(&["eval", "--checkpoint", s(&file)]);
        assert_clean_error(&out, &[&format!("{name}.safetensors")]);
        // ... and as the checkpoint of a run folder.
        let run = t.dir.path().join(format!("{name}-run"));
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("checkpoint.safetensors"), &content).unwrap();
        let out = pixelrnn(&["eval", "--checkpoint", s(&run)]);
        assert_clean_error(&out, &[&format!("{name}-run")]);
        let out = pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", "8"]);
        assert_clean_error(&out, &[&format!("{name}-run")]);
    }
}

#[test]
fn resume_with_another_model_kind_is_a_clear_error() {
    let t = trained_pixelcnn();
    let before = std::fs::read(t.run.join("checkpoint.safetensors")).unwrap();
    let out = pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(&t.run),
        "--model",
        "row-lstm",
        "--steps",
        "8",
    ]);
    assert_clean_error(&out, &["--model"]);
    let after = std::fs::read(t.run.join("checkpoint.safetensors")).unwrap();
    assert!(
        before == after,
        "a refused --resume must leave the checkpoint alone"
    );
}

/// The mismatch message should name the models as the command line spells them.
#[test]
fn resume_model_mismatch_names_the_models_as_the_cli_spells_them() {
    let t = trained_pixelcnn();
    let out = pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(&t.run),
        "--model",
        "row-lstm",
    ]);
    assert_clean_error(&out, &["--model", "pixelcnn", "row-lstm"]);
}

#[test]
fn eval_with_another_model_kind_is_a_clear_error() {
    let t = trained_pixelcnn();
    let out = pixelrnn(&["eval", "--checkpoint", s(&t.run), "--model", "row-lstm"]);
    assert_clean_error(&out, &["run", "row-lstm"]);
}

/// A checkpoint whose metadata describes another architecture than its tensors (as a
/// checkpoint of a different model would): a clear error naming the file, not a panic.
#[test]
fn eval_checkpoint_whose_tensors_do_not_fit_its_config_is_a_clear_error() {
    use std::collections::HashMap;
    let t = trained_pixelcnn();
    let bytes = std::fs::read(t.run.join("checkpoint.safetensors")).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let info: HashMap<String, String> = md.metadata().clone().expect("pixelrnn metadata");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let views = st.tensors();
    let edits: [(&str, &str, u64); 3] = [
        ("hidden5", "hidden", 5), // every shape differs
        ("layers2", "layers", 2), // tensors missing
        ("layers0", "layers", 0), // tensors left over
    ];
    for (name, key, value) in edits {
        let mut info = info.clone();
        let mut model: Value = serde_json::from_str(&info["model_config"]).unwrap();
        model[key] = value.into();
        info.insert("model_config".into(), model.to_string());
        let mut train: Value = serde_json::from_str(&info["train_config"]).unwrap();
        train["model"][key] = value.into();
        info.insert("train_config".into(), train.to_string());
        let out_bytes = safetensors::serialize(views.clone(), Some(info)).unwrap();
        let run = t.dir.path().join(name);
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("checkpoint.safetensors"), out_bytes).unwrap();
        let out = pixelrnn(&["eval", "--checkpoint", s(&run)]);
        assert_clean_error(&out, &[name]);
    }
}

// ------------------------------------------------------------------------------ bad flags

#[test]
fn non_numeric_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = pixelrnn(&["train", "--steps", "abc", "--out", s(&run)]);
    assert_clean_error(&out, &["--steps", "abc"]);
    let out = pixelrnn(&["train", "--lr", "x", "--out", s(&run)]);
    assert_clean_error(&out, &["--lr"]);
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "many"]);
    assert_clean_error(&out, &["--limit"]);
    assert!(
        !run.exists(),
        "a rejected command line must not create the run folder"
    );
}

#[test]
fn device_cuda_without_a_gpu_is_a_clear_error() {
    if pixelrnn::device::cuda_available() {
        eprintln!("skipped: this machine has a CUDA device");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let mut args = vec!["train", "--data", s(&data)];
    args.extend(&TINY[..10]);
    let run = dir.path().join("run");
    args.extend(["--steps", "2", "--out", s(&run), "--device", "cuda"]);
    assert_clean_error(&pixelrnn(&args), &["cuda"]);

    let t = trained_pixelcnn();
    let out = pixelrnn(&["eval", "--checkpoint", s(&t.run), "--device", "cuda"]);
    assert_clean_error(&out, &["cuda"]);
}

#[test]
fn training_into_a_folder_with_a_checkpoint_needs_resume() {
    let t = trained_pixelcnn();
    let ck = t.run.join("checkpoint.safetensors");
    let before = std::fs::read(&ck).unwrap();
    let metrics_before = std::fs::read(t.run.join("metrics.jsonl")).unwrap();
    let out = train(s(&t.data), &t.run, 4, &[]);
    assert_clean_error(&out, &["--resume"]);
    assert!(
        std::fs::read(&ck).unwrap() == before,
        "the old checkpoint must be untouched"
    );
    assert!(
        std::fs::read(t.run.join("metrics.jsonl")).unwrap() == metrics_before,
        "the old metrics must be untouched"
    );
}

/// Without `--out`, `train` names its run folder `runs/<model>-<UTC date and time>` (sortable,
/// e.g. `runs/pixelcnn-2026-12-01T18-12-34`) at the time it started, and a second run in the
/// same second gets its own folder.
#[test]
fn default_run_folder_is_named_by_utc_date_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 20, 4, 4, 1);
    let before = std::time::SystemTime::now();
    let mut args = vec!["train", "--data", s(&data)];
    args.extend(TINY);
    args.extend(["--steps", "1"]);
    pixelrnn_in(dir.path(), &args).expect_ok();
    pixelrnn_in(dir.path(), &args).expect_ok();
    let after = std::time::SystemTime::now();
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let secs =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let allowed: Vec<String> = (secs(before)..=secs(after))
        .map(|t| format!("pixelcnn-{}", pixelrnn::run_dir::utc_timestamp(t)))
        .collect();
    let first = &names[0];
    assert!(allowed.contains(first), "{first} not in {allowed:?}");
    // `pixelcnn-YYYY-MM-DDTHH-MM-SS`: digits and separators where `date -u` puts them.
    let stamp = first.strip_prefix("pixelcnn-").unwrap().as_bytes();
    assert_eq!(stamp.len(), 19, "{first}");
    for (i, &b) in stamp.iter().enumerate() {
        let want = match i {
            4 | 7 | 13 | 16 => Some(b'-'),
            10 => Some(b'T'),
            _ => None,
        };
        match want {
            Some(w) => assert_eq!(b, w, "{first}"),
            None => assert!(b.is_ascii_digit(), "{first}"),
        }
    }
    // The second run: the next second's name, or the same one with `-2`.
    let second = &names[1];
    assert!(
        allowed.contains(second) || *second == format!("{first}-2"),
        "{second}"
    );
    assert!(dir
        .path()
        .join("runs")
        .join(second)
        .join("checkpoint.safetensors")
        .exists());
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

/// A loss that blows up stops training with an error (progress lines may precede it) and
/// leaves the last good checkpoint, which still evaluates.
#[test]
fn non_finite_loss_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let run = dir.path().join("run");
    let out = train(s(&data), &run, 4, &["--lr", "1e30"]);
    assert!(out.code.is_some_and(|c| c != 0), "{}", out.stderr);
    assert_no_panic(&out);
    let last = out.stderr.lines().last().unwrap_or("");
    assert!(last.contains("non-finite"), "last line: {last}");
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--json"]).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["step"], 0, "the last good checkpoint is the step-0 one");
}

/// Values that parse but make no sense are bad flags too: a negative or NaN learning rate
/// (gradient ascent), a clip that is not positive (a negative one flips the gradient, zero
/// freezes the model) or NaN (silently ignored).
#[test]
fn nonsense_lr_and_clip_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let mut failures = Vec::new();
    for (i, (flag, value)) in [
        ("--lr", "-1"),
        ("--lr", "nan"),
        ("--clip", "-1"),
        ("--clip", "0"),
        ("--clip", "nan"),
    ]
    .into_iter()
    .enumerate()
    {
        let arg = format!("{flag}={value}");
        let out = train(s(&data), &dir.path().join(format!("run{i}")), 2, &[&arg]);
        failures.extend(check_clean_error(&out, &[flag]).err());
    }
    assert_none_failed(failures);
}

/// Data of another shape than the checkpoint's model: the error names the data.
#[test]
fn eval_on_data_of_another_shape_is_a_clear_error() {
    let t = trained_pixelcnn();
    let rgb = write_images(t.dir.path(), "rgb.npy", 40, 8, 8, 3);
    let out = pixelrnn(&["eval", "--checkpoint", s(&t.run), "--data", s(&rgb)]);
    assert_clean_error(&out, &["rgb.npy"]);
    let out = pixelrnn(&[
        "eval",
        "--checkpoint",
        s(&t.run),
        "--data",
        "binarized-mnist",
    ]);
    assert_clean_error(&out, &["binarized-mnist"]);
}

/// `--out` naming an existing file rather than a folder.
#[test]
fn out_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let file = dir.path().join("taken.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let out = train(s(&data), &file, 2, &[]);
    assert_clean_error(&out, &["taken.txt"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

/// Io errors ("No such file or directory (os error 2)") should be said once, not twice.
#[test]
fn error_lines_do_not_repeat_their_cause() {
    let t = trained_pixelcnn();
    let gone = t.dir.path().join("gone");
    let cases = [
        pixelrnn(&["eval", "--checkpoint", s(&gone)]),
        pixelrnn(&["train", "--resume", "--out", s(&gone)]),
        pixelrnn(&[
            "eval",
            "--checkpoint",
            s(&t.run),
            "--dump-nll",
            s(&gone.join("nll.npy")),
        ]),
    ];
    let mut failures = Vec::new();
    for out in cases {
        assert!(!out.ok(), "`{}` should fail", out.cmd);
        assert_no_panic(&out);
        let line = out.stderr.trim_end().lines().last().unwrap_or("");
        let parts: Vec<&str> = line.split(": ").collect();
        if parts.windows(2).any(|w| w[0] == w[1]) {
            failures.push(format!("`{}` repeats itself: {line}", out.cmd));
        }
    }
    assert_none_failed(failures);
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

// ------------------------------------------------------------------- devices and bench

/// `--device cuda` on a machine without a GPU: one clear line for bench and sample too.
#[test]
fn bench_and_sample_on_cuda_without_a_gpu_are_clear_errors() {
    if pixelrnn::device::cuda_available() {
        eprintln!("skipped: this machine has a CUDA device");
        return;
    }
    let out = pixelrnn(&["bench", "--device", "cuda", "--config", "tiny"]);
    assert_clean_error(&out, &["--device cuda"]);
    let t = trained_pixelcnn();
    let png = t.dir.path().join("s.png");
    let out = pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&t.run),
        "--out",
        s(&png),
        "--device",
        "cuda",
    ]);
    assert_clean_error(&out, &["--device cuda"]);
}

/// `--device auto` says on stderr which device it chose (once the inputs are checked).
#[test]
fn device_auto_names_its_choice() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let run = dir.path().join("run");
    let mut args = vec!["train", "--data", s(&data)];
    args.extend(&TINY[..10]);
    args.extend(["--steps", "1", "--out", s(&run), "--device", "auto"]);
    let out = pixelrnn(&args).expect_ok();
    let want = if pixelrnn::device::cuda_available() && pixelrnn::kernels::KERNELS_COMPILED {
        "device: auto chose cuda"
    } else {
        "device: auto chose the cpu"
    };
    assert!(out.stderr.contains(want), "{}", out.stderr);
}

/// The emulator runs the whole training loop through the CUDA backend's kernels: a tiny
/// PixelCNN trains 2 steps and evaluates, and the numbers match the CPU run of the same model.
#[test]
fn device_emulator_trains_a_tiny_model() {
    if !pixelrnn::kernels::KERNELS_COMPILED {
        eprintln!("skipped: this build has no kernels");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let mut metrics = Vec::new();
    for device in ["emulator", "cpu"] {
        let run = dir.path().join(device);
        let args = [
            "train",
            "--data",
            s(&data),
            "--layers",
            "1",
            "--hidden",
            "4",
            "--head",
            "8",
            "--batch",
            "2",
            "--eval-images",
            "4",
            "--steps",
            "2",
            "--out",
            s(&run),
            "--device",
            device,
            "--threads",
            "2",
        ];
        let out = pixelrnn(&args).expect_ok();
        assert!(
            out.stderr.contains("emulator") || device == "cpu",
            "{}",
            out.stderr
        );
        metrics.push(read_metrics(&run, 64));
    }
    let (emu, cpu) = (&metrics[0], &metrics[1]);
    assert_eq!(emu.len(), cpu.len());
    for (a, b) in emu.iter().zip(cpu) {
        assert_close(
            a["test_nll_nats"].as_f64().unwrap(),
            b["test_nll_nats"].as_f64().unwrap(),
            1e-4,
            "emulator vs cpu test NLL",
        );
    }
}

/// `pixelrnn bench --device cpu` end to end on the tiny size: every row checked and timed,
/// ceilings measured, the JSON written with the documented keys.
#[test]
fn bench_on_the_cpu_times_every_row_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = pixelrnn(&[
        "bench",
        "--device",
        "cpu",
        "--config",
        "tiny",
        "--iters",
        "2",
        "--step-iters",
        "1",
        "--warmup",
        "1",
        "--json",
        s(&json),
    ])
    .expect_ok();
    assert_no_panic(&out);
    let v = read_json(&json);
    assert!(
        v["ceilings"]["copy_gb_per_s"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    assert!(
        v["ceilings"]["fp32_gflop_per_s"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    let rows = v["rows"].as_array().unwrap();
    let ops = rows.iter().filter(|r| r["kind"] == "op").count();
    let steps: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "step").collect();
    assert!(ops >= 19, "{ops} op rows");
    // pixelcnn + (row-lstm, diag-bilstm) x every recurrence variant.
    assert!(steps.len() >= 5, "{} step rows", steps.len());
    for r in rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    for r in &steps {
        assert!(r["gflop_per_s"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(
        rows.iter().any(|r| r["speedup_vs_unfused"].is_number()),
        "recurrent rows carry their speed-up over unfused"
    );
    assert!(out.stdout.contains("GFLOP/s"), "{}", out.stdout);
}

/// Bad bench flags: one clear line each.
#[test]
fn bench_bad_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["bench", "--device", "cpu", "--config", "huge"],
            "--config huge",
        ),
        (&["bench", "--device", "cpu", "--op", "nope"], "--op nope"),
        (&["bench", "--device", "cpu", "--iters", "0"], "--iters"),
        (
            &["bench", "--device", "cpu", "--model", "multiscale"],
            "multiscale",
        ),
    ];
    let mut failures = Vec::new();
    for (args, mention) in cases {
        failures.extend(check_clean_error(&pixelrnn_in(dir.path(), args), &[mention]).err());
    }
    let gone = dir.path().join("no/such/dir/b.json");
    let out = pixelrnn(&["bench", "--device", "cpu", "--json", s(&gone)]);
    failures.extend(check_clean_error(&out, &["--json"]).err());
    assert_none_failed(failures);
}

/// The emulator runs the bench path on a few small ops (results checked against the CPU) and
/// warns that its times mean nothing.
#[test]
fn bench_on_the_emulator_checks_a_few_ops() {
    if !pixelrnn::kernels::KERNELS_COMPILED {
        eprintln!("skipped: this build has no kernels");
        return;
    }
    let out = pixelrnn(&[
        "bench",
        "--device",
        "emulator",
        "--part",
        "ops",
        "--op",
        "relu,add,softmax",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--threads",
        "2",
    ])
    .expect_ok();
    assert!(out.stderr.contains("times mean nothing"), "{}", out.stderr);
    assert!(out.stdout.contains("EMULATED"), "{}", out.stdout);
    assert!(out.stdout.contains("relu fwd"), "{}", out.stdout);
}

/// `info --kernels-md`: one table row per compiled kernel with its ptxas registers.
#[test]
fn info_kernels_md_lists_every_kernel() {
    if !pixelrnn::kernels::KERNELS_COMPILED {
        let out = pixelrnn(&["info", "--kernels-md"]);
        assert_clean_error(&out, &["no compiled kernels"]);
        return;
    }
    let out = pixelrnn(&["info", "--kernels-md"]).expect_ok();
    for m in pixelrnn::kernels::modules() {
        for e in m.entry_points {
            let row = out
                .stdout
                .lines()
                .find(|l| l.contains(&format!("`{e}`")))
                .unwrap_or_else(|| panic!("{e} missing:\n{}", out.stdout));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[1], m.name, "{row}");
            if m.resource_report.is_some() {
                assert!(cells[4].parse::<u32>().is_ok(), "registers of {e}: {row}");
                assert_eq!(cells[5], "0/0", "{e} spills: {row}");
            }
        }
    }
    assert!(out.stdout.contains("`peak_fma_v1`"), "{}", out.stdout);
}

/// `train --workers 2` (data-parallel ranks in this process) reaches the same test NLL as one
/// worker, and more workers than images per batch is a clear error.
#[test]
fn train_with_two_workers_matches_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let mut finals = Vec::new();
    for workers in ["1", "2"] {
        let run = dir.path().join(format!("w{workers}"));
        train(s(&data), &run, 3, &["--workers", workers]).expect_ok();
        let m = read_metrics(&run, 64);
        finals.push(m.last().unwrap()["test_nll_nats"].as_f64().unwrap());
    }
    assert_close(finals[0], finals[1], 1e-5, "1 vs 2 workers");
    let run = dir.path().join("too-many");
    let out = train(s(&data), &run, 1, &["--workers", "999"]);
    assert_clean_error(&out, &["--workers 999"]);
}

/// `pixelrnn info | head -n 1`: the closed pipe ends the process quietly, without a panic.
#[test]
fn closed_stdout_pipe_is_not_a_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pixelrnn"))
        .arg("info")
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pixelrnn binary starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("pixelrnn"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "exit code of a panic");
}

/// `--gpus N` needs CUDA devices: here, a clear one-line error; with `--workers`, a conflict.
#[test]
fn train_on_gpus_without_a_gpu_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    if pixelrnn::device::cuda_available() {
        eprintln!("skipped: this machine has a CUDA device");
        return;
    }
    let out = train(s(&data), &dir.path().join("g"), 1, &["--gpus", "1"]);
    assert_clean_error(&out, &["--gpus 1", "--device cpu"]);
    let run = dir.path().join("g2");
    let out = pixelrnn(&[
        "train",
        "--data",
        s(&data),
        "--steps",
        "1",
        "--gpus",
        "1",
        "--out",
        s(&run),
    ]);
    assert_clean_error(&out, &["--gpus 1", "no CUDA device"]);
    let out = train(
        s(&data),
        &dir.path().join("w"),
        1,
        &["--gpus", "2", "--workers", "2"],
    );
    assert_clean_error(&out, &["--workers"]);
    // The multi-process form: a clear error without a GPU, and its flags come together.
    let init = dir.path().join("nccl-id");
    let run = dir.path().join("r");
    let out = pixelrnn(&[
        "train",
        "--data",
        s(&data),
        "--steps",
        "1",
        "--out",
        s(&run),
        "--rank",
        "0",
        "--world-size",
        "2",
        "--init",
        s(&init),
    ]);
    assert_clean_error(&out, &["--rank 0", "no CUDA device"]);
    let out = pixelrnn(&["train", "--data", s(&data), "--rank", "0"]);
    assert_clean_error(&out, &["--world-size"]);
}

/// `pixelrnn plot`: one run redraws its curves, several are compared, bits per dim on request;
/// a folder without metrics and an unwritable --out are clean errors.
#[test]
fn plot_draws_runs_and_refuses_bad_input() {
    let t = trained_pixelcnn();
    let other = t.dir.path().join("other");
    train(s(&t.data), &other, 2, &["--lr", "3e-3"]).expect_ok();
    let one = t.dir.path().join("one.svg");
    let out = pixelrnn(&["plot", s(&t.run), "--out", s(&one)]);
    out.expect_ok();
    let svg = std::fs::read_to_string(&one).unwrap();
    assert!(
        svg.contains("pixelcnn, 8x8x1") && svg.contains("train"),
        "{svg:.300}"
    );
    let both = t.dir.path().join("both.svg");
    pixelrnn(&["plot", s(&t.run), s(&other), "--bits", "--out", s(&both)]).expect_ok();
    let svg = std::fs::read_to_string(&both).unwrap();
    assert!(
        svg.contains("bits / dim") && svg.contains("other ("),
        "{svg:.300}"
    );
    // One marker per evaluation of each run: 2 lines each (steps 0 and the last).
    assert_eq!(svg.matches("<circle").count(), 4);
    assert_clean_error(&pixelrnn(&["plot", s(t.dir.path())]), &["metrics.jsonl"]);
    assert_clean_error(
        &pixelrnn(&["plot", s(&t.run), "--out", "/no/such/folder/x.svg"]),
        &["--out", "does not exist"],
    );
}

/// `pixelrnn profile` at the tiny size: one table per step on stdout, the JSON complete with
/// the step's kernels, its launches summing to the step's, 3 host synchronisations, and the
/// FLOPs of `bench::step_flops`; a bad size or flag is one clear line.
#[test]
fn profile_reports_a_counted_step() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("profile.json");
    let out = pixelrnn(&[
        "profile",
        "--model",
        "pixelcnn",
        "--config",
        "tiny",
        "--json",
        json.to_str().unwrap(),
    ])
    .expect_ok();
    assert!(
        out.stdout.contains("pixelcnn train step, tiny")
            && out.stdout.contains("masked_conv2d_fwd_v3")
            && out.stdout.contains("host syncs"),
        "{}",
        out.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["complete"], true);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    let st = &steps[0];
    assert_eq!(st["host_syncs"], 2);
    let kernels = st["kernels"].as_array().unwrap();
    let launches: u64 = kernels
        .iter()
        .map(|k| k["launches"].as_u64().unwrap())
        .sum();
    assert_eq!(launches, st["launches"].as_u64().unwrap());
    let cfg = pixelrnn::bench::config("tiny").unwrap();
    let (_, flops) =
        pixelrnn::bench::step_flops(&cfg.model(pixelrnn::models::ModelKind::PixelCnn), cfg.batch)
            .unwrap();
    assert_eq!(st["flops"].as_f64().unwrap(), flops);
    assert!(
        st["nll_per_image"].as_f64().unwrap() > 0.0,
        "every block ran"
    );

    assert_clean_error(
        &pixelrnn(&["profile", "--config", "huge"]),
        &["--config huge"],
    );
    assert_clean_error(
        &pixelrnn(&["profile", "--model", "multiscale"]),
        &["--model multiscale"],
    );
    assert_clean_error(
        &pixelrnn(&["profile", "--launch-us", "-1"]),
        &["--launch-us"],
    );
}
