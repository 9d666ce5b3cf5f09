//! The checkpoints in pretrained/ (issue 20, item 4) still load, score and sample: each is
//! evaluated on the first 200 test images of its data and must give the NLL recorded in
//! pretrained/README.md (to 1e-4 relative: the f32 forward pass on another machine or thread
//! count may round differently, nothing more), so a change to the model code that breaks old
//! checkpoints fails here.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::cli::{pixelrnn, s};

/// (folder under pretrained/, model kind, NLL of the first 200 test images in nats/image as
/// recorded in pretrained/README.md).
const PRETRAINED: [(&str, &str, f64); 4] = [
    ("pixelcnn", "pixelcnn", 95.909_686),
    ("row-lstm", "row-lstm", 92.483_339),
    ("diag-bilstm", "diag-bilstm", 91.462_086),
    ("multiscale", "multiscale", 93.037_676),
];

/// Relative tolerance of the recorded NLL.
const TOLERANCE: f64 = 1e-4;

fn folder(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pretrained")
        .join(name)
}

#[test]
fn every_pretrained_checkpoint_scores_its_recorded_nll() {
    let readme = std::fs::read_to_string(folder("README.md")).expect("pretrained/README.md");
    let mut failures = Vec::new();
    for (name, kind, recorded) in PRETRAINED {
        let run = folder(name);
        let out = pixelrnn(&[
            "eval",
            "--checkpoint",
            s(&run),
            "--json",
            "--limit",
            "200",
            "--device",
            "cpu",
        ])
        .expect_ok();
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(v["model"], kind, "{name}");
        assert_eq!(v["images"], 200, "{name}");
        assert_eq!(v["data"], "binarized-mnist-stochastic", "{name}");
        let nll = v["test_nll_nats"].as_f64().unwrap();
        // Written so that a NaN NLL fails too.
        let close = (nll - recorded).abs() <= TOLERANCE * recorded;
        if !close {
            failures.push(format!(
                "{name}: {nll:.4} nats/image, recorded {recorded:.4}"
            ));
        }
        // The README states the same figure.
        let stated = format!("{recorded:.2}");
        if !readme.contains(&stated) {
            failures.push(format!(
                "{name}: pretrained/README.md does not state {stated}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The command as it stands, in a fresh folder: `sample --checkpoint
/// pretrained/diag-bilstm` writes `samples.png` there.
#[test]
fn sample_needs_no_flag_but_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::cli::pixelrnn_in(
        dir.path(),
        &[
            "sample",
            "--checkpoint",
            s(&folder("diag-bilstm")),
            "--n",
            "1",
            "--device",
            "cpu",
        ],
    )
    .expect_ok();
    assert!(out.stdout.contains("grid samples.png"), "{}", out.stdout);
    let png = std::fs::read(dir.path().join("samples.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG file");
}

#[test]
fn every_pretrained_checkpoint_samples() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _, _) in PRETRAINED {
        let png = dir.path().join(format!("{name}.png"));
        let npy = dir.path().join(format!("{name}.npy"));
        let out = pixelrnn(&[
            "sample",
            "--checkpoint",
            s(&folder(name)),
            "--n",
            "2",
            "--out",
            s(&png),
            "--npy",
            s(&npy),
            "--device",
            "cpu",
        ])
        .expect_ok();
        assert!(
            out.stdout.contains("28x28x1 binary"),
            "{name}: {}",
            out.stdout
        );
        let images = pixelrnn::data::load_npy(&npy).unwrap();
        assert_eq!((images.n, images.height, images.width), (2, 28, 28));
        assert!(images.is_zero_one(), "{name}");
    }
}
