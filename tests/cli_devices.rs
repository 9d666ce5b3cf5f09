//! The `pixelrnn` binary on each device (`--device cpu|emulator|auto|cuda` without a GPU) and
//! `bench`, end to end: what runs prints and writes what the docs promise, what cannot run is
//! one clear line. Train/eval happy paths are tests/cli.rs, bad input tests/cli_errors.rs.
//!
//! Models are tiny (1 layer, h = 4, head 8, batch 4, a few steps) and data files are small
//! and generated here, so the whole file runs in seconds on two cores.

mod common;

use std::process::Command;

use serde_json::Value;

use common::cli::{
    assert_clean_error, assert_no_panic, check_clean_error, has_kernels, pixelrnn, pixelrnn_in, s,
    TINY,
};
use common::runs::{
    assert_close, assert_none_failed, read_json, read_metrics, train, trained_pixelcnn,
    write_images,
};

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
    if !has_kernels() {
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
    // The CPU has no kernel versions: the key is there, null.
    assert!(v.get("kernels").is_some_and(Value::is_null), "{v}");
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
    if !has_kernels() {
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

/// `--kernels` puts the named versions in force for the whole run: bench's training-step rows
/// run them (checked against the CPU; the JSON and the table say which versions ran) and the
/// profile's per-kernel rows name their kernels. A bad spec, or any spec on the CPU, is one
/// clear line.
#[test]
fn kernels_flag_selects_versions_for_bench_and_profile() {
    if !has_kernels() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let spec = "masked_conv2d=5,masked_conv2d_weight=3";
    let out = pixelrnn(&[
        "bench",
        "--device",
        "emulator",
        "--part",
        "steps",
        "--config",
        "tiny",
        "--model",
        "pixelcnn",
        "--precision",
        "fp32",
        "--kernels",
        spec,
        "--step-iters",
        "1",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--threads",
        "2",
        "--json",
        s(&json),
    ])
    .expect_ok();
    let want = "masked_conv2d v5, masked_conv2d weight v3, ";
    assert!(
        out.stdout.contains(&format!("kernels: {want}")),
        "{}",
        out.stdout
    );
    let report = read_json(&json);
    let kernels = report["kernels"].as_str().unwrap();
    assert!(kernels.starts_with(want), "{kernels}");
    let steps: Vec<&Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "step")
        .collect();
    assert_eq!(steps.len(), 1, "{report}");
    assert_eq!(steps[0]["status"], "ok", "{}", steps[0]);

    let out = pixelrnn(&[
        "profile",
        "--config",
        "tiny",
        "--model",
        "pixelcnn",
        "--kernels",
        spec,
        "--threads",
        "2",
    ])
    .expect_ok();
    for kernel in [
        "masked_conv2d_fwd_v5",
        "masked_conv2d_bwd_data_v5",
        "masked_conv2d_bwd_weight_v3",
    ] {
        assert!(out.stdout.contains(kernel), "{kernel}:\n{}", out.stdout);
    }
    assert!(
        !out.stdout.contains("masked_conv2d_fwd_v4"),
        "{}",
        out.stdout
    );

    let mut failures = Vec::new();
    let bad = [
        (
            vec!["bench", "--device", "cpu", "--kernels", spec],
            "CPU backend",
        ),
        (
            vec![
                "bench",
                "--device",
                "emulator",
                "--kernels",
                "masked_conv2d=9",
            ],
            "masked_conv2d has kernel versions 1 to 5, version 9 requested",
        ),
        (
            vec!["profile", "--config", "tiny", "--kernels", "conv=1"],
            "no kernel family 'conv'",
        ),
        (
            vec!["profile", "--config", "tiny", "--kernels", "row_lstm"],
            "expected family=N",
        ),
    ];
    for (args, mention) in bad {
        failures.extend(check_clean_error(&pixelrnn(&args), &["--kernels", mention]).err());
    }
    assert_none_failed(failures);
}

/// `--kernels` on train, eval and sample: the run's first lines name the versions in force,
/// and versions of the same bits (the conv GEMM v5 and weight gradient v3 against the
/// defaults v4 and v2, docs/kernels.md) train the same model to the same bits on the emulator.
/// On the CPU, or with a bad spec, it is one clear line.
#[test]
fn kernels_flag_selects_versions_for_train_eval_and_sample() {
    if !has_kernels() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), "grey.npy", 40, 8, 8, 1);
    let spec = "masked_conv2d=5,masked_conv2d_weight=3";
    let train_on = |name: &str, kernels: Option<&str>| {
        let run = dir.path().join(name);
        let mut args = vec!["train", "--data", s(&data)];
        args.extend(&TINY[..10]);
        args.extend(["--steps", "2", "--out", s(&run), "--device", "emulator"]);
        args.extend(["--threads", "2"]);
        if let Some(k) = kernels {
            args.extend(["--kernels", k]);
        }
        (pixelrnn(&args).expect_ok(), run)
    };
    let (out, chosen) = train_on("chosen", Some(spec));
    let want = format!("kernels (--kernels {spec}): masked_conv2d v5, masked_conv2d weight v3, ");
    assert!(out.stderr.contains(&want), "{}", out.stderr);
    let (out, defaults) = train_on("defaults", None);
    assert!(!out.stderr.contains("--kernels"), "{}", out.stderr);
    let nll = |run: &std::path::Path| -> Vec<f64> {
        read_metrics(run, 64)
            .iter()
            .map(|m| m["test_nll_nats"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(nll(&chosen), nll(&defaults));

    let out = pixelrnn(&[
        "eval",
        "--checkpoint",
        s(&chosen),
        "--device",
        "emulator",
        "--threads",
        "2",
        "--kernels",
        "masked_conv2d=3",
    ])
    .expect_ok();
    assert!(
        out.stderr
            .contains("kernels (--kernels masked_conv2d=3): masked_conv2d v3, "),
        "{}",
        out.stderr
    );
    let png = dir.path().join("s.png");
    let out = pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&chosen),
        "--out",
        s(&png),
        "--n",
        "1",
        "--device",
        "emulator",
        "--threads",
        "2",
        "--kernels",
        "masked_conv2d=3",
    ])
    .expect_ok();
    assert!(out.stderr.contains("masked_conv2d v3, "), "{}", out.stderr);
    assert!(png.is_file());

    let mut failures = Vec::new();
    let bad = [
        (
            vec![
                "eval",
                "--checkpoint",
                s(&chosen),
                "--device",
                "cpu",
                "--kernels",
                spec,
            ],
            "CPU backend",
        ),
        (
            vec![
                "sample",
                "--checkpoint",
                s(&chosen),
                "--out",
                s(&png),
                "--device",
                "cpu",
                "--kernels",
                spec,
            ],
            "CPU backend",
        ),
        (
            vec![
                "train",
                "--data",
                s(&data),
                "--device",
                "emulator",
                "--kernels",
                "masked_conv2d=9",
            ],
            "masked_conv2d has kernel versions 1 to 5, version 9 requested",
        ),
    ];
    for (args, mention) in bad {
        failures.extend(check_clean_error(&pixelrnn(&args), &["--kernels", mention]).err());
    }
    assert_none_failed(failures);
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
            && out.stdout.contains("masked_conv2d_fwd_v4")
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
    // The latency model: per launch at least the roofline, so the step too; its times are
    // recorded with it.
    assert!(out.stdout.contains("modelled"), "{}", out.stdout);
    assert!(out.stdout.contains("bar/warp"), "{}", out.stdout);
    let (modelled, estimate) = (
        st["modelled_s"].as_f64().unwrap(),
        st["estimate_s"].as_f64().unwrap(),
    );
    assert!(
        modelled >= estimate * (1.0 - 1e-12),
        "{modelled} {estimate}"
    );
    assert_eq!(st["latency"]["load_s"].as_f64(), Some(165e-9));
    assert_eq!(st["latency"]["barrier_s"].as_f64(), Some(1.14e-6));
    let kernels = st["kernels"].as_array().unwrap();
    let launches: u64 = kernels
        .iter()
        .map(|k| k["launches"].as_u64().unwrap())
        .sum();
    assert_eq!(launches, st["launches"].as_u64().unwrap());
    // The GEMM waits at a barrier per chunk: counted, and in its chain.
    let gemm = kernels
        .iter()
        .find(|k| k["kernel"] == "masked_conv2d_fwd_v4")
        .unwrap();
    assert!(gemm["sync"]["barriers"].as_u64().unwrap() > 0, "{gemm}");
    assert_eq!(gemm["sync"]["warp_ops"].as_u64(), Some(0), "{gemm}");
    assert!(gemm["chain"]["barriers"].as_f64().unwrap() > 0.0, "{gemm}");
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
    assert_clean_error(&pixelrnn(&["profile", "--load-ns", "-5"]), &["--load-ns"]);
}
