//! Binarization (issue 20, items 2 and 3): 0/1 data is binary by default (one stderr line says
//! so, `--keep-levels` keeps 256 levels), `eval` and `sample` follow the checkpoint's setting,
//! `--binarize stochastic` draws each pixel once with probability v/255 from a recorded seed,
//! `--binarize dynamic` draws the training images afresh every epoch and the test images once,
//! and `binarized-mnist-stochastic` is the embedded digits drawn that way.

mod common;

use std::path::Path;

use pixelrnn::data::{
    draw_images, embedded_mnist, load_dataset_as, save_npy_u8, Binarize, DataError, Images,
    STOCHASTIC_SEED, TEST_STREAM,
};
use serde_json::Value;

use common::cli::{assert_clean_error, pixelrnn, s, write_npy_images};
use common::runs::{last_test_nll, run_config, train, weights};

fn ones(images: &Images) -> u64 {
    images.pixels.iter().map(|&v| u64::from(v)).sum()
}

fn grey_sum(images: &Images) -> u64 {
    images.pixels.iter().map(|&v| u64::from(v)).sum()
}

/// `|ones - sum(v)/255| <= 5 sigma` of the sum of independent Bernoulli(v/255) pixels.
fn assert_draw_matches_probabilities(grey: &Images, drawn: &Images, what: &str) {
    let mean: f64 = grey.pixels.iter().map(|&v| f64::from(v) / 255.0).sum();
    let var: f64 = grey
        .pixels
        .iter()
        .map(|&v| {
            let p = f64::from(v) / 255.0;
            p * (1.0 - p)
        })
        .sum();
    let got = ones(drawn) as f64;
    assert!(
        (got - mean).abs() <= 5.0 * var.sqrt(),
        "{what}: {got} ones, expected {mean:.1} +- 5 x {:.1}",
        var.sqrt()
    );
}

#[test]
fn stochastic_draw_has_probability_v_over_255() {
    // Every grey level, 2000 times each: per level the fraction of ones is v/255 within
    // 5 sigma (sigma = sqrt(p (1 - p) / 2000) <= 0.0112); 0 is never on, 255 always.
    let levels: Vec<u8> = (0..=255u8).collect();
    let n = 2000;
    let grey = Images::new(n, 1, 256, 1, false, levels.repeat(n)).unwrap();
    let drawn = draw_images(&grey, 11, TEST_STREAM);
    assert!(drawn.binary);
    for v in 0..256usize {
        let k: usize = (0..n).map(|i| usize::from(drawn.pixels[i * 256 + v])).sum();
        let p = v as f64 / 255.0;
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        let frac = k as f64 / n as f64;
        assert!(
            (frac - p).abs() <= 5.0 * sigma,
            "level {v}: {frac} on, expected {p} +- 5 x {sigma}"
        );
    }
    assert_draw_matches_probabilities(&grey, &drawn, "all levels");
    // Deterministic in the seed, and another seed is another draw.
    assert_eq!(drawn, draw_images(&grey, 11, TEST_STREAM));
    assert_ne!(drawn.pixels, draw_images(&grey, 12, TEST_STREAM).pixels);
    assert_ne!(drawn.pixels, draw_images(&grey, 11, 1).pixels);
}

#[test]
fn binarized_mnist_stochastic_is_the_embedded_digits_drawn_once() {
    let grey = embedded_mnist();
    let d = load_dataset_as("binarized-mnist-stochastic", Binarize::Auto).unwrap();
    assert_eq!(d.name, "binarized-mnist-stochastic");
    assert!(d.binary());
    assert_eq!(
        d.binarize,
        Binarize::Stochastic {
            seed: STOCHASTIC_SEED
        }
    );
    assert_eq!((d.train.n, d.test.n), (9000, 1000));
    assert_draw_matches_probabilities(&grey.train, &d.train, "train");
    assert_draw_matches_probabilities(&grey.test, &d.test, "test");
    // The pixel sums of data/README.md, over 255: what the draw's expected ones are.
    assert_eq!(grey_sum(&grey.train), 235_862_646);
    // The same as `mnist` read stochastically with that seed; another seed differs.
    let same = load_dataset_as("mnist", d.binarize).unwrap();
    assert_eq!(same, d);
    let other = load_dataset_as(
        "binarized-mnist-stochastic",
        Binarize::Stochastic { seed: 1 },
    )
    .unwrap();
    assert_ne!(other.train.pixels, d.train.pixels);
    assert_eq!(other.binarize, Binarize::Stochastic { seed: 1 });
    // The draw is a definition of the dataset: these counts pin it (train, test), so a change
    // of generator or seed mixing fails here until data/README.md and the results are
    // updated with it.
    assert_eq!((ones(&d.train), ones(&d.test)), PINNED_STOCHASTIC_ONES);
    // A binarized set cannot be binarized another way.
    let err = load_dataset_as("binarized-mnist", Binarize::Dynamic { seed: 0 }).unwrap_err();
    assert!(matches!(err, DataError::Rebinarized { .. }), "{err}");
    assert!(err.to_string().contains("--data mnist"), "{err}");
}

