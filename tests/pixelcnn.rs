//! PixelCNN as a whole: causality by perturbation, the blind spot, the exact uniform
//! likelihood, learning, and checkpoint round trips (MODELS.md, "What must be tested").

mod common;

use std::collections::HashSet;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::checkpoint::{self, Checkpoint, CheckpointMeta};
use pixelrnn::data::{load_dataset, Dataset, Images};
use pixelrnn::eval::evaluate;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::optim::{OptimConfig, Optimizer};
use pixelrnn::tensor::Tensor;
use pixelrnn::train::{train, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use common::models::{assert_causal, random_input, randomize_uniform, zero_output_layer};

fn config(h: usize, w: usize, c: usize, binary: bool, layers: usize, hidden: usize) -> ModelConfig {
    ModelConfig::plain(ModelKind::PixelCnn, (h, w, c), binary, (layers, hidden, 8))
}

/// Overwrites every parameter with random values, masked taps included: the convolution must
/// ignore them structurally, so causality still has to hold.
fn randomize_all(model: &mut Model<CpuBackend>, seed: u64) {
    randomize_uniform(model.params_mut(), seed, 0.6);
}

fn check_causality(cfg: ModelConfig) {
    let b = CpuBackend::new();
    let mut model = Model::new(&b, cfg.clone(), 1).unwrap();
    randomize_all(&mut model, 2);
    let x = random_input(1, &cfg, 3);
    let what = format!("PixelCNN C={}", cfg.channels);
    assert_causal(&model, &x, &what);
}

#[test]
fn causal_grey_single_channel() {
    check_causality(config(6, 7, 1, false, 2, 4));
}

#[test]
fn causal_rgb() {
    check_causality(config(5, 6, 3, false, 2, 5));
}

#[test]
fn causal_binary() {
    check_causality(config(6, 6, 1, true, 1, 4));
}

/// Spatial offsets (dy, dx) that a stack of convolutions reaches: the Minkowski sum of the
/// tap sets, written from the spec (7x7 mask A without its centre for C = 1; 3x3 mask B with
/// its centre; 1x1 layers add nothing).
fn reachable_offsets(layers: usize) -> HashSet<(i64, i64)> {
    let first: Vec<(i64, i64)> = (-3..=0)
        .flat_map(|dy| (-3..=3).map(move |dx| (dy, dx)))
        .filter(|&(dy, dx)| dy < 0 || dx < 0)
        .collect();
    let mid: Vec<(i64, i64)> = vec![(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)];
    let mut set: HashSet<(i64, i64)> = first.into_iter().collect();
    for _ in 0..layers {
        set = set
            .iter()
            .flat_map(|&(a, b)| mid.iter().map(move |&(c, d)| (a + c, b + d)))
            .collect();
    }
    set
}

#[test]
fn blind_spot_is_where_the_math_says() {
    let (h, w, layers) = (9, 12, 2);
    let cfg = config(h, w, 1, false, layers, 6);
    let b = CpuBackend::new();
    let mut model = Model::new(&b, cfg.clone(), 4).unwrap();
    randomize_all(&mut model, 5);
    let x = Tensor::from_slice(&b, &[1, h, w, 1], &random_input(1, &cfg, 6)).unwrap();
    let (logits, cache) = model.forward(&b, &x).unwrap();
    let (oy, ox) = (7usize, 5usize);
    let mut d = vec![0.0f32; logits.numel()];
    let per = cfg.logits_per_position();
    for k in 0..per {
        d[(oy * w + ox) * per + k] = ((k * 37 % 11) as f32 - 5.0) * 0.1;
    }
    let dlogits = Tensor::from_slice(&b, &logits.shape.clone(), &d).unwrap();
    let dx = model
        .backward(&b, cache, &dlogits, true)
        .unwrap()
        .unwrap()
        .to_vec(&b)
        .unwrap();
    let offsets = reachable_offsets(layers);
    let mut blind = 0;
    for y in 0..h {
        for xx in 0..w {
            let off = (y as i64 - oy as i64, xx as i64 - ox as i64);
            let reached = offsets.contains(&off);
            let g = dx[y * w + xx];
            if reached {
                assert!(
                    g != 0.0,
                    "({y},{xx}) is in the receptive field but has zero gradient"
                );
            } else {
                assert_eq!(g, 0.0, "({y},{xx}) is outside the receptive field");
            }
            let earlier = (y, xx) < (oy, ox);
            if earlier && !reached {
                blind += 1;
            }
            assert!(
                !reached || earlier,
                "({y},{xx}) is not before the output pixel"
            );
        }
    }
    // The blind spot: earlier pixels up and to the right that PixelCNN cannot see.
    assert!(blind > 0, "expected a blind spot");
    // Row above: the 7x7 layer reaches 3 to the right and 3x3 layers never widen that row;
    // each row further up gains one column per layer.
    assert!(offsets.contains(&(-1, 3)) && !offsets.contains(&(-1, 4)));
    assert!(offsets.contains(&(-3, 5)) && !offsets.contains(&(-3, 6)));
}

fn random_images(n: usize, h: usize, w: usize, c: usize, binary: bool, seed: u64) -> Images {
    let mut rng = Pcg64::seed_from_u64(seed);
    let hi = if binary { 2 } else { 256 };
    let px = (0..n * h * w * c)
        .map(|_| rng.random_range(0..hi) as u8)
        .collect();
    Images::new(n, h, w, c, binary, px).unwrap()
}

#[test]
fn zero_last_layer_is_exactly_eight_bits_per_dim() {
    let b = CpuBackend::new();
    for c in [1, 3] {
        let cfg = config(5, 4, c, false, 1, 4);
        let mut model = Model::new(&b, cfg, 7).unwrap();
        randomize_all(&mut model, 8);
        zero_output_layer(&mut model);
        let imgs = random_images(6, 5, 4, c, false, 9);
        let r = evaluate(&b, &model, &imgs, 4, None, true).unwrap();
        assert!(
            (r.bits_per_dim - 8.0).abs() < 1e-6,
            "C={c}: {}",
            r.bits_per_dim
        );
        let ln256 = 256f64.ln();
        for v in r.per_subpixel.unwrap() {
            assert!((v as f64 - ln256).abs() < 1e-6);
        }
    }
}

#[test]
fn zero_last_layer_bernoulli_is_ln2_per_pixel() {
    let b = CpuBackend::new();
    let cfg = config(5, 4, 1, true, 1, 4);
    let mut model = Model::new(&b, cfg, 7).unwrap();
    randomize_all(&mut model, 8);
    zero_output_layer(&mut model);
    let imgs = random_images(6, 5, 4, 1, true, 9);
    let r = evaluate(&b, &model, &imgs, 4, None, false).unwrap();
    assert!((r.nll_nats - 20.0 * std::f64::consts::LN_2).abs() < 1e-5);
    assert!((r.bits_per_dim - 1.0).abs() < 1e-6);
}

fn small_train_config(cfg: ModelConfig, data: &str, steps: u64, lr: f32) -> TrainConfig {
    TrainConfig {
        model: cfg,
        data: data.into(),
        binarize: pixelrnn::data::Binarize::Auto,
        optim: OptimConfig {
            lr,
            total_steps: steps,
            ..OptimConfig::default()
        },
        batch: 8,
        steps,
        eval_every: steps,
        eval_images: None,
        seed: 3,
        recurrence: Default::default(),
        precision: Default::default(),
        stage: None,
    }
}

#[test]
fn overfits_a_handful_of_images() {
    let b = CpuBackend::new();
    let imgs = random_images(8, 6, 6, 1, false, 10);
    let data = Dataset::new("handful", imgs.clone(), imgs).unwrap();
    let cfg = small_train_config(config(6, 6, 1, false, 2, 16), "handful", 300, 5e-3);
    let dir = tempfile::tempdir().unwrap();
    let mut first = None;
    let last = train(&b, &cfg, &data, dir.path(), None, &mut |ev| {
        if let pixelrnn::train::Event::Eval(m) = ev {
            first.get_or_insert(m.test_nll_nats);
        }
    })
    .unwrap();
    let start = first.unwrap();
    // Uniform random pixels: the start is about 8 bits/dim; memorising 8 images must go far
    // below it.
    assert!(start > 0.9 * 36.0 * 256f64.ln());
    assert!(
        last.test_nll_nats < 0.3 * start,
        "start {start}, end {}",
        last.test_nll_nats
    );
}

#[test]
fn default_config_learns_binarized_mnist_in_200_steps() {
    let b = CpuBackend::new();
    let data = load_dataset("binarized-mnist", false).unwrap();
    use pixelrnn::train::defaults as d;
    let mut model = config(28, 28, 1, true, d::LAYERS, d::HIDDEN);
    model.head = d::HEAD;
    let mut cfg = small_train_config(model, d::DATA, 200, OptimConfig::default().lr);
    cfg.batch = d::BATCH;
    cfg.eval_images = Some(200);
    cfg.eval_every = 100;
    let dir = tempfile::tempdir().unwrap();
    train(&b, &cfg, &data, dir.path(), None, &mut |_| {}).unwrap();
    let metrics = pixelrnn::run_dir::read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.iter().map(|m| m.step).collect::<Vec<_>>(),
        vec![0, 100, 200]
    );
    let (start, mid, end) = (
        metrics[0].test_nll_nats,
        metrics[1].test_nll_nats,
        metrics[2].test_nll_nats,
    );
    assert!(start > 400.0, "untrained model scores {start}");
    assert!(end < mid && end < 0.4 * start, "{start} -> {mid} -> {end}");
}

