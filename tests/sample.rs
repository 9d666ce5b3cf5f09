//! Sampling (src/sample.rs, nn/incremental.rs): the cached method draws exactly the naive
//! method's images for every model; the incremental layers give the full forward pass's
//! logits at every position; completion keeps the given rows; temperature 0 is the argmax; a
//! zero output layer samples uniformly; bad input through the binary is one clean line.
//!
//! Models are tiny (6 x 7 images, 2 layers, h = 4) with every weight perturbed at random,
//! masked taps included, so that the cached method must respect the masks exactly as the
//! full convolution does.

mod common;

use std::path::{Path, PathBuf};

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Backend;
use pixelrnn::checkpoint::{save, CheckpointMeta};
use pixelrnn::data::{load_npy, save_npy_u8, Images};
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::sample::{draw, input_value, sample, Method, Prefix, SampleOptions};
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use common::cli::{assert_clean_error, pixelrnn, s, sample_npy};
use common::models::add_noise;

const KINDS: [ModelKind; 4] = [
    ModelKind::PixelCnn,
    ModelKind::RowLstm,
    ModelKind::DiagBiLstm,
    ModelKind::GatedPixelCnn,
];
const H: usize = 6;
const W: usize = 7;

fn config(kind: ModelKind, channels: usize, binary: bool) -> ModelConfig {
    ModelConfig::plain(kind, (H, W, channels), binary, (2, 4, 8))
}

/// A model whose every parameter (masked taps included) has random noise added.
fn model(kind: ModelKind, channels: usize, binary: bool, seed: u64) -> Model<CpuBackend> {
    let be = CpuBackend::new();
    let mut m = Model::new(&be, config(kind, channels, binary), seed).unwrap();
    add_noise(m.params_mut(), seed ^ 0x5eed, 0.3);
    m
}

fn opts(n: usize, seed: u64, method: Method) -> SampleOptions {
    SampleOptions {
        method,
        ..SampleOptions::new(n, seed)
    }
}

fn run(m: &Model<CpuBackend>, o: &SampleOptions) -> Images {
    sample(&CpuBackend::new(), m, o, &|_| {}).unwrap()
}

fn label(kind: ModelKind, c: usize, binary: bool) -> String {
    format!("{} C={c} binary={binary}", kind.name())
}

#[test]
fn cached_equals_naive_for_every_model() {
    let mut failures = Vec::new();
    for kind in KINDS {
        for c in [1, 3] {
            for binary in [false, true] {
                let m = model(kind, c, binary, 11);
                let naive = run(&m, &opts(3, 5, Method::Naive));
                let cached = run(&m, &opts(3, 5, Method::Cached));
                // Chunking (images sampled in parallel groups) changes nothing either.
                let chunked = run(
                    &m,
                    &SampleOptions {
                        chunk: Some(1),
                        ..opts(3, 5, Method::Cached)
                    },
                );
                if naive.pixels != cached.pixels || chunked.pixels != cached.pixels {
                    failures.push(label(kind, c, binary));
                }
                // Not a trivial image: several distinct values were drawn.
                let mut seen = naive.pixels.clone();
                seen.sort_unstable();
                seen.dedup();
                assert!(
                    seen.len() > 1,
                    "{}: constant images",
                    label(kind, c, binary)
                );
            }
        }
    }
    assert!(failures.is_empty(), "cached != naive for {failures:?}");
}

