//! docs/CHECKPOINTS.md documents every tensor and every metadata key that a checkpoint holds
//! (issue 20, item 1): a tiny model of each kind (PixelCNN, Row LSTM, Diagonal BiLSTM, Gated
//! PixelCNN and a
//! Multi-Scale model on each base, Adam and RMSProp state, a one-stage multi-scale run) is
//! trained through the binary, and each name it saved must appear on the page.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use safetensors::SafeTensors;
use serde_json::Value;

use common::cli::{pixelrnn, s, write_npy_images, TINY};

/// The page, as the test reads it.
fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CHECKPOINTS.md"))
        .expect("docs/CHECKPOINTS.md exists")
}

/// A tensor name as the page writes it: layer indices become `{l}`
/// (`layers.3.is_conv.weight` -> `layers.{l}.is_conv.weight`).
fn generic(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 && parts[i - 1] == "layers" && p.chars().all(|c| c.is_ascii_digit()) {
            out.push("{l}".to_string());
        } else {
            out.push(p.to_string());
        }
    }
    out.join(".")
}

/// What the page must say for tensor `name` (each entry is looked up in backticks):
/// `optim.{param}.<moment>` and the parameter for optimizer state, the `stage1.`/`stage2.`
/// prefix and the base name for a multi-scale tensor, else the name itself.
fn required_mentions(name: &str) -> Vec<String> {
    if let Some(rest) = name.strip_prefix("optim.") {
        let (param, moment) = rest.rsplit_once('.').expect("optim.{param}.{moment}");
        let mut m = vec![format!("optim.{{param}}.{moment}")];
        m.extend(required_mentions(param));
        return m;
    }
    for stage in ["stage1.", "stage2."] {
        if let Some(rest) = name.strip_prefix(stage) {
            let mut m = vec![stage.to_string()];
            m.extend(required_mentions(rest));
            return m;
        }
    }
    vec![generic(name)]
}

/// The checkpoint's tensor names and its metadata.
fn read(run: &Path) -> (Vec<String>, std::collections::HashMap<String, String>) {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let names = st.names().into_iter().map(str::to_string).collect();
    (names, md.metadata().clone().expect("pixelrnn metadata"))
}

#[test]
fn every_tensor_and_metadata_key_of_every_kind_is_documented() {
    let page = doc();
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "grey.npy", (20, 8, 8, 1), 3);
    let ms = |base: &'static str| {
        vec![
            "--model",
            "multiscale",
            "--base",
            base,
            "--scale",
            "4",
            "--cond-features",
            "3",
        ]
    };
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("pixelcnn", vec!["--model", "pixelcnn"]),
        ("row-lstm", vec!["--model", "row-lstm", "--row-kernel", "5"]),
        (
            "diag-bilstm",
            vec!["--model", "diag-bilstm", "--optimizer", "rmsprop"],
        ),
        ("ms-pixelcnn", ms("pixelcnn")),
        (
            "ms-row-lstm",
            [ms("row-lstm"), vec!["--stage", "2"]].concat(),
        ),
        ("ms-diag-bilstm", ms("diag-bilstm")),
        (
            "pixelcnn-mixture",
            vec![
                "--model",
                "pixelcnn",
                "--likelihood",
                "logistic-mixture",
                "--mixtures",
                "2",
            ],
        ),
        ("gated-pixelcnn", vec!["--model", "gated-pixelcnn"]),
        // Class-conditional (the embedded MNIST has labels): every layer's class table.
        (
            "cond-diag-bilstm",
            vec![
                "--data",
                "mnist",
                "--model",
                "diag-bilstm",
                "--condition",
                "class",
            ],
        ),
        (
            "cond-gated-pixelcnn",
            vec![
                "--data",
                "mnist",
                "--model",
                "gated-pixelcnn",
                "--condition",
                "class",
            ],
        ),
        (
            "cond-ms-pixelcnn",
            vec![
                "--data",
                "mnist",
                "--model",
                "multiscale",
                "--base",
                "pixelcnn",
                "--condition",
                "class",
            ],
        ),
    ];
    let mut missing = BTreeSet::new();
    let mut seen_tensors = 0;
    let mut kinds = BTreeSet::new();
    for (label, flags) in &runs {
        let run = dir.path().join(label);
        let mut args = vec!["train"];
        if !flags.contains(&"--data") {
            args.extend(["--data", s(&data)]);
        }
        args.extend(TINY);
        args.extend(["--steps", "1", "--out", s(&run)]);
        args.extend(flags);
        pixelrnn(&args).expect_ok();
        let (names, meta) = read(&run);
        assert!(
            names.iter().any(|n| n.starts_with("optim.")),
            "{label}: optimizer state saved"
        );
        for name in &names {
            seen_tensors += 1;
            for m in required_mentions(name) {
                if !page.contains(&format!("`{m}`")) {
                    missing.insert(format!("{label}: tensor {name} needs `{m}`"));
                }
            }
        }
        for key in meta.keys() {
            if !page.contains(&format!("`{key}`")) {
                missing.insert(format!("{label}: metadata key `{key}`"));
            }
        }
        let model: Value = serde_json::from_str(&meta["model_config"]).unwrap();
        kinds.insert(model["kind"].as_str().unwrap().to_string());
        for (key, v) in model.as_object().unwrap() {
            if !page.contains(&format!("`{key}`")) {
                missing.insert(format!("{label}: model_config key `{key}`"));
            }
            if let Some(inner) = v.as_object() {
                for k in inner.keys() {
                    if !page.contains(&format!("\"{k}\"")) {
                        missing.insert(format!("{label}: model_config.{key} key \"{k}\""));
                    }
                }
            }
        }
        let train: Value = serde_json::from_str(&meta["train_config"]).unwrap();
        for (key, v) in train.as_object().unwrap() {
            if !page.contains(&format!("`{key}`")) {
                missing.insert(format!("{label}: train_config key `{key}`"));
            }
            if key == "optim" {
                for k in v.as_object().unwrap().keys() {
                    if !page.contains(&format!("`{k}`")) {
                        missing.insert(format!("{label}: train_config.optim key `{k}`"));
                    }
                }
            }
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "diag-bilstm",
            "gated-pixelcnn",
            "multiscale",
            "pixelcnn",
            "row-lstm"
        ],
        "every kind is covered"
    );
    assert!(seen_tensors > 200, "{seen_tensors} tensors looked at");
    assert!(
        missing.is_empty(),
        "docs/CHECKPOINTS.md lacks:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The check itself can fail: a name the page does not hold is reported.
#[test]
fn an_undocumented_name_is_caught() {
    let page = doc();
    for name in [
        "layers.2.is_conv.weight",
        "stage2.upsample.bias",
        "optim.input.bias.adam_v",
    ] {
        for m in required_mentions(name) {
            assert!(page.contains(&format!("`{m}`")), "{name}: `{m}`");
        }
    }
    assert_eq!(
        generic("layers.12.left.cond.weight"),
        "layers.{l}.left.cond.weight"
    );
    for made_up in [
        "layers.0.peephole.weight",
        "stage3.input.weight",
        "optim.input.weight.lion_m",
    ] {
        let documented = required_mentions(made_up)
            .iter()
            .all(|m| page.contains(&format!("`{m}`")));
        assert!(!documented, "{made_up} should not pass as documented");
    }
}
