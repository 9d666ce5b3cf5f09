//! Sampling speed, naive vs cached, for every model at 28x28x1 (binary, as binarized MNIST)
//! and 32x32x3 (256 levels, as CIFAR-10): images per second for a batch of N images.
//!
//! Run: `cargo bench --bench sample` (env: `SAMPLE_BENCH_N` images, default 16;
//! `SAMPLE_BENCH_NAIVE_ROWS` rows timed for the naive method, default 1; `SAMPLE_BENCH_LAYERS`,
//! `SAMPLE_BENCH_HIDDEN`, `SAMPLE_BENCH_HEAD`: model size, default the `train` defaults 7, 32,
//! 64). The cached method samples whole images. A naive step (one full forward pass of the
//! batch) costs the same at every sub-pixel, so the naive method is timed on the last
//! `SAMPLE_BENCH_NAIVE_ROWS` rows only (the rows above given through `--prefix`) and its
//! images/s extrapolated to whole images; this keeps the bench to a couple of minutes.
//!
//! Validate before timing: on the same prefix and seed, the cached method must draw exactly
//! the naive method's rows, or no time is printed for that model.

use std::time::Instant;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::data::Images;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::sample::{sample, Method, Prefix, SampleOptions};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks models by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let n = env("SAMPLE_BENCH_N", 16);
    let naive_rows = env("SAMPLE_BENCH_NAIVE_ROWS", 1).max(1);
    let (layers, hidden, head) = (
        env("SAMPLE_BENCH_LAYERS", 7),
        env("SAMPLE_BENCH_HIDDEN", 32),
        env("SAMPLE_BENCH_HEAD", 64),
    );
    let be = CpuBackend::new();
    println!(
        "sampling {n} images, {layers} layers, h = {hidden}, D = {head}, {} threads",
        rayon::current_num_threads()
    );
    println!(
        "{:<12} {:<16} {:>14} {:>14} {:>9}",
        "model", "images", "naive img/s", "cached img/s", "speedup"
    );
    for (h, w, c, binary) in [(28, 28, 1, true), (32, 32, 3, false)] {
        for kind in [
            ModelKind::PixelCnn,
            ModelKind::RowLstm,
            ModelKind::DiagBiLstm,
        ] {
            if filter
                .as_ref()
                .is_some_and(|f| !kind.name().contains(f.as_str()))
            {
                continue;
            }
            let cfg = ModelConfig {
                kind,
                height: h,
                width: w,
                channels: c,
                binary,
                layers,
                hidden,
                head,
                row_kernel: 3,
                multiscale: None,
                likelihood: pixelrnn::models::Likelihood::Softmax,
                classes: None,
            };
            let label = cfg.format_label();
            let model = Model::new(&be, cfg, 0).expect("model");
            // The given rows: a fixed pattern (any values do).
            let given = Images::new(
                1,
                h,
                w,
                c,
                binary,
                (0..h * w * c)
                    .map(|i| {
                        if binary {
                            (i % 3 == 0) as u8
                        } else {
                            (i * 37 % 256) as u8
                        }
                    })
                    .collect(),
            )
            .expect("images");
            let partial = |method| SampleOptions {
                method,
                prefix: Some(Prefix {
                    images: given.clone(),
                    rows: h - naive_rows.min(h),
                }),
                ..SampleOptions::new(n, 1)
            };
            let t0 = Instant::now();
            let naive = sample(&be, &model, &partial(Method::Naive), &|_| {}).expect("naive");
            let naive_secs = t0.elapsed().as_secs_f64() * h as f64 / naive_rows.min(h) as f64;
            let cached = sample(&be, &model, &partial(Method::Cached), &|_| {}).expect("cached");
            if cached.pixels != naive.pixels {
                println!(
                    "{:<12} {:<16} cached and naive drew different images: no time printed",
                    kind.name(),
                    label
                );
                continue;
            }
            let full = SampleOptions::new(n, 1);
            let _ = sample(&be, &model, &SampleOptions::new(n.min(2), 2), &|_| {}); // warm-up
            let t0 = Instant::now();
            sample(&be, &model, &full, &|_| {}).expect("cached");
            let cached_secs = t0.elapsed().as_secs_f64();
            let (naive_ips, cached_ips) = (n as f64 / naive_secs, n as f64 / cached_secs);
            println!(
                "{:<12} {:<16} {:>14.4} {:>14.2} {:>8.0}x",
                kind.name(),
                label,
                naive_ips,
                cached_ips,
                cached_ips / naive_ips
            );
        }
    }
}
