//! Issue 19, wrong values that used to pass with exit 0: a checkpoint whose weights, optimizer
//! state or metadata no training could have written is refused on load with one line naming
//! the tensor or field; sampling refuses non-finite logits on both backends; a resume from a
//! step-0 checkpoint writes the step-0 metrics line once; logits of very large magnitude are
//! scored exactly on both backends.
//!
//! Every test runs the binary on tiny models (1 layer, h = 4, head 8) trained for a step or two
//! on generated 8x8 images, then plants the bad value in the checkpoint through its safetensors
//! file, as a user editing it elsewhere would.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{assert_clean_error, check_clean_error, pixelrnn, s, write_npy_images, Out};
use common::runs::{metric_steps, train};

// ---------------------------------------------------------------------------------- helpers

/// Writes `n` random uint8 8x8x1 images to `dir/grey.npy`.
fn write_images(dir: &Path, n: usize) -> PathBuf {
    write_npy_images(dir, "grey.npy", (n, 8, 8, 1), 7)
}

/// A run folder trained for `steps` steps (tiny PixelCNN on 20 generated 8x8 images).
fn trained(dir: &Path, steps: u32, extra: &[&str]) -> PathBuf {
    let data = write_images(dir, 20);
    let run = dir.join("run");
    train(s(&data), &run, steps, extra).expect_ok();
    run
}

/// Rewrites `run`'s checkpoint: `tensor` may change any tensor's values (name, shape,
/// values), `meta` any metadata string.
fn edit_checkpoint(
    run: &Path,
    mut tensor: impl FnMut(&str, &[usize], &mut Vec<f32>),
    meta: impl FnOnce(&mut HashMap<String, String>),
) {
    let path = run.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut info = md.metadata().clone().expect("pixelrnn metadata");
    meta(&mut info);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        tensor(&name, view.shape(), &mut values);
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        named.push((name, view.shape().to_vec(), raw));
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, sh, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, sh.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
}

/// Sets every value of tensor `which` to `value`.
fn set_tensor(run: &Path, which: &str, value: f32) {
    let mut found = false;
    edit_checkpoint(
        run,
        |name, _, v| {
            if name == which {
                v.fill(value);
                found = true;
            }
        },
        |_| {},
    );
    assert!(found, "the checkpoint has no tensor {which}");
}

/// The checkpoint's bytes and the metrics log's text: what a refused command must not change.
fn snapshot(run: &Path) -> (Vec<u8>, String) {
    (
        std::fs::read(run.join("checkpoint.safetensors")).unwrap(),
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
    )
}

/// `pixelrnn train --resume --out RUN --steps STEPS --device cpu`.
fn resume(run: &Path, steps: u32) -> Out {
    let steps = steps.to_string();
    pixelrnn(&[
        "train",
        "--resume",
        "--out",
        s(run),
        "--steps",
        &steps,
        "--device",
        "cpu",
    ])
}

// ------------------------------------------------------------ item 1: non-finite weights

/// `eval` of a checkpoint whose `input.weight` is all NaN (or +-inf) used to score a finite NLL
/// (the ReLUs turned NaN into 0); now loading refuses it, naming the tensor.
#[test]
fn eval_of_non_finite_weights_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), 1, &[]);
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        set_tensor(&run, "input.weight", value);
        let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--device", "cpu"]);
        assert_clean_error(&out, &["'input.weight'", "non-finite"]);
    }
}

/// `train --resume` on a NaN `input.weight` used to exit 0 and write a new checkpoint still all
/// NaN; now it is refused and the run folder is left as it was.
#[test]
fn resume_of_non_finite_weights_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), 1, &[]);
    set_tensor(&run, "input.weight", f32::NAN);
    let before = snapshot(&run);
    let out = resume(&run, 3);
    assert_clean_error(&out, &["'input.weight'", "non-finite"]);
    assert!(
        snapshot(&run) == before,
        "the refused resume changed the run folder"
    );
}