/// Ones in the train and test splits of `binarized-mnist-stochastic` (seed 0), as first drawn
/// (2026-12-01): expected 924 951.6 and 103 074.3 (the grey sums over 255).
const PINNED_STOCHASTIC_ONES: (u64, u64) = (925_189, 102_960);

#[test]
fn dynamic_draws_each_epoch_afresh_and_the_test_set_once() {
    let how = Binarize::Dynamic { seed: 3 };
    let d = load_dataset_as("mnist", how).unwrap();
    let st = load_dataset_as("mnist", Binarize::Stochastic { seed: 3 }).unwrap();
    assert_eq!(d.name, "binarized-mnist-dynamic");
    assert_eq!(d.binarize, how);
    // The test images are drawn once, the draw of `stochastic` with the same seed; so is the
    // training split's first epoch.
    assert_eq!(d.test, st.test);
    assert_eq!(d.train, st.train);
    let n = d.train.n as u64;
    let batch = 16;
    let idx: Vec<usize> = vec![0, 5, 8999, 5];
    // Step 0 is in epoch 0: the stored draw.
    let b0 = d
        .training_batch(0, batch, &idx)
        .expect("dynamic draws batches");
    assert_eq!(b0, d.train.subset(&idx));
    // A step of epoch 1 (positions n..): the same images drawn again, differently, and the
    // same way every time it is asked (a resumed run sees the same pixels).
    let step1 = n.div_ceil(batch as u64) + 1;
    let b1 = d.training_batch(step1, batch, &idx).unwrap();
    assert_eq!(b1, d.training_batch(step1, batch, &idx).unwrap());
    assert_ne!(b1.pixels, b0.pixels);
    let grey = embedded_mnist();
    assert_draw_matches_probabilities(&grey.train.subset(&idx), &b1, "epoch 1 batch");
    // Fixed draws have no batches of their own.
    assert!(st.training_batch(step1, batch, &idx).is_none());
}

#[test]
fn zero_one_files_are_binary_unless_kept_as_levels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.npy");
    let zero_one = Images::new(4, 1, 2, 1, false, vec![0, 1, 1, 0, 1, 1, 0, 0]).unwrap();
    save_npy_u8(&path, &zero_one).unwrap();
    let spec = s(&path);
    let auto = load_dataset_as(spec, Binarize::Auto).unwrap();
    assert!(auto.binary());
    assert_eq!(auto.train.pixels, vec![0, 1, 1, 0, 1, 1]);
    let kept = load_dataset_as(spec, Binarize::KeepLevels).unwrap();
    assert!(!kept.binary());
    assert_eq!(kept.train.pixels, auto.train.pixels);
    // Binarizing 0/1 data leaves it as it is (a threshold of 128 would zero it).
    for how in [
        Binarize::Threshold,
        Binarize::Stochastic { seed: 0 },
        Binarize::Dynamic { seed: 0 },
    ] {
        let d = load_dataset_as(spec, how).unwrap();
        assert!(d.binary());
        assert_eq!(d.test.pixels, vec![0, 0], "{how:?}");
    }
    // Grey data is not binary by default.
    let grey = Images::new(2, 1, 2, 1, false, vec![0, 2, 1, 0]).unwrap();
    save_npy_u8(&path, &grey).unwrap();
    assert!(!load_dataset_as(spec, Binarize::Auto).unwrap().binary());
}