/// Teacher-forced: with a whole random image given, the incremental model's logits at every
/// position equal the full forward pass's (to float rounding).
#[test]
fn incremental_logits_match_forward_at_every_position() {
    let be = CpuBackend::new();
    for kind in KINDS {
        for c in [1, 3] {
            let m = model(kind, c, false, 3);
            let n = 2;
            let mut rng = Pcg64::seed_from_u64(9);
            let img: Vec<u8> = (0..n * H * W * c).map(|_| rng.random()).collect();
            let x: Vec<f32> = img.iter().map(|&v| input_value(v, false)).collect();
            let xt = Tensor::from_slice(&be, &[n, H, W, c], &x).unwrap();
            let (full, _) = m.forward(&be, &xt).unwrap();
            let mut st = m.incremental(&be, n).unwrap();
            let mut worst = 0.0f32;
            for i in 0..H {
                if i > 0 {
                    st.finish_row(&be, i - 1).unwrap();
                }
                for j in 0..W {
                    st.set_input(&be, i, j, &be.read_position(&xt, i, j).unwrap().data)
                        .unwrap();
                    let a = st.step(&be, i, j).unwrap();
                    let got = st.logits(&be, &a).unwrap().to_vec(&be).unwrap();
                    let want = be.read_position(&full, i, j).unwrap().data;
                    for (g, w) in got.iter().zip(&want) {
                        worst = worst.max((g - w).abs() / (1.0 + w.abs()));
                    }
                }
            }
            assert!(
                worst < 1e-4,
                "{}: incremental logits differ from the forward pass by {worst}",
                label(kind, c, false)
            );
        }
    }
}

#[test]
fn completion_keeps_the_given_rows() {
    for kind in KINDS {
        let m = model(kind, 3, false, 21);
        let mut rng = Pcg64::seed_from_u64(1);
        // Two given images for five samples: image b completes given image b mod 2.
        let given = Images::new(
            2,
            H,
            W,
            3,
            false,
            (0..2 * H * W * 3).map(|_| rng.random()).collect(),
        )
        .unwrap();
        for rows in [0, 3, H] {
            let mk = |method| SampleOptions {
                prefix: Some(Prefix {
                    images: given.clone(),
                    rows,
                }),
                ..opts(5, 2, method)
            };
            let cached = run(&m, &mk(Method::Cached));
            let naive = run(&m, &mk(Method::Naive));
            assert_eq!(cached.pixels, naive.pixels, "{} rows {rows}", kind.name());
            let keep = rows * W * 3;
            for b in 0..5 {
                assert_eq!(
                    &cached.image(b)[..keep],
                    &given.image(b % 2)[..keep],
                    "{}: image {b} changed its first {rows} rows",
                    kind.name()
                );
            }
            if rows < H {
                // The rest is sampled, not copied.
                let rest = |b: usize| cached.image(b)[keep..].to_vec();
                assert_ne!(rest(0), given.image(0)[keep..].to_vec());
            }
        }
    }
}

/// Temperature 0 gives, at every sub-pixel, the most likely value given everything before it
/// (checked with one forward pass of the finished images: the model is causal).
#[test]
fn temperature_zero_is_the_argmax_image() {
    let be = CpuBackend::new();
    for kind in KINDS {
        for c in [1, 3] {
            let m = model(kind, c, false, 8);
            let o = SampleOptions {
                temperature: 0.0,
                ..opts(2, 4, Method::Cached)
            };
            let imgs = run(&m, &o);
            // A tiny temperature agrees with 0, and the seed does not matter.
            let cold = run(
                &m,
                &SampleOptions {
                    temperature: 1e-6,
                    seed: 99,
                    ..o.clone()
                },
            );
            assert_eq!(imgs.pixels, cold.pixels, "{}", label(kind, c, false));
            let x: Vec<f32> = imgs.pixels.iter().map(|&v| input_value(v, false)).collect();
            let (logits, _) = m
                .forward(&be, &Tensor::from_slice(&be, &[2, H, W, c], &x).unwrap())
                .unwrap();
            let l = logits.to_vec(&be).unwrap();
            for (pos, px) in imgs.pixels.chunks_exact(c).enumerate() {
                let row = &l[pos * 256 * c..(pos + 1) * 256 * c];
                for (ch, &v) in px.iter().enumerate() {
                    let best = (0..256)
                        .max_by(|&a, &b| {
                            row[a * c + ch].total_cmp(&row[b * c + ch]).then(b.cmp(&a))
                        })
                        .unwrap();
                    assert_eq!(v as usize, best, "{} position {pos}", label(kind, c, false));
                }
            }
        }
    }
}