#[test]
fn checkpoint_round_trip_is_exact() {
    let b = CpuBackend::new();
    let cfg = config(5, 5, 3, false, 2, 4);
    let mut model = Model::new(&b, cfg.clone(), 11).unwrap();
    randomize_all(&mut model, 12);
    // Give the optimizer some state.
    let imgs = random_images(2, 5, 5, 3, false, 13);
    let (x, t) = model.batch(&b, &imgs, &[0, 1]).unwrap();
    let (logits, cache) = model.forward(&b, &x).unwrap();
    let (_, dl) = model.loss(&b, &logits, &t, 0.01).unwrap();
    model.backward(&b, cache, &dl, false).unwrap();
    let mut opt = Optimizer::new(OptimConfig::default());
    opt.step(&b, model.params_mut()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let meta = CheckpointMeta {
        model: cfg,
        train: serde_json::json!({"note": "test"}),
        step: 1,
        seconds: 0.5,
    };
    checkpoint::save(&path, &b, &mut model, Some(&opt), &meta).unwrap();
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.meta.step, 1);
    let mut loaded = ck.load_model(&b).unwrap();
    let mut opt2 = Optimizer::new(OptimConfig::default());
    ck.load_optimizer(&b, &mut loaded, &mut opt2).unwrap();
    assert_eq!(opt2.step, 1);
    for (a, c) in model.params_mut().into_iter().zip(loaded.params_mut()) {
        assert_eq!(a.name, c.name);
        assert_eq!(a.value.data, c.value.data, "{}", a.name);
    }
    let names1: Vec<_> = opt
        .named_state()
        .into_iter()
        .map(|(n, t)| (n, t.data.clone()))
        .collect();
    let names2: Vec<_> = opt2
        .named_state()
        .into_iter()
        .map(|(n, t)| (n, t.data.clone()))
        .collect();
    assert_eq!(names1, names2);
    let l1 = model.forward(&b, &x).unwrap().0.data;
    let l2 = loaded.forward(&b, &x).unwrap().0.data;
    assert_eq!(l1, l2);
}
