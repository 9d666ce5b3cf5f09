//! Models under test: randomised parameters (masked taps included), random inputs, and the
//! causality probes of MODELS.md ("What must be tested"): [`assert_causal`] on the CPU, and
//! [`assert_causal_at`] bit for bit at a precision on any backend.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::models::{Model, ModelConfig};
use pixelrnn::nn::Param;
use pixelrnn::tensor::Tensor;
use rand::Rng;
use rand_pcg::Pcg64;

use super::helpers::{host, nonzero, rng, t, uniform};

/// Replaces every parameter's value by `draw(rng, numel)`, from one stream seeded by `seed`.
fn overwrite(
    params: Vec<&mut Param<CpuBackend>>,
    seed: u64,
    mut draw: impl FnMut(&mut Pcg64, &[f32]) -> Vec<f32>,
) {
    let b = CpuBackend::new();
    let mut r = rng(seed);
    for p in params {
        let v = draw(&mut r, &host(&b, &p.value));
        p.value = t(&b, &p.value.shape.clone(), &v);
    }
}

/// Overwrites every parameter with nonzero random values of magnitude below `scale` (see
/// [`nonzero`]), masked taps included: the code must skip them structurally, as the references
/// do.
pub fn randomize(params: Vec<&mut Param<CpuBackend>>, seed: u64, scale: f32) {
    overwrite(params, seed, |r, v| nonzero(r, v.len(), scale));
}

/// Overwrites every parameter with values uniform in `[-bound, bound)`, masked taps included:
/// the convolutions must ignore them structurally, so causality still has to hold.
pub fn randomize_uniform(params: Vec<&mut Param<CpuBackend>>, seed: u64, bound: f32) {
    overwrite(params, seed, |r, v| uniform(r, v.len(), -bound, bound));
}

/// Adds noise uniform in `[-bound, bound)` to every parameter (masked taps included), so that
/// nothing is zero by accident and the initialisation's structure is kept.
pub fn add_noise(params: Vec<&mut Param<CpuBackend>>, seed: u64, bound: f32) {
    overwrite(params, seed, |r, v| {
        v.iter()
            .map(|x| x + r.random_range(-bound..bound))
            .collect()
    });
}

/// Sets the output layer's parameters to zero: every sub-pixel's distribution is uniform.
pub fn zero_output_layer(model: &mut Model<CpuBackend>) {
    let b = CpuBackend::new();
    for p in model.params_mut() {
        if p.name.starts_with("head.logits.") {
            p.value = Tensor::zeros(&b, &p.value.shape.clone()).unwrap();
        }
    }
}

/// A model of `cfg` whose every parameter is [`randomize`]d (seed `seed + 1`, scale 0.5).
pub fn random_model(cfg: &ModelConfig, seed: u64) -> Model<CpuBackend> {
    let b = CpuBackend::new();
    let mut model = Model::new(&b, cfg.clone(), seed).unwrap();
    randomize(model.params_mut(), seed + 1, 0.5);
    model
}

/// `n` network inputs of `cfg`'s shape: 0 or 1 for binary data, else uniform in `[-1, 1)`.
pub fn random_input(n: usize, cfg: &ModelConfig, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n * cfg.dims())
        .map(|_| {
            if cfg.binary {
                r.random_range(0..2) as f32
            } else {
                r.random_range(-1.0..1.0)
            }
        })
        .collect()
}

/// Logits of sub-pixel `s` (= position * C + channel) of image 0.
pub fn logits_of(logits: &[f32], cfg: &ModelConfig, s: usize) -> Vec<f32> {
    let c = cfg.channels;
    let (pos, ch) = (s / c, s % c);
    let per = cfg.logits_per_position();
    (0..per / c)
        .map(|k| logits[pos * per + k * c + ch])
        .collect()
}