/// A model whose last layer is all zeros has uniform logits: every value equally likely.
#[test]
fn zero_output_layer_samples_uniformly() {
    let be = CpuBackend::new();
    for kind in KINDS {
        for binary in [false, true] {
            let mut m = model(kind, 1, binary, 2);
            for p in m.head.logits.params_mut() {
                p.value = Tensor::zeros(&be, &p.value.shape.clone()).unwrap();
            }
            let imgs = run(&m, &opts(64, 17, Method::Cached));
            let draws = imgs.pixels.len() as f64; // 64 * 42 = 2688
            if binary {
                // Mean of 2688 fair coins: sd 0.0096; allow 4.5 sd.
                let mean = imgs.pixels.iter().map(|&v| v as f64).sum::<f64>() / draws;
                assert!((mean - 0.5).abs() < 0.044, "{}: mean {mean}", kind.name());
            } else {
                // Chi-square over 16 bins of 16 values (15 dof: mean 15, sd 5.5);
                // 45 is p < 1e-4.
                let mut bins = [0f64; 16];
                for &v in &imgs.pixels {
                    bins[v as usize / 16] += 1.0;
                }
                let e = draws / 16.0;
                let chi2: f64 = bins.iter().map(|&o| (o - e) * (o - e) / e).sum();
                assert!(chi2 < 45.0, "{}: chi-square {chi2} ({bins:?})", kind.name());
                // And over all 256 values (255 dof: mean 255, sd 22.6): below 255 + 5 sd.
                let mut all = [0f64; 256];
                for &v in &imgs.pixels {
                    all[v as usize] += 1.0;
                }
                let e = draws / 256.0;
                let chi2: f64 = all.iter().map(|&o| (o - e) * (o - e) / e).sum();
                assert!(chi2 < 368.0, "{}: 256-bin chi-square {chi2}", kind.name());
            }
        }
    }
}

#[test]
fn draw_inverts_the_cdf() {
    // Two channels; channel 1 has all its mass on values 3 and 200 (equal logits).
    let mut l = vec![-1e9f32; 512];
    l[3 * 2 + 1] = 0.0;
    l[200 * 2 + 1] = 0.0;
    assert_eq!(draw(&l, 1, 2, false, 1.0, 0.0), 3);
    assert_eq!(draw(&l, 1, 2, false, 1.0, 0.49), 3);
    assert_eq!(draw(&l, 1, 2, false, 1.0, 0.51), 200);
    assert_eq!(draw(&l, 1, 2, false, 1.0, 0.999_999), 200);
    assert_eq!(draw(&l, 1, 2, false, 0.0, 0.9), 3, "ties: the first");
    // Binary: P(1) = sigmoid(l / T).
    assert_eq!(draw(&[0.0], 0, 1, true, 1.0, 0.49), 1);
    assert_eq!(draw(&[0.0], 0, 1, true, 1.0, 0.51), 0);
    assert_eq!(draw(&[2.0], 0, 1, true, 0.0, 0.99), 1);
    assert_eq!(draw(&[-2.0], 0, 1, true, 0.0, 0.0), 0);
}

// ------------------------------------------------------------------------- through the binary

/// Saves `model` as a checkpoint file in `dir`.
fn checkpoint(dir: &Path, mut m: Model<CpuBackend>) -> PathBuf {
    let path = dir.join("model.safetensors");
    let meta = CheckpointMeta {
        model: m.config.clone(),
        train: serde_json::Value::Null,
        step: 0,
        seconds: 0.0,
    };
    save(&path, &CpuBackend::new(), &mut m, None, &meta).unwrap();
    path
}

#[test]
fn cli_writes_grid_and_npy_and_methods_agree() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path(), model(ModelKind::DiagBiLstm, 3, false, 4));
    let mut arrays = Vec::new();
    for method in ["cached", "naive"] {
        let args = [
            "--n", "5", "--method", method, "--seed", "3", "--device", "cpu",
        ];
        let (out, a) = sample_npy(&ck, dir.path(), method, &args);
        let png = dir.path().join(format!("{method}.png"));
        assert!(out.stdout.contains("images/s"), "{}", out.stdout);
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        // 5 images: 3 columns x 2 rows of 6x7 images upscaled 8x, 2-pixel borders.
        let scale = pixelrnn::sample::grid_scale(H, W);
        assert_eq!(info.width as usize, 3 * (W * scale + 2) + 2);
        assert_eq!(info.height as usize, 2 * (H * scale + 2) + 2);
        assert_eq!((a.n, a.height, a.width, a.channels), (5, H, W, 3));
        arrays.push(a.pixels);
    }
    assert_eq!(
        arrays[0], arrays[1],
        "cached and naive differ through the binary"
    );
}