/// A NaN or negative second moment (Adam's v, RMSProp's mean square) is refused on resume,
/// naming the tensor; so is a non-finite first moment.
#[test]
fn non_finite_or_negative_optimizer_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let adam = trained(dir.path(), 1, &[]);
    let cases = [
        ("optim.input.weight.adam_v", f32::NAN, "non-finite"),
        ("optim.input.weight.adam_v", -1.0, "negative second moment"),
        ("optim.head.logits.bias.adam_m", f32::INFINITY, "non-finite"),
    ];
    let mut failures = Vec::new();
    for (tensor, value, word) in cases {
        let original = snapshot(&adam);
        set_tensor(&adam, tensor, value);
        let planted = snapshot(&adam);
        let out = resume(&adam, 3);
        if let Err(e) = check_clean_error(&out, &[&format!("'{tensor}'"), word]) {
            failures.push(e);
        }
        if snapshot(&adam) != planted {
            failures.push(format!(
                "{tensor} = {value}: the refused resume wrote the run"
            ));
        }
        std::fs::write(adam.join("checkpoint.safetensors"), original.0).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let rms = trained(dir.path(), 1, &["--optimizer", "rmsprop"]);
    set_tensor(&rms, "optim.input.weight.rmsprop_ms", -0.5);
    let out = resume(&rms, 3);
    if let Err(e) = check_clean_error(
        &out,
        &["'optim.input.weight.rmsprop_ms'", "negative second moment"],
    ) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------- item 2: sampling non-finite logits

/// `sample` from logits that are NaN or infinite used to exit 0 with every pixel 255. A NaN
/// output bias is refused when the checkpoint loads; weights that are finite but overflow the
/// logits to +inf or -inf are refused by the sampler, on the CPU and on the CUDA kernels
/// (emulated), at temperature 1, 0.5 and 0 (the host's argmax path).
#[test]
fn sample_with_non_finite_logits_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), 1, &[]);
    let png = dir.path().join("s.png");
    let original = std::fs::read(run.join("checkpoint.safetensors")).unwrap();

    set_tensor(&run, "head.logits.bias", f32::NAN);
    let out = pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&run),
        "--n",
        "2",
        "--out",
        s(&png),
        "--device",
        "cpu",
    ]);
    assert_clean_error(&out, &["'head.logits.bias'", "non-finite"]);

    let mut failures = Vec::new();
    for huge in [3e38f32, -3e38] {
        std::fs::write(run.join("checkpoint.safetensors"), &original).unwrap();
        // The head's hidden layer outputs 10 everywhere; every logit is 8 * 10 * huge: +-inf.
        edit_checkpoint(
            &run,
            |name, _, v| match name {
                "head.hidden.weight" => v.fill(0.0),
                "head.hidden.bias" => v.fill(10.0),
                "head.logits.weight" => v.fill(huge),
                _ => {}
            },
            |_| {},
        );
        for (device, temperature) in [
            ("cpu", "1"),
            ("cpu", "0.5"),
            ("cpu", "0"),
            ("emulator", "1"),
        ] {
            let _ = std::fs::remove_file(&png);
            let out = pixelrnn(&[
                "sample",
                "--checkpoint",
                s(&run),
                "--n",
                "2",
                "--out",
                s(&png),
                "--device",
                device,
                "--temperature",
                temperature,
            ]);
            if let Err(e) = check_clean_error(&out, &["cannot sample", "NaN or infinite logits"]) {
                failures.push(format!("weights {huge}, {device}, T {temperature}: {e}"));
            }
            if png.exists() {
                failures.push(format!("weights {huge}, {device}: wrote {}", png.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ------------------------------------------------------------- item 4: metadata on load

/// Every metadata field is checked on load, the error naming the field. `seconds` = "NaN" used
/// to be accepted on --resume, which then wrote `"seconds": null` to metrics.jsonl.
#[test]
fn bad_metadata_is_refused_on_resume_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), 1, &[]);
    let original = snapshot(&run);
    type Edit = Box<dyn Fn(&mut HashMap<String, String>)>;
    let train_config = |edit: fn(&mut Value)| -> Edit {
        Box::new(move |info: &mut HashMap<String, String>| {
            let mut v: Value = serde_json::from_str(&info["train_config"]).unwrap();
            edit(&mut v);
            info.insert("train_config".into(), v.to_string());
        })
    };
    let set = |key: &'static str, value: &'static str| -> Edit {
        Box::new(move |info| {
            info.insert(key.into(), value.into());
        })
    };
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        ("seconds NaN", set("seconds", "NaN"), &["'seconds'", "NaN"]),
        ("seconds inf", set("seconds", "inf"), &["'seconds'"]),
        ("seconds < 0", set("seconds", "-3"), &["'seconds'"]),
        ("step text", set("step", "ten"), &["'step'", "ten"]),
        ("step < 0", set("step", "-1"), &["'step'"]),
        ("model text", set("model_config", "{}"), &["'model_config'"]),
        (
            "model hidden 0",
            Box::new(|info: &mut HashMap<String, String>| {
                let mut v: Value = serde_json::from_str(&info["model_config"]).unwrap();
                v["hidden"] = 0.into();
                info.insert("model_config".into(), v.to_string());
            }),
            &["'model_config'"],
        ),
        (
            "train text",
            set("train_config", "[1]"),
            &["'train_config'"],
        ),
        (
            "train steps 0",
            train_config(|v| v["steps"] = 0.into()),
            &["'train_config'", "'steps'"],
        ),
        (
            "train batch 0",
            train_config(|v| v["batch"] = 0.into()),
            &["'train_config'", "'batch'"],
        ),
        (
            "train lr < 0",
            train_config(|v| v["optim"]["lr"] = (-1.0).into()),
            &["'train_config'", "'optim'", "--lr"],
        ),
        (
            "train model differs",
            train_config(|v| v["model"]["head"] = 9.into()),
            &["'train_config'", "'model_config'"],
        ),
        (
            "step beyond steps",
            Box::new(|info: &mut HashMap<String, String>| {
                info.insert("step".into(), "1000".into());
            }),
            &["'train_config'", "'step'"],
        ),
        ("optimizer text", set("optimizer", "adam"), &["'optimizer'"]),
        (
            "optimizer beta2",
            Box::new(|info: &mut HashMap<String, String>| {
                let mut v: Value = serde_json::from_str(&info["optimizer"]).unwrap();
                v["beta2"] = 1.5.into();
                info.insert("optimizer".into(), v.to_string());
            }),
            &["'optimizer'", "beta2"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, edit, mentions) in cases {
        std::fs::write(run.join("checkpoint.safetensors"), &original.0).unwrap();
        edit_checkpoint(&run, |_, _, _| {}, |info| edit(info));
        let planted = snapshot(&run);
        let out = resume(&run, 3);
        if let Err(e) = check_clean_error(&out, mentions) {
            failures.push(format!("{what}: {e}"));
        }
        if snapshot(&run) != planted {
            failures.push(format!("{what}: the refused resume changed the run folder"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // eval and sample open checkpoints the same way.
    std::fs::write(run.join("checkpoint.safetensors"), &original.0).unwrap();
    edit_checkpoint(
        &run,
        |_, _, _| {},
        |info| {
            info.insert("seconds".into(), "NaN".into());
        },
    );
    let out = pixelrnn(&["eval", "--checkpoint", s(&run), "--device", "cpu"]);
    assert_clean_error(&out, &["'seconds'"]);
    let png = dir.path().join("s.png");
    let out = pixelrnn(&[
        "sample",
        "--checkpoint",
        s(&run),
        "--n",
        "1",
        "--out",
        s(&png),
        "--device",
        "cpu",
    ]);
    assert_clean_error(&out, &["'seconds'"]);
}

// ----------------------------------------------------------- item 6: step-0 resume

/// A run stopped right after its step-0 evaluation (here by a loss that blows up at the first
/// step) leaves a step-0 checkpoint and one step-0 metrics line. Resuming it used to write the
/// step-0 line a second time.
#[test]
fn resume_from_a_step_0_checkpoint_writes_the_step_0_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_images(dir.path(), 20);
    let run = dir.path().join("run");
    let out = train(s(&data), &run, 3, &["--lr", "1e30"]);
    assert!(out.code.is_some_and(|c| c != 0), "{}", out.stderr);
    assert_eq!(
        metric_steps(&run),
        [0],
        "the failed run left its step-0 line"
    );
    // A sane learning rate in the saved configuration, so that the resumed run trains.
    edit_checkpoint(
        &run,
        |_, _, _| {},
        |info| {
            let mut v: Value = serde_json::from_str(&info["train_config"]).unwrap();
            v["optim"]["lr"] = 1e-3.into();
            v["eval_every"] = 1.into();
            info.insert("train_config".into(), v.to_string());
        },
    );
    resume(&run, 2).expect_ok();
    assert_eq!(metric_steps(&run), [0, 1, 2]);
}

// ------------------------------------------------------ item 7: logits of huge magnitude

/// With every logit equal (here all exactly 1e12: the head's hidden layer outputs 1
/// everywhere and only its first feature feeds the logits, with weight 1e12), the exact NLL of
/// an 8x8x1 256-level image is 64 ln 256 = 354.89 nats. The f32 loss used to compute
/// `(max + ln sum) - l_t`, in which `ln 256` is lost next to 1e12, and reported about 0; both
/// backends now compute `(max - l_t) + ln sum`.
#[test]
fn eval_of_huge_equal_logits_is_exact_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained(dir.path(), 1, &[]);
    edit_checkpoint(
        &run,
        |name, shape, v| match name {
            "head.hidden.weight" => v.fill(0.0),
            "head.hidden.bias" => v.fill(1.0),
            "head.logits.bias" => v.fill(0.0),
            "head.logits.weight" => {
                // [256, D, 1, 1]: feature 0 of the hidden layer, weight 1e12, for every value.
                let d = shape[1];
                for (i, w) in v.iter_mut().enumerate() {
                    *w = if i % d == 0 { 1e12 } else { 0.0 };
                }
            }
            _ => {}
        },
        |_| {},
    );
    let exact = 64.0 * 256f64.ln();
    for device in ["cpu", "emulator"] {
        let out = pixelrnn(&[
            "eval",
            "--checkpoint",
            s(&run),
            "--json",
            "--device",
            device,
        ])
        .expect_ok();
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        let nll = v["test_nll_nats"].as_f64().unwrap();
        assert!(
            (nll - exact).abs() < 1e-3,
            "{device}: test NLL {nll}, exactly {exact} (64 ln 256)"
        );
    }
}
