//! The `pixelrnn` binary given bad input: every kind of bad data file, checkpoint or flag
//! ends with one clear line on stderr and a non-zero exit (never a panic or a backtrace), and
//! nothing on disk is lost. The happy paths are tests/cli.rs.
//!
//! Models are tiny (1 layer, h = 4, head 8, batch 4, a few steps) and data files are small
//! and generated here, so the whole file runs in seconds on two cores.

mod common;

use std::path::Path;

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{
    assert_clean_error, assert_no_panic, bytes, check_clean_error, pixelrnn, pixelrnn_in, s, Out,
    TINY,
};
use common::runs::{assert_none_failed, train, trained_pixelcnn, write_images};

/// `pixelrnn eval --checkpoint <checkpoint> extra...`.
fn eval(checkpoint: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["eval", "--checkpoint", s(checkpoint)];
    args.extend(extra);
    pixelrnn(&args)
}

/// `pixelrnn train --resume --out <run> extra...`.
fn resume(run: &Path, extra: &[&str]) -> Out {
    let mut args = vec!["train", "--resume", "--out", s(run)];
    args.extend(extra);
    pixelrnn(&args)
}

/// Writes `content` to `dir/name`, trains on it (4 steps into `dir/run`) and asserts a clean
/// error that names the file.
fn assert_bad_data_file(dir: &Path, name: &str, content: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    let out = train(s(&path), &dir.join("run"), 4, &[]);
    assert_clean_error(&out, &[name]);
}

/// The bytes of an .npy file of `shape` holding `values`, in `T`'s default dtype.
fn npy<T: npyz::AutoSerialize>(shape: &[u64], values: impl IntoIterator<Item = T>) -> Vec<u8> {
    use npyz::WriterBuilder;
    let mut b = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut b)
        .begin_nd()
        .unwrap();
    w.extend(values).unwrap();
    w.finish().unwrap();
    b
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
    assert_bad_data_file(dir.path(), "trunc.npy", &b);
}

#[test]
fn data_float64_npy_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = npy(&[40, 8, 8, 1], (0..40 * 64).map(|i| (i % 256) as f64));
    assert_bad_data_file(dir.path(), "f64.npy", &b);
}

#[test]
fn data_uint8_rank2_npy_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = npy(&[40, 64], bytes(40 * 64, 7));
    assert_bad_data_file(dir.path(), "rank2.npy", &b);
}

#[test]
fn data_text_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_bad_data_file(dir.path(), "notes.txt", b"these are not images\n");
}

// ------------------------------------------------------------------------ bad checkpoints

#[test]
fn eval_missing_checkpoint_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let out = eval(&missing, &[]);
    assert_clean_error(&out, &["no-such-run"]);

    // A folder that exists but holds no checkpoint.
    let empty = dir.path().join("empty-run");
    std::fs::create_dir(&empty).unwrap();
    let out = eval(&empty, &[]);
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
        let out = eval(&file, &[]);
        assert_clean_error(&out, &[&format!("{name}.safetensors")]);
        // ... and as the checkpoint of a run folder.
        let run = t.dir.path().join(format!("{name}-run"));
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("checkpoint.safetensors"), &content).unwrap();
        let out = eval(&run, &[]);
        assert_clean_error(&out, &[&format!("{name}-run")]);
        let out = resume(&run, &["--steps", "8"]);
        assert_clean_error(&out, &[&format!("{name}-run")]);
    }
}

#[test]
fn resume_with_another_model_kind_is_a_clear_error() {
    let t = trained_pixelcnn();
    let before = std::fs::read(t.run.join("checkpoint.safetensors")).unwrap();
    let out = resume(&t.run, &["--model", "row-lstm", "--steps", "8"]);
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
    let out = resume(&t.run, &["--model", "row-lstm"]);
    assert_clean_error(&out, &["--model", "pixelcnn", "row-lstm"]);
}

#[test]
fn eval_with_another_model_kind_is_a_clear_error() {
    let t = trained_pixelcnn();
    let out = eval(&t.run, &["--model", "row-lstm"]);
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
        let out = eval(&run, &[]);
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
    let out = eval(&run, &["--limit", "many"]);
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
    let out = eval(&t.run, &["--device", "cuda"]);
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
    let out = eval(&run, &["--json"]).expect_ok();
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
    let out = eval(&t.run, &["--data", s(&rgb)]);
    assert_clean_error(&out, &["rgb.npy"]);
    let out = eval(&t.run, &["--data", "binarized-mnist"]);
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
        eval(&gone, &[]),
        resume(&gone, &[]),
        eval(&t.run, &["--dump-nll", s(&gone.join("nll.npy"))]),
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
