//! Reliability of the binary (issue 19, items 3, 5, 9, 10, 11): one writer per run folder, no
//! temporary file left by a failed write, flags refused with a message that names them,
//! devices and pipes refused as inputs, a corrupt .npz refused, and a cosine run that cannot be
//! silently extended.
//!
//! Models are tiny (1 layer, h = 4, head 8, batch 4) on the embedded binarized MNIST.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assert_clean_error, assert_no_panic, check_clean_error, pixelrnn, s, Out, TINY};

/// `pixelrnn train <TINY> --steps STEPS --out OUT <extra...>`.
fn train_args<'a>(out: &'a Path, steps: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train"];
    args.extend(TINY);
    args.extend(["--steps", steps, "--out", s(out)]);
    args.extend(extra);
    args
}

fn train(out: &Path, steps: u32, extra: &[&str]) -> Out {
    let steps = steps.to_string();
    pixelrnn(&train_args(out, &steps, extra))
}

/// Starts `pixelrnn args...` in the background.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pixelrnn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pixelrnn binary starts")
}

/// Waits until `child` holds the lock of `run` (its pid is in `run/.lock`) and the run folder
/// has a checkpoint; panics if the child ends first or after two minutes.
fn wait_for_writer(child: &mut Child, run: &Path) {
    let want = format!("pid {}", child.id());
    let t0 = Instant::now();
    loop {
        let locked = std::fs::read_to_string(run.join(".lock")).is_ok_and(|t| t.trim() == want);
        if locked && run.join("checkpoint.safetensors").is_file() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the first writer ended ({status}) before it was seen holding the lock");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no lock after 2 min"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child`; panics with its stderr unless it exited 0.
fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metrics steps of a run folder.
fn metric_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// The files of `dir` whose names end in `.tmp`.
fn tmp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

// ------------------------------------------------------------ item 10: one writer per folder

/// While `train` writes a run folder, a second fresh run and a `--resume` into it are refused
/// with one line naming the folder and the holder's pid, and the first run finishes untouched
/// (its checkpoint loads, its metrics are complete); the same for two resumes.
#[test]
fn a_second_writer_of_a_run_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut first = spawn(&train_args(&run, "3000", &["--eval-every", "100"]));
    wait_for_writer(&mut first, &run);
    let holder = format!("pid {}", first.id());
    let refused = [
        train(&run, 3000, &[]),
        pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", "4000"]),
    ];
    let still_running = first.try_wait().unwrap().is_none();
    for out in &refused {
        assert_clean_error(out, &[s(&run), "in use", &holder]);
    }
    assert!(
        still_running,
        "the first run ended before the second writers were refused: the test proves nothing"
    );
    finish(first, "the first run");
    let steps = metric_steps(&run);
    assert_eq!(steps.first(), Some(&0));
    assert_eq!(steps.last(), Some(&3000));
    assert_eq!(
        steps.len(),
        31,
        "one line per evaluation, none lost: {steps:?}"
    );
    pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "8"]).expect_ok();

    // Two resumes of the finished run.
    let mut resume = spawn(&["train", "--resume", "--out", s(&run), "--steps", "5000"]);
    wait_for_writer(&mut resume, &run);
    let holder = format!("pid {}", resume.id());
    let out = pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", "5000"]);
    let still_running = resume.try_wait().unwrap().is_none();
    assert_clean_error(&out, &[s(&run), "in use", &holder]);
    assert!(
        still_running,
        "the first resume ended too soon: the test proves nothing"
    );
    finish(resume, "the first resume");
    assert_eq!(metric_steps(&run).last(), Some(&5000));
    pixelrnn(&["eval", "--checkpoint", s(&run), "--limit", "8"]).expect_ok();
}

/// A write that fails after its temporary file was made (the rename onto `loss.svg`, which
/// is a non-empty folder: refused on every POSIX system, even for root, unlike a read-only
/// folder) removes the temporary file, and the error names the file.
#[test]
fn a_failed_write_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("loss.svg")).unwrap();
    std::fs::write(run.join("loss.svg").join("keep"), b"x").unwrap();
    let out = train(&run, 2, &[]);
    assert!(!out.ok(), "{}", out.stderr);
    assert_no_panic(&out);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("loss.svg"),
        "{}",
        out.stderr
    );
    assert_eq!(
        tmp_files(&run),
        Vec::<String>::new(),
        "temporary files left"
    );
}

// ------------------------------------------------------------------ item 11: flag messages

#[test]
fn eval_batch_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(&run, 2, &[]).expect_ok();
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--batch", "0"]);
    assert_clean_error(&out, &["--batch", "positive"]);
}

#[test]
fn train_batch_zero_names_batch_not_workers() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = pixelrnn(&["train", "--batch", "0", "--steps", "2", "--out", s(&run)]);
    assert_clean_error(&out, &["--batch", "positive"]);
    assert!(!out.stderr.contains("--workers"), "{}", out.stderr);
    let out = pixelrnn(&["train", "--batch", "0", "--epochs", "1", "--out", s(&run)]);
    assert_clean_error(&out, &["--batch", "positive"]);
}

/// `--epochs 1e30` would saturate to 2^64 - 1 steps and never end; an absurd `--steps` too.
#[test]
fn absurd_step_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut failures = Vec::new();
    for (args, flag) in [
        (vec!["--epochs", "1e30"], "--epochs"),
        (vec!["--epochs", "1e300"], "--epochs"),
        (vec!["--steps", "100000000000"], "--steps"),
        (vec!["--steps", "18446744073709551615"], "--steps"),
    ] {
        let mut full = vec!["train", "--out", s(&run), "--device", "cpu"];
        full.extend(&args);
        let out = pixelrnn(&full);
        failures.extend(check_clean_error(&out, &[flag, "limit"]).err());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(!run.exists(), "a refused run must not create its folder");
}

/// A negative number for a flag that takes none says which flag, not clap's "unexpected
/// argument '-1'".
#[test]
fn negative_numbers_name_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut failures = Vec::new();
    for (args, names) in [
        (vec!["train", "--hidden", "-1"], "--hidden -1"),
        (vec!["train", "--batch", "-4"], "--batch -4"),
        (vec!["train", "--steps", "-10"], "--steps -10"),
        (vec!["train", "--epochs", "-2.5"], "--epochs -2.5"),
        (
            vec!["eval", "--checkpoint", "x", "--limit", "-1"],
            "--limit -1",
        ),
        (
            vec!["sample", "--checkpoint", "x", "--n", "-3", "--out", "a.png"],
            "--n -3",
        ),
    ] {
        let mut full = args.clone();
        if args[0] == "train" {
            full.extend(["--out", s(&run)]);
        }
        let out = pixelrnn(&full);
        failures.extend(check_clean_error(&out, &[names, "negative"]).err());
        if out.stderr.contains("unexpected argument") {
            failures.push(format!("clap's message: {}", out.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------- item 9: devices are not inputs

/// A device (directly, or through a symlink named like a checkpoint or a dataset) is refused
/// before it is read: reading /dev/zero "to the end" would grow memory until the process dies.
#[cfg(unix)]
#[test]
fn devices_are_refused_as_inputs() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let link = |name: &str, target: &str| {
        let p = d.join(name);
        symlink(target, &p).unwrap();
        p
    };
    let ck = link("zero.safetensors", "/dev/zero");
    let folder = d.join("run");
    std::fs::create_dir(&folder).unwrap();
    symlink("/dev/urandom", folder.join("checkpoint.safetensors")).unwrap();
    let bin = link("zero.bin", "/dev/zero");
    let npy = link("random.npy", "/dev/urandom");
    let npz = link("zero.npz", "/dev/zero");
    let plain = link("zero", "/dev/zero");
    let trained = d.join("trained");
    train(&trained, 2, &[]).expect_ok();

    let mut failures = Vec::new();
    let mut check = |args: Vec<&str>, names: &str| {
        let t0 = Instant::now();
        let out = pixelrnn(&args);
        failures.extend(check_clean_error(&out, &[names, "not a regular file"]).err());
        if t0.elapsed() > Duration::from_secs(30) {
            failures.push(format!("`{}` took {:?}", out.cmd, t0.elapsed()));
        }
    };
    check(vec!["eval", "--checkpoint", "/dev/zero"], "/dev/zero");
    check(vec!["eval", "--checkpoint", s(&ck)], s(&ck));
    check(
        vec!["eval", "--checkpoint", s(&folder)],
        "checkpoint.safetensors",
    );
    check(
        vec![
            "sample",
            "--checkpoint",
            s(&ck),
            "--out",
            s(&d.join("a.png")),
        ],
        s(&ck),
    );
    for data in [&bin, &npy, &npz, &plain] {
        let out = d.join("out");
        check(
            vec![
                "train",
                "--data",
                s(data),
                "--out",
                s(&out),
                "--device",
                "cpu",
            ],
            s(data),
        );
        check(
            vec!["eval", "--checkpoint", s(&trained), "--data", s(data)],
            s(data),
        );
    }
    check(
        vec![
            "sample",
            "--checkpoint",
            s(&trained),
            "--out",
            s(&d.join("b.png")),
            "--prefix",
            s(&npy),
            "--rows",
            "2",
        ],
        s(&npy),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ----------------------------------------------------- item 5: cosine runs are not extended

/// A cosine schedule depends on the total, so `--resume --steps` with another total would match
/// no straight run: refused, the run left as it was. Resuming to the same total is allowed.
#[test]
fn a_cosine_run_cannot_be_extended() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train(&run, 20, &["--schedule", "cosine", "--eval-every", "10"]).expect_ok();
    let ck = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    for steps in ["40", "30"] {
        let out = pixelrnn(&["train", "--resume", "--out", s(&run), "--steps", steps]);
        assert_clean_error(&out, &["cosine", "--steps 20", steps]);
    }
    assert!(std::fs::read(run.join("checkpoint.safetensors")).unwrap() == ck);
    assert!(std::fs::read(run.join("metrics.jsonl")).unwrap() == metrics);
    // A constant schedule extends (exactly: tests/cli.rs resume_continues_exactly).
    let constant = dir.path().join("constant");
    train(&constant, 4, &[]).expect_ok();
    pixelrnn(&["train", "--resume", "--out", s(&constant), "--steps", "8"]).expect_ok();
}

// ------------------------------------------------------ item 8: sizes that cannot fit

/// Runs `args` and checks it is refused quickly with one line that says what it needs and
/// what the machine has (never the allocator's abort, exit 134).
fn check_too_big(args: &[&str]) -> Result<(), String> {
    let t0 = Instant::now();
    let out = pixelrnn(args);
    check_clean_error(&out, &["needs at least", "available"])?;
    if out.code == Some(134) || t0.elapsed() > Duration::from_secs(30) {
        return Err(format!("`{}`: {:?}, {:?}", out.cmd, out.code, t0.elapsed()));
    }
    Ok(())
}

/// Models, batches and samples far larger than any machine are refused before allocation.
#[test]
fn sizes_that_cannot_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = d.join("run");
    let images = pixelrnn::data::Images::new(90, 28, 28, 1, false, vec![7; 90 * 784]).unwrap();
    let ninety = d.join("ninety.npy");
    pixelrnn::data::save_npy_u8(&ninety, &images).unwrap();
    let mut failures = Vec::new();
    for extra in [
        vec!["--hidden", "100000"],
        vec!["--head", "10000000"],
        vec!["--layers", "100000"],
        vec!["--data", s(&ninety), "--batch", "100000"],
        vec!["--model", "diag-bilstm", "--hidden", "100000"],
    ] {
        let mut args = vec!["train", "--steps", "2", "--device", "cpu", "--out", s(&run)];
        args.extend(&extra);
        failures.extend(check_too_big(&args).err());
    }
    assert!(!run.join("checkpoint.safetensors").exists());

    // Sampling: 10^8 images of 28 x 28 need 78 GB for the images alone.
    let trained = d.join("trained");
    train(&trained, 2, &[]).expect_ok();
    let png = d.join("a.png");
    let n = 100_000_000u128;
    if pixelrnn::memory::available_bytes().is_some_and(|have| have < n * 784) {
        let args = [
            "sample",
            "--checkpoint",
            s(&trained),
            "--n",
            "100000000",
            "--out",
            s(&png),
        ];
        failures.extend(check_too_big(&args).err());
    } else {
        eprintln!("sample --n 100000000 skipped: this machine has room for 78 GB");
    }

    // A checkpoint whose metadata says the images are 10^9 rows high.
    let ck = trained.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut info = meta.metadata().clone().unwrap();
    let mut model: serde_json::Value = serde_json::from_str(&info["model_config"]).unwrap();
    model["height"] = serde_json::json!(1_000_000_000u64);
    info.insert("model_config".into(), model.to_string());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tall = d.join("tall.safetensors");
    std::fs::write(
        &tall,
        safetensors::serialize(st.tensors(), Some(info)).unwrap(),
    )
    .unwrap();
    let args = ["sample", "--checkpoint", s(&tall), "--out", s(&png)];
    failures.extend(check_too_big(&args).err());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 19 item 3: an `.npz` whose member's CRC-32 is wrong is refused by `train` with one
/// line naming the file and the array (numpy refuses the same file), where it was read
/// silently.
#[test]
fn an_npz_with_a_wrong_crc_is_refused() {
    use npyz::WriterBuilder;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crc.npz");
    {
        let mut npz = npyz::npz::NpzWriter::create(&path).unwrap();
        let data: Vec<u8> = (0..40 * 8 * 8).map(|i| (i % 2) as u8).collect();
        let mut w = npz
            .array::<u8>("digits", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[40, 8, 8])
            .begin_nd()
            .unwrap();
        w.extend(data).unwrap();
        w.finish().unwrap();
    }
    // Wrong CRC-32 in the local header (offset 14) and the central directory (offset 16).
    let mut bytes = std::fs::read(&path).unwrap();
    let mut patched = 0;
    for (signature, crc_at) in [(*b"PK\x03\x04", 14), (*b"PK\x01\x02", 16)] {
        for k in 0..bytes.len().saturating_sub(4) {
            if bytes[k..k + 4] == signature {
                bytes[k + crc_at] ^= 0x5a;
                patched += 1;
            }
        }
    }
    assert!(patched >= 2, "no zip headers found");
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("run");
    let r = pixelrnn(&train_args(&out, "2", &["--data", s(&path)]));
    assert_clean_error(&r, &["crc.npz[digits]", "CRC-32"]);
}