#[test]
fn saved_runs_before_the_modes_still_read() {
    for (saved, want) in [
        ("true", Binarize::Threshold),
        ("false", Binarize::Auto),
        ("\"auto\"", Binarize::Auto),
        ("\"keep-levels\"", Binarize::KeepLevels),
        (
            "{\"stochastic\":{\"seed\":9}}",
            Binarize::Stochastic { seed: 9 },
        ),
        ("{\"dynamic\":{\"seed\":2}}", Binarize::Dynamic { seed: 2 }),
    ] {
        let mut d = serde_json::Deserializer::from_str(saved);
        assert_eq!(
            pixelrnn::data::binarize_compat(&mut d).unwrap(),
            want,
            "{saved}"
        );
    }
    assert_eq!(
        serde_json::to_string(&Binarize::Stochastic { seed: 9 }).unwrap(),
        "{\"stochastic\":{\"seed\":9}}"
    );
}

// ----------------------------------------------------------------------------- the binary

fn eval_nll(args: &[&str]) -> f64 {
    let mut all = vec!["eval", "--json", "--limit", "16", "--device", "cpu"];
    all.extend(args);
    let out = pixelrnn(&all).expect_ok();
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    v["test_nll_nats"].as_f64().unwrap()
}

/// 0/1 images of `h x w`: a `.npy` whose values are all 0 or 1.
fn write_zero_one(dir: &Path, n: usize) -> std::path::PathBuf {
    let pixels = common::cli::bytes(n * 36, 5)
        .iter()
        .map(|b| b & 1)
        .collect();
    let images = Images::new(n, 6, 6, 1, false, pixels).unwrap();
    let path = dir.join("zero-one.npy");
    save_npy_u8(&path, &images).unwrap();
    path
}

#[test]
fn zero_one_data_trains_binary_with_one_line_and_eval_follows() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_zero_one(dir.path(), 40);
    let run = dir.path().join("run");
    let out = train(s(&data), &run, 2, &[]).expect_ok();
    let note: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("holds only 0 and 1"))
        .collect();
    assert_eq!(
        note,
        vec![format!(
            "data: {} holds only 0 and 1: taken as binary (one Bernoulli logit per sub-pixel; --keep-levels keeps 256 levels)",
            s(&data)
        )],
        "{}",
        out.stderr
    );
    let cfg = run_config(&run);
    assert_eq!(cfg["model"]["binary"], true);
    assert_eq!(cfg["binarize"], "auto");
    // Eval follows the checkpoint, with the run's data or the same file named again.
    let nll = last_test_nll(&run);
    let a = eval_nll(&["--checkpoint", s(&run)]);
    let b = eval_nll(&["--checkpoint", s(&run), "--data", s(&data)]);
    assert!((a - nll).abs() <= 1e-4 * nll && a == b, "{a} {b} {nll}");
    // --keep-levels: a 256-way model of the same values; eval follows it too.
    let kept = dir.path().join("kept");
    let out = train(s(&data), &kept, 2, &["--keep-levels"]).expect_ok();
    assert!(!out.stderr.contains("holds only 0 and 1"), "{}", out.stderr);
    let cfg = run_config(&kept);
    assert_eq!(cfg["model"]["binary"], false);
    assert_eq!(cfg["binarize"], "keep-levels");
    let c = eval_nll(&["--checkpoint", s(&kept), "--data", s(&data)]);
    let nll = last_test_nll(&kept);
    assert!((c - nll).abs() <= 1e-4 * nll, "{c} vs {nll}");
    // A binarized embedded set has no levels to keep.
    let out = train(
        "binarized-mnist",
        &dir.path().join("r"),
        1,
        &["--keep-levels"],
    );
    assert_clean_error(&out, &["--keep-levels", "binarized-mnist"]);
}