#[test]
fn cli_bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = checkpoint(d, model(ModelKind::PixelCnn, 1, true, 1));
    let png = d.join("x.png");
    let (ck_s, png_s) = (s(&ck), s(&png));
    // One-image prefixes: 5 x 7 (the wrong shape), grey levels (not binary), 0/1 (good).
    let prefix = |name: &str, h: usize, w: usize, value: u8| {
        let path = d.join(name);
        save_npy_u8(
            &path,
            &Images::new(1, h, w, 1, false, vec![value; h * w]).unwrap(),
        )
        .unwrap();
        path
    };
    let wrong_shape = prefix("wrong.npy", 5, 7, 0);
    let grey = prefix("grey.npy", H, W, 200);
    let ok01 = prefix("ok.npy", H, W, 1);
    let missing = d.join("nope");
    let no_dir_png = d.join("no/such/dir/x.png");
    let base = |extra: &[&str]| {
        let mut a = vec!["sample", "--device", "cpu"];
        a.extend(extra);
        pixelrnn(&a)
    };
    // (--checkpoint, --out, further flags, what the error must mention).
    let cases: [(&str, &str, &[&str], &[&str]); 11] = [
        (s(&missing), png_s, &[], &["nope"]),
        (ck_s, png_s, &["--n", "0"], &["--n"]),
        (ck_s, s(&no_dir_png), &[], &["--out", "does not exist"]),
        (ck_s, s(d), &[], &["folder"]),
        (ck_s, png_s, &["--temperature", "-1"], &["--temperature"]),
        (
            ck_s,
            png_s,
            &["--prefix", s(&ok01), "--rows", "7"],
            &["--rows", "height"],
        ),
        (
            ck_s,
            png_s,
            &["--prefix", s(&wrong_shape), "--rows", "2"],
            &["--prefix", "5x7x1"],
        ),
        (
            ck_s,
            png_s,
            &["--prefix", s(&grey), "--rows", "2"],
            &["binary"],
        ),
        (
            ck_s,
            png_s,
            &["--prefix", s(&missing), "--rows", "2"],
            &["nope"],
        ),
        (ck_s, png_s, &["--rows", "2"], &["--prefix"]),
        (ck_s, png_s, &["--prefix", s(&ok01)], &["--rows"]),
    ];
    for (checkpoint, out, extra, mentions) in cases {
        let args = [&["--checkpoint", checkpoint, "--out", out], extra].concat();
        assert_clean_error(&base(&args), mentions);
    }
    // The good prefix works and is kept.
    let npy = d.join("done.npy");
    let out = base(&[
        "--checkpoint",
        ck_s,
        "--out",
        png_s,
        "--prefix",
        s(&ok01),
        "--rows",
        "2",
        "--n",
        "2",
        "--npy",
        s(&npy),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let done = load_npy(&npy).unwrap();
    assert!(done.pixels[..2 * W].iter().all(|&v| v == 1));
    assert!(done.pixels[H * W..H * W + 2 * W].iter().all(|&v| v == 1));
}

#[test]
fn train_writes_a_sample_grid() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.npy");
    let mut rng = Pcg64::seed_from_u64(5);
    let px: Vec<u8> = (0..40 * 8 * 8).map(|_| rng.random()).collect();
    save_npy_u8(&data, &Images::new(40, 8, 8, 1, false, px).unwrap()).unwrap();
    let run = dir.path().join("run");
    let out = pixelrnn(&[
        "train",
        "--data",
        s(&data),
        "--model",
        "row-lstm",
        "--layers",
        "1",
        "--hidden",
        "4",
        "--head",
        "8",
        "--batch",
        "4",
        "--steps",
        "2",
        "--eval-images",
        "4",
        "--device",
        "cpu",
        "--out",
        s(&run),
    ]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let f = std::fs::File::open(run.join("samples.png")).expect("run/samples.png");
    let reader = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .unwrap();
    let scale = pixelrnn::sample::grid_scale(8, 8);
    assert_eq!(
        reader.info().width as usize,
        4 * (8 * scale + 2) + 2,
        "a 4x4 grid"
    );
}

/// The one-position ops against the full ones at every position: `masked_conv2d_forward_at`
/// (random weights on masked taps too) and the recurrences' `*_forward_at` (bit-exact with the
/// fused path: same arithmetic).
#[test]
fn position_ops_match_full_ops() {
    use pixelrnn::backend::{ConvSpec, Mask, Recurrence};
    let be = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(42);
    let mut rand_t = |shape: &[usize]| {
        let v: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        Tensor::<CpuBackend>::from_slice(&be, shape, &v).unwrap()
    };
    let (n, h, w) = (2, 5, 6);
    let specs = [
        (ConvSpec::new(7, 7, Mask::A, 3, 3, 6), 3, 6),
        (ConvSpec::new(3, 3, Mask::B, 3, 5, 5), 5, 5),
        (ConvSpec::new(7, 7, Mask::A, 1, 1, 4), 1, 4),
        (
            ConvSpec {
                out_block: 2,
                ..ConvSpec::new(1, 3, Mask::B, 3, 4, 8)
            },
            4,
            8,
        ),
        (ConvSpec::new(1, 1, Mask::B, 3, 4, 7), 4, 7),
    ];
    for (spec, cin, cout) in specs {
        let x = rand_t(&[n, h, w, cin]);
        let wt = rand_t(&[cout, cin, spec.kh, spec.kw]);
        let b = rand_t(&[cout]);
        let full = be.masked_conv2d_forward(&x, &wt, &b, &spec).unwrap();
        let packed = be.masked_conv2d_pack(&wt, &spec).unwrap();
        for i in 0..h {
            for j in 0..w {
                let got = be
                    .masked_conv2d_forward_at(&x, &packed, &b, &spec, i, j)
                    .unwrap();
                let want = be.read_position(&full, i, j).unwrap();
                for (g, e) in got.data.iter().zip(&want.data) {
                    assert!((g - e).abs() < 1e-5, "{spec:?} at ({i}, {j}): {g} vs {e}");
                }
            }
        }
    }
    let hd = 3;
    for diagonal in [false, true] {
        let is = rand_t(&[n, h, w, 4 * hd]);
        let w_ss = rand_t(&if diagonal {
            [4 * hd, hd, 2, 1]
        } else {
            [4 * hd, hd, 1, 3]
        });
        let full = if diagonal {
            be.diag_lstm_forward(&is, &w_ss, Recurrence::Fused).unwrap()
        } else {
            be.row_lstm_forward(&is, &w_ss, Recurrence::Fused).unwrap()
        };
        let mut hm = Tensor::zeros(&be, &[n, h, w, hd]).unwrap();
        let mut cm = Tensor::zeros(&be, &[n, h, w, hd]).unwrap();
        for i in 0..h {
            for j in 0..w {
                let is_p = be.read_position(&is, i, j).unwrap();
                if diagonal {
                    be.diag_lstm_forward_at(&is_p, &w_ss, &mut hm, &mut cm, i, j)
                } else {
                    be.row_lstm_forward_at(&is_p, &w_ss, &mut hm, &mut cm, i, j)
                }
                .unwrap();
            }
        }
        assert_eq!(hm.data, full.h.data, "diagonal = {diagonal}: hidden states");
        assert_eq!(cm.data, full.c.data, "diagonal = {diagonal}: cell states");
    }
    // Positions outside the map are errors, not panics.
    let x = rand_t(&[1, 2, 2, 1]);
    assert!(be.read_position(&x, 2, 0).is_err());
}
