//! Cached sampling of the LSTM models at bf16 through the binary (issue 18): a tiny Row LSTM
//! and a tiny Diagonal BiLSTM trained a few steps at bf16 on the CPU, then
//! `pixelrnn sample --precision bf16` on the emulator (the CUDA backend's kernels; cached: the
//! one-position steps `<scan>_fwd_at_bf16_v1`; naive: the full forward, whose recurrences are
//! the tensor-core steps) and on the CPU, the images compared:
//!
//! - cached, emulator vs CPU, and naive, emulator vs CPU: byte for byte. Each pair rounds the
//!   same operands at the same points and differs only in the order of fp32 additions, so a
//!   draw could differ only where its uniform lies within a few fp32 ulps of a CDF boundary;
//!   the seeds are fixed, so this is deterministic (a failure means the arithmetic changed).
//! - cached vs naive at bf16: not byte for byte in general, because the paths round at
//!   different points: cached sampling's one-position convolution (`masked_conv2d_forward_at`)
//!   is fp32 at every precision while the naive path's full convolutions round their operands
//!   to bf16 (README, `--precision`), so a draw whose uniform falls between the two CDFs
//!   differs (one pixel in 128 on these models). The recurrences are not the cause: on the CPU
//!   the sampler's step is the training forward bit for bit (tests/lstm_tiles.rs), and the
//!   emulator's cached and naive images equal the CPU's. What holds, and is asserted: at fp32
//!   (every op unrounded) cached and naive are equal byte for byte on the emulator, and at
//!   bf16 they differ in at most an eighth of the pixels.
//!
//! What this does not catch: a one-position step that skipped the rounding. With the fp32
//! kernel selected at bf16 (a temporary edit of cuda/lstm_at.rs, run and reverted) every image
//! here was the same, also at n = 16 and h = 16 or after 40 training steps: the tiny models'
//! logits move too little to flip a draw. tests/cuda/lstm_at_precision.rs catches it.
//!
//! Tiny models on generated 8 x 8 data, n = 2: a few seconds on two cores.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{has_kernels, pixelrnn, s, sample_npy, write_npy_images, TINY};

/// A tiny `model` trained 3 steps at bf16 on the CPU in `dir/<model>`; its run folder.
fn trained(dir: &Path, data: &Path, model: &str) -> PathBuf {
    let run = dir.join(model);
    let mut args = vec!["train", "--data", s(data), "--model", model];
    args.extend(TINY);
    args.extend(["--steps", "3", "--precision", "bf16", "--out", s(&run)]);
    pixelrnn(&args).expect_ok();
    run
}

/// `pixelrnn sample` of 2 images from `run` at `precision` with `method` on `device`: the
/// pixels.
fn sample(run: &Path, precision: &str, device: &str, method: &str) -> Vec<u8> {
    let name = format!("{precision}-{device}-{method}");
    let args = [
        "--n",
        "2",
        "--seed",
        "11",
        "--precision",
        precision,
        "--method",
        method,
        "--device",
        device,
    ];
    let (out, images) = sample_npy(run, run, &name, &args);
    assert!(
        out.stdout.contains(&format!(", {precision})")),
        "sample on {device} ({method}) names {precision}:\n{}",
        out.stdout
    );
    assert_eq!(
        (images.n, images.height, images.width, images.channels),
        (2, 8, 8, 1),
        "{device} {method}"
    );
    images.pixels
}

#[test]
fn lstm_models_sample_at_bf16_on_the_emulator_as_on_the_cpu() {
    if !has_kernels() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = write_npy_images(dir.path(), "grey.npy", (40, 8, 8, 1), 5);
    for model in ["row-lstm", "diag-bilstm"] {
        let run = trained(dir.path(), &data, model);
        let emu_cached = sample(&run, "bf16", "emulator", "cached");
        let emu_naive = sample(&run, "bf16", "emulator", "naive");
        let cpu_cached = sample(&run, "bf16", "cpu", "cached");
        let cpu_naive = sample(&run, "bf16", "cpu", "naive");
        assert_eq!(
            emu_cached, cpu_cached,
            "{model}: cached sampling at bf16, emulator vs cpu"
        );
        assert_eq!(
            emu_naive, cpu_naive,
            "{model}: naive sampling at bf16, emulator vs cpu"
        );
        let differ = emu_cached
            .iter()
            .zip(&emu_naive)
            .filter(|(a, b)| a != b)
            .count();
        eprintln!(
            "{model}: bf16 cached vs naive differ in {differ} of {} pixels",
            emu_cached.len()
        );
        assert!(
            8 * differ <= emu_cached.len(),
            "{model}: bf16 cached vs naive differ in {differ} of {} pixels",
            emu_cached.len()
        );
        assert_eq!(
            sample(&run, "fp32", "emulator", "cached"),
            sample(&run, "fp32", "emulator", "naive"),
            "{model}: emulator at fp32, cached vs naive"
        );
    }
}