#[test]
fn grey_data_binarized_in_training_is_binarized_in_eval_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "grey.npy", (40, 6, 6, 1), 7);
    for (flags, saved) in [
        (vec!["--binarize"], serde_json::json!("threshold")),
        (
            vec!["--binarize", "stochastic", "--binarize-seed", "5"],
            serde_json::json!({"stochastic": {"seed": 5}}),
        ),
    ] {
        let run = dir.path().join(format!("run-{}", flags.len()));
        train(s(&data), &run, 2, &flags).expect_ok();
        assert_eq!(run_config(&run)["binarize"], saved);
        let nll = last_test_nll(&run);
        // The issue's case: `eval --data SAME_FILE` without repeating the flag.
        let e = eval_nll(&["--checkpoint", s(&run), "--data", s(&data)]);
        assert!((e - nll).abs() <= 1e-4 * nll, "{flags:?}: {e} vs {nll}");
        // Completing grey images binarizes them as training did.
        let png = dir.path().join("c.png");
        let npy = dir.path().join("c.npy");
        let out = pixelrnn(&[
            "sample",
            "--checkpoint",
            s(&run),
            "--n",
            "2",
            "--out",
            s(&png),
            "--npy",
            s(&npy),
            "--prefix",
            s(&data),
            "--rows",
            "3",
            "--device",
            "cpu",
        ])
        .expect_ok();
        assert!(out.stdout.contains("binary"), "{}", out.stdout);
        let drawn = pixelrnn::data::load_npy(&npy).unwrap();
        assert!(drawn.is_zero_one());
    }
    // The seed and mode are checked on resume.
    let run = dir.path().join("run-4");
    let out = train(
        s(&data),
        &run,
        3,
        &[
            "--resume",
            "--binarize",
            "stochastic",
            "--binarize-seed",
            "6",
        ],
    );
    assert_clean_error(
        &out,
        &["--resume", "--binarize-seed 5", "--binarize-seed 6"],
    );
    let out = train(
        s(&data),
        &dir.path().join("x"),
        1,
        &["--binarize-seed", "6"],
    );
    assert_clean_error(&out, &["--binarize-seed"]);
    let out = train(
        s(&data),
        &dir.path().join("y"),
        1,
        &["--binarize", "sometimes"],
    );
    assert_clean_error(&out, &["sometimes"]);
    let out = train(
        s(&data),
        &dir.path().join("z"),
        1,
        &["--binarize", "threshold", "--binarize-seed", "3"],
    );
    assert_clean_error(&out, &["--binarize-seed", "threshold"]);
    let out = train(
        "binarized-mnist",
        &dir.path().join("w"),
        1,
        &["--binarize", "dynamic"],
    );
    assert_clean_error(&out, &["binarized-mnist", "--data mnist"]);
    let out = train(
        s(&data),
        &dir.path().join("v"),
        1,
        &["--binarize", "--keep-levels"],
    );
    assert_clean_error(&out, &["--keep-levels"]);
}

/// Dynamic binarization: a resumed run equals the straight one (the draws depend on the step
/// alone), it differs from the fixed stochastic draw once an epoch has passed, and it is
/// recorded with its seed.
#[test]
fn dynamic_training_resumes_exactly_and_redraws_each_epoch() {
    let dir = tempfile::tempdir().unwrap();
    // 20 images: 18 train, so batches of 4 cross into epoch 1 at step 4.
    let data = write_npy_images(dir.path(), "grey.npy", (20, 6, 6, 1), 9);
    let dynamic = ["--binarize", "dynamic", "--eval-every", "3"];
    let straight = dir.path().join("straight");
    train(s(&data), &straight, 8, &dynamic).expect_ok();
    assert_eq!(
        run_config(&straight)["binarize"],
        serde_json::json!({"dynamic": {"seed": 0}})
    );
    let resumed = dir.path().join("resumed");
    train(s(&data), &resumed, 3, &dynamic).expect_ok();
    train(s(&data), &resumed, 8, &["--resume"]).expect_ok();
    assert!(weights(&straight) == weights(&resumed), "resume differs");
    let fixed = dir.path().join("fixed");
    train(
        s(&data),
        &fixed,
        8,
        &["--binarize", "stochastic", "--eval-every", "3"],
    )
    .expect_ok();
    assert!(
        weights(&straight) != weights(&fixed),
        "no fresh draw after epoch 0"
    );
    // Both are scored on the same test draw: evaluating one with the other's flags agrees.
    let a = eval_nll(&["--checkpoint", s(&straight)]);
    let b = eval_nll(&["--checkpoint", s(&straight), "--binarize", "stochastic"]);
    assert_eq!(a, b);
}

#[test]
fn embedded_stochastic_set_trains_and_records_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = train(
        "binarized-mnist-stochastic",
        &run,
        1,
        &["--binarize-seed", "4"],
    )
    .expect_ok();
    assert!(
        out.stderr
            .contains("on binarized-mnist-stochastic (9000 train / 1000 test"),
        "{}",
        out.stderr
    );
    let cfg = run_config(&run);
    assert_eq!(cfg["data"], "binarized-mnist-stochastic");
    assert_eq!(
        cfg["binarize"],
        serde_json::json!({"stochastic": {"seed": 4}})
    );
    assert_eq!(cfg["model"]["binary"], true);
    let nll = last_test_nll(&run);
    let e = eval_nll(&["--checkpoint", s(&run)]);
    assert!((e - nll).abs() <= 1e-4 * nll, "{e} vs {nll}");
}