/// MODELS.md, "What must be tested": perturb input sub-pixel p of the one image `x`; no output
/// sub-pixel at or before p changes (exactly); some later one does.
pub fn assert_causal(model: &Model<CpuBackend>, x: &[f32], what: &str) {
    let b = CpuBackend::new();
    let cfg = &model.config;
    let shape = [1, cfg.height, cfg.width, cfg.channels];
    let run = |x: &[f32]| host(&b, &model.forward(&b, &t(&b, &shape, x)).unwrap().0);
    let base = run(x);
    let dims = cfg.dims();
    for p in 0..dims {
        let mut xp = x.to_vec();
        xp[p] = if cfg.binary { 1.0 - xp[p] } else { xp[p] + 1.5 };
        let out = run(&xp);
        for q in 0..=p {
            assert_eq!(
                logits_of(&base, cfg, q),
                logits_of(&out, cfg, q),
                "{what}: output sub-pixel {q} changed when input sub-pixel {p} was perturbed"
            );
        }
        // Later outputs must see p (else a model that sees nothing would pass). Within the last
        // pixel only the later channels follow, and dead ReLUs there can legitimately hide p,
        // so the check stops one pixel before the end.
        if p + cfg.channels < dims {
            let changed =
                (p + 1..dims).any(|q| logits_of(&base, cfg, q) != logits_of(&out, cfg, q));
            assert!(
                changed,
                "{what}: no later output depends on input sub-pixel {p}"
            );
        }
    }
}

/// Overwrites every parameter of `model` on `be` (masked taps included) with values uniform in
/// `[-bound, bound)` from one stream seeded by `seed`: [`randomize_uniform`] on any backend.
fn randomize_uniform_on<B: Backend>(be: &B, model: &mut Model<B>, seed: u64, bound: f32) {
    let mut r = rng(seed);
    for p in model.params_mut() {
        let v = uniform(&mut r, p.value.numel(), -bound, bound);
        p.value = Tensor::from_slice(be, &p.value.shape.clone(), &v).unwrap();
    }
}

/// Causality by perturbation at `precision` on `be`, bit for bit: a model of `cfg` (seed 1)
/// with every parameter uniform in [-0.6, 0.6) (seed 2, masked taps included: the masks must
/// hold structurally, whatever the rounding) and one input uniform in [0, 1) (seed 3). Each
/// input sub-pixel p in turn is moved by 1.5; no output at or before p may change (its logits'
/// bits) and some later one must (checked up to the last pixel, as in [`assert_causal`]).
/// Messages start with `what` and the precision; `be` is left at fp32.
pub fn assert_causal_at<B: Backend>(be: &B, cfg: &ModelConfig, precision: Precision, what: &str) {
    be.set_precision(precision);
    let mut model = Model::new(be, cfg.clone(), 1).unwrap();
    randomize_uniform_on(be, &mut model, 2, 0.6);
    let x = uniform(&mut rng(3), cfg.dims(), 0.0, 1.0);
    let shape = [1, cfg.height, cfg.width, cfg.channels];
    let run = |x: &[f32]| {
        let t = Tensor::from_slice(be, &shape, x).unwrap();
        model.forward(be, &t).unwrap().0.to_vec(be).unwrap()
    };
    let base = run(&x);
    let bits = |l: &[f32], s: usize| -> Vec<u32> {
        logits_of(l, cfg, s).iter().map(|v| v.to_bits()).collect()
    };
    let (c, dims) = (cfg.channels, cfg.dims());
    for p in 0..dims {
        let mut xp = x.clone();
        xp[p] += 1.5;
        let out = run(&xp);
        for q in 0..=p {
            assert_eq!(
                bits(&base, q),
                bits(&out, q),
                "{what} at {precision}: output {q} changed when input {p} was perturbed"
            );
        }
        if p + c < dims {
            assert!(
                (p + 1..dims).any(|q| bits(&base, q) != bits(&out, q)),
                "{what} at {precision}: no later output depends on input {p}"
            );
        }
    }
    be.set_precision(Precision::Fp32);
}
