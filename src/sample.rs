//! Exact autoregressive sampling, naive and cached (MODELS.md, "Images, order, likelihood").
//!
//! Images are drawn sub-pixel by sub-pixel in the model's order: raster order over pixels and
//! R, G, B within a pixel. A 256-level model draws each sub-pixel from the softmax of its 256
//! logits divided by the temperature; a binary model draws a Bernoulli pixel from the sigmoid
//! of its logit divided by the temperature. Temperature 0 takes the most likely value.
//!
//! Both methods consume the same uniform draws: one `Pcg64` seeded with `seed` produces one
//! `f64` in `[0, 1)` per sampled sub-pixel and image, sub-pixel-major and image-minor (draw
//! `s * n + b` is image `b`'s at the `s`-th sampled sub-pixel), and a value is chosen by
//! inverting the CDF on the backend ([`Backend::sample_logits`], so that only the drawn
//! values travel to the host, not the logits). So the two methods give the same images
//! whenever their logits agree to within rounding that does not move a draw across a CDF
//! boundary.
//!
//! The draw on the backend is in f32: the logits are multiplied by `1 / temperature`, each
//! uniform is rounded to the nearest f32 (and kept below 1), and the CDF is the backend's f32
//! running sum. [`draw`], the f64 reference on the host, can pick a neighbouring value where
//! `u` lies within f32 rounding of a CDF boundary (about 1e-6); the choice is deterministic
//! either way. Temperature 0 (or one so small that `1 / temperature` overflows f32) takes the
//! most likely value on the host with [`draw`].
//!
//! - [`Method::Naive`], the reference: a full forward pass of the whole batch per sub-pixel,
//!   reading the logits at the position being drawn.
//! - [`Method::Cached`]: every layer keeps the maps it reads at other positions
//!   (`nn::incremental`); after each draw only position `(i, j)` is recomputed in every layer,
//!   and the Diagonal BiLSTM's right direction once per completed row. One evaluation per
//!   channel of a pixel: features of channel group `g` at `(i, j)` depend on the channels
//!   before `g` there, never on the last channel, so nothing needs recomputing after the
//!   last channel is drawn. Images are split into chunks sampled in parallel.
//!
//! Completion (`prefix`): the first `rows` rows of each image are copied from given images and
//! the rest is sampled; the cached method runs the given rows through the layers once. A
//! multi-scale model completes the small image first (its rows inside the given rows are
//! given), then the full image.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use rayon::prelude::*;

use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::models::{Layer, Model};
use crate::nn::incremental::{ConvAt, DiagBiLstmAt, HeadAt, ResidualAt, RowLstmAt};
use crate::tensor::Tensor;

/// How images are drawn (the same images either way).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum Method {
    /// Recompute one position per layer after each draw (fast).
    #[default]
    #[serde(rename = "cached")]
    #[value(name = "cached")]
    Cached,
    /// A full forward pass per sub-pixel (the reference).
    #[serde(rename = "naive")]
    #[value(name = "naive")]
    Naive,
}

impl Method {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Cached => "cached",
            Method::Naive => "naive",
        }
    }
}

/// Given rows to complete: image `b` starts from `images.image(b % images.n)`, of which the
/// first `rows` rows are kept.
#[derive(Clone, Debug)]
pub struct Prefix {
    /// Images of the model's shape (binary models: 0/1 values).
    pub images: Images,
    /// Rows kept, `0..=height`.
    pub rows: usize,
}

/// What to draw.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Number of images.
    pub n: usize,
    /// Logits are divided by this (`0`: the most likely value).
    pub temperature: f32,
    /// Seed of the uniform draws.
    pub seed: u64,
    /// Naive or cached.
    pub method: Method,
    /// Rows to keep from given images.
    pub prefix: Option<Prefix>,
    /// Images per batch [default: cached, the images split over the threads (at most 64 per
    /// chunk); naive, up to 64 per chunk].
    pub chunk: Option<usize>,
}

impl SampleOptions {
    /// `n` images with the cached method, temperature 1.
    pub fn new(n: usize, seed: u64) -> Self {
        SampleOptions {
            n,
            temperature: 1.0,
            seed,
            method: Method::Cached,
            prefix: None,
            chunk: None,
        }
    }

    /// Checks the options against the model's configuration.
    pub fn validate(&self, model: &crate::models::ModelConfig) -> Result<()> {
        if self.n == 0 {
            return Err(Error::Config("--n must be at least 1".into()));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Config(format!(
                "--temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        if self.chunk == Some(0) {
            return Err(Error::Config("the chunk size must be positive".into()));
        }
        if let Some(p) = &self.prefix {
            let i = &p.images;
            if p.rows > model.height {
                return Err(Error::Config(format!(
                    "--rows {} is larger than the image height {}",
                    p.rows, model.height
                )));
            }
            if i.n == 0 {
                return Err(Error::Config("the --prefix file holds no images".into()));
            }
            if (i.height, i.width, i.channels) != (model.height, model.width, model.channels) {
                return Err(Error::Config(format!(
                    "--prefix images are {}x{}x{}, the model draws {}",
                    i.height,
                    i.width,
                    i.channels,
                    model.format_label()
                )));
            }
            if model.binary && !i.is_zero_one() {
                return Err(Error::Config(format!(
                    "the model is binary but the --prefix images hold values other than 0 and 1 (binarize them: v >= {} -> 1)",
                    crate::data::BINARIZE_THRESHOLD
                )));
            }
        }
        Ok(())
    }
}

/// Network input for image value `v` (as [`Model::batch`]): `v / 127.5 - 1`, or `v` for
/// binary models.
#[inline]
pub fn input_value(v: u8, binary: bool) -> f32 {
    if binary {
        v as f32
    } else {
        v as f32 / 127.5 - 1.0
    }
}

/// Draws channel `channel`'s value from one position's logits (`[logits_per_position]`, the
/// logit of value `k` of channel `c` at `k * channels + c`; binary: one logit per channel)
/// with the uniform `u` in `[0, 1)`: the smallest value whose cumulative probability exceeds
/// `u`. Probabilities are computed in f64 from `logit / temperature` (max subtracted);
/// temperature 0 gives the first most likely value. The host reference of
/// [`Backend::sample_logits`] (which samples in f32 on the backend), and the sampler's draw at
/// temperature 0.
pub fn draw(
    logits: &[f32],
    channel: usize,
    channels: usize,
    binary: bool,
    temperature: f32,
    u: f64,
) -> u8 {
    let t = temperature as f64;
    if binary {
        let l = logits[channel] as f64;
        if t == 0.0 {
            return u8::from(l > 0.0);
        }
        let p = 1.0 / (1.0 + (-l / t).exp());
        return u8::from(u < p);
    }
    let value = |k: usize| logits[k * channels + channel] as f64;
    let (mut best, mut max) = (0usize, f64::NEG_INFINITY);
    for k in 0..256 {
        if value(k) > max {
            (best, max) = (k, value(k));
        }
    }
    if t == 0.0 || !max.is_finite() {
        return best as u8;
    }
    let mut weights = [0.0f64; 256];
    let mut total = 0.0;
    for (k, w) in weights.iter_mut().enumerate() {
        *w = ((value(k) - max) / t).exp();
        total += *w;
    }
    let target = u * total;
    let mut cum = 0.0;
    let mut last = best;
    for (k, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cum += w;
            last = k;
            if target < cum {
                return k as u8;
            }
        }
    }
    last as u8
}

/// The uniform draws for `steps` sampled sub-pixels of `n` images, step-major.
pub fn uniform_draws(seed: u64, steps: usize, n: usize) -> Vec<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..steps * n).map(|_| rng.random::<f64>()).collect()
}

/// One hidden layer's incremental state.
enum LayerAt<B: Backend> {
    Residual(ResidualAt<B>),
    RowLstm(RowLstmAt<B>),
    DiagBiLstm(DiagBiLstmAt<B>),
}

/// A model evaluated one position at a time over cached maps (see the module docs).
pub struct IncrementalModel<B: Backend> {
    input: ConvAt<B>,
    /// Conditioned models: the input layer's conditioning bias map `[n, H, W, 2h]`.
    input_cond: Option<Tensor<B>>,
    /// Network input `[n, H, W, C]`.
    x: Tensor<B>,
    layers: Vec<LayerAt<B>>,
    head: HeadAt<B>,
    n: usize,
    channels: usize,
}

impl<B: Backend> Model<B> {
    /// Incremental state for `n` images: every cached map zero, nothing computed yet.
    pub fn incremental(&self, backend: &B, n: usize) -> Result<IncrementalModel<B>> {
        self.incremental_cond(backend, n, None)
    }

    /// [`Model::incremental`] for a conditioned model (a multi-scale stage 2, or the
    /// multi-scale model itself: its stage 2) given the small images `xs` `[n, s, s, C]`
    /// (network input scale): every layer's conditioning bias map is computed here, once.
    pub fn incremental_cond(
        &self,
        backend: &B,
        n: usize,
        xs: Option<&Tensor<B>>,
    ) -> Result<IncrementalModel<B>> {
        let (h, w) = (self.config.height, self.config.width);
        let map = match (&self.upsample, xs) {
            (Some(up), Some(xs)) => Some(up.forward(backend, xs)?),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "a conditioned model needs its small image (and only it does)".into(),
                ))
            }
        };
        let bias = |cb: &Option<crate::nn::CondBias<B>>| -> Result<Option<Tensor<B>>> {
            match (cb, &map) {
                (Some(cb), Some(m)) => Ok(Some(cb.conv.forward(backend, m)?)),
                _ => Ok(None),
            }
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Residual(b) => {
                        let mut at = b.incremental(backend, n, h, w)?;
                        at.cond = bias(&b.cond)?;
                        LayerAt::Residual(at)
                    }
                    Layer::RowLstm(r) => {
                        let mut at = r.incremental(backend, n, h, w)?;
                        at.cond = bias(&r.cond)?;
                        LayerAt::RowLstm(at)
                    }
                    Layer::DiagBiLstm(d) => {
                        let mut at = d.incremental(backend, n, h, w)?;
                        if let (Some(l), Some(r)) = (bias(&d.left.cond)?, bias(&d.right.cond)?) {
                            at.cond = Some((l, backend.mirror_width(&r)?));
                        }
                        LayerAt::DiagBiLstm(at)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IncrementalModel {
            input: ConvAt::new(backend, &self.input)?,
            input_cond: bias(&self.input_cond)?,
            x: Tensor::zeros(backend, &[n, h, w, self.config.channels])?,
            layers,
            head: self.head.incremental(backend)?,
            n,
            channels: self.config.channels,
        })
    }
}

impl<B: Backend> IncrementalModel<B> {
    /// Sets the network input at `(i, j)` to `values` (`[n * C]`, already scaled).
    pub fn set_input(&mut self, backend: &B, i: usize, j: usize, values: &[f32]) -> Result<()> {
        let v = Tensor::from_slice(backend, &[self.n, self.channels], values)?;
        backend.write_position(&mut self.x, i, j, &v)
    }

    /// Computes position `(i, j)` in every layer (every earlier position must be done, and
    /// every row before `i` finished with [`IncrementalModel::finish_row`]); returns the last
    /// layer's features there, `[n, 2h]`.
    pub fn step(&mut self, backend: &B, i: usize, j: usize) -> Result<Tensor<B>> {
        let mut a = self.input.at(backend, &self.x, i, j)?;
        if let Some(m) = &self.input_cond {
            a = backend.add(&a, &backend.read_position(m, i, j)?)?;
        }
        for layer in &mut self.layers {
            a = match layer {
                LayerAt::Residual(l) => l.step(backend, &a, i, j)?,
                LayerAt::RowLstm(l) => l.step(backend, &a, i, j)?,
                LayerAt::DiagBiLstm(l) => l.step(backend, &a, i, j)?,
            };
        }
        Ok(a)
    }

    /// Row `r` is complete: computes what depends on all of it (the Diagonal BiLSTM's right
    /// direction).
    pub fn finish_row(&mut self, backend: &B, r: usize) -> Result<()> {
        for layer in &mut self.layers {
            if let LayerAt::DiagBiLstm(l) = layer {
                l.finish_row(backend, r)?;
            }
        }
        Ok(())
    }

    /// Logits `[n, logits_per_position]` from [`IncrementalModel::step`]'s features.
    pub fn logits(&self, backend: &B, features: &Tensor<B>) -> Result<Tensor<B>> {
        self.head.logits(backend, features)
    }
}

/// What one chunk of images needs to know.
struct Job<'a> {
    /// Images in the whole call, and this chunk's first.
    n_total: usize,
    offset: usize,
    draws: &'a [f64],
    rows_given: usize,
    temperature: f32,
    /// Multi-scale: every image's small image (all `n_total`) and the stride r; the positions
    /// `(i*r, j*r)` are given, not drawn.
    small: Option<(&'a Images, usize)>,
}

impl Job<'_> {
    /// Whether pixel `(i, j)` is given (completion rows, or a multi-scale small image's).
    fn given(&self, i: usize, j: usize) -> bool {
        i < self.rows_given
            || self
                .small
                .is_some_and(|(_, r)| i.is_multiple_of(r) && j.is_multiple_of(r))
    }

    /// The chunk's small images `[n, s, s, C]` at network-input scale (multi-scale only).
    fn small_input<B: Backend>(&self, backend: &B, n: usize) -> Result<Option<Tensor<B>>> {
        let Some((small, _)) = self.small else {
            return Ok(None);
        };
        let d = small.dims();
        let x: Vec<f32> = small.pixels[self.offset * d..(self.offset + n) * d]
            .iter()
            .map(|&v| input_value(v, small.binary))
            .collect();
        let shape = [n, small.height, small.width, small.channels];
        Ok(Some(Tensor::from_slice(backend, &shape, &x)?))
    }
}

/// Number of sub-pixels sampled per image.
fn sampled_steps(cfg: &crate::models::ModelConfig, rows_given: usize) -> usize {
    (cfg.height - rows_given) * cfg.width * cfg.channels
}

/// The largest `f32` below 1: uniforms are kept below it after rounding to f32.
const BELOW_ONE: f32 = 1.0 - f32::EPSILON / 2.0;

/// Draws channel `c` at flat pixel `p` for every image of the chunk from `logits` `[n, L]`
/// (on the backend; see the module docs).
#[allow(clippy::too_many_arguments)]
fn draw_all<B: Backend>(
    backend: &B,
    job: &Job<'_>,
    cfg: &crate::models::ModelConfig,
    imgs: &mut [u8],
    mut logits: Tensor<B>,
    step: usize,
    p: usize,
    c: usize,
) -> Result<()> {
    let dims = cfg.dims();
    let channels = cfg.channels;
    let n = imgs.len() / dims;
    let draws = &job.draws[step * job.n_total + job.offset..][..n];
    let inv_t = 1.0 / job.temperature;
    if !inv_t.is_finite() {
        // Temperature 0: the most likely value (the uniforms are not used).
        let l = cfg.logits_per_position();
        let host = logits.to_vec(backend)?;
        for (b, &u) in draws.iter().enumerate() {
            imgs[b * dims + p * channels + c] =
                draw(&host[b * l..(b + 1) * l], c, channels, cfg.binary, 0.0, u);
        }
        return Ok(());
    }
    if inv_t != 1.0 {
        backend.scale_inplace(&mut logits, inv_t)?;
    }
    // Only column `c` is read back; the other channels draw with the same uniform unused.
    let uniforms: Vec<f32> = draws
        .iter()
        .flat_map(|&u| std::iter::repeat_n((u as f32).min(BELOW_ONE), channels))
        .collect();
    let uniforms = Tensor::from_slice(backend, &[n, channels], &uniforms)?;
    let values = backend
        .sample_logits(&logits, &uniforms, cfg.binary)?
        .to_vec(backend)?;
    for b in 0..n {
        imgs[b * dims + p * channels + c] = values[b * channels + c] as u8;
    }
    Ok(())
}

/// The network input of pixel `p` of every image of the chunk, `[n * C]`.
fn pixel_input(cfg: &crate::models::ModelConfig, imgs: &[u8], p: usize) -> Vec<f32> {
    let (dims, c) = (cfg.dims(), cfg.channels);
    imgs.chunks_exact(dims)
        .flat_map(|img| img[p * c..(p + 1) * c].iter())
        .map(|&v| input_value(v, cfg.binary))
        .collect()
}

fn cached_chunk<B: Backend>(
    backend: &B,
    model: &Model<B>,
    job: &Job<'_>,
    imgs: &mut [u8],
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let cfg = &model.config;
    let n = imgs.len() / cfg.dims();
    let xs = job.small_input(backend, n)?;
    let mut st = model.incremental_cond(backend, n, xs.as_ref())?;
    let mut step = 0;
    for i in 0..cfg.height {
        if i > 0 {
            st.finish_row(backend, i - 1)?;
        }
        for j in 0..cfg.width {
            let p = i * cfg.width + j;
            if job.given(i, j) {
                st.set_input(backend, i, j, &pixel_input(cfg, imgs, p))?;
                st.step(backend, i, j)?;
                continue;
            }
            for c in 0..cfg.channels {
                if c > 0 {
                    st.set_input(backend, i, j, &pixel_input(cfg, imgs, p))?;
                }
                let a = st.step(backend, i, j)?;
                let logits = st.logits(backend, &a)?;
                draw_all(backend, job, cfg, imgs, logits, step, p, c)?;
                step += 1;
            }
            // Later positions read this pixel; its last channel changes nothing here.
            st.set_input(backend, i, j, &pixel_input(cfg, imgs, p))?;
        }
        on_rows(n as u64);
    }
    Ok(())
}

fn naive_chunk<B: Backend>(
    backend: &B,
    model: &Model<B>,
    job: &Job<'_>,
    imgs: &mut [u8],
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let cfg = &model.config;
    let n = imgs.len() / cfg.dims();
    let shape = [n, cfg.height, cfg.width, cfg.channels];
    let xs = job.small_input(backend, n)?;
    let mut step = 0;
    for i in 0..cfg.height {
        if i >= job.rows_given {
            for j in 0..cfg.width {
                if job.given(i, j) {
                    continue;
                }
                let p = i * cfg.width + j;
                for c in 0..cfg.channels {
                    let x: Vec<f32> = imgs.iter().map(|&v| input_value(v, cfg.binary)).collect();
                    let (logits, _) = model.forward_cond(
                        backend,
                        &Tensor::from_slice(backend, &shape, &x)?,
                        xs.as_ref(),
                    )?;
                    let at = backend.read_position(&logits, i, j)?;
                    draw_all(backend, job, cfg, imgs, at, step, p, c)?;
                    step += 1;
                }
            }
        }
        on_rows(n as u64);
    }
    Ok(())
}

/// Total of the counts that [`sample`] reports through `on_rows`: `n * height` image rows.
pub fn progress_total(model: &crate::models::ModelConfig, opts: &SampleOptions) -> u64 {
    let small = model.multiscale.map_or(0, |m| m.scale);
    (opts.n * (model.height + small)) as u64
}

/// Seed of a multi-scale model's stage-2 draws: `seed ^` this (stage 1 uses `seed`).
pub const STAGE2_SEED_XOR: u64 = 0x5354_4147_4532;

/// Draws `opts.n` images from a multi-scale model: the small images `x_s` from stage 1 (seed
/// `opts.seed`), then the full images from stage 2 given them (seed
/// `opts.seed ^ STAGE2_SEED_XOR`), the positions of `x_s` copied, not drawn. Returns
/// `(small, full)`; `full[::r, ::r] == small`. Completion (`opts.prefix`, K rows): stage 1
/// keeps the first `ceil(K / r)` rows of the subsampled prefix and draws the rest of `x_s`,
/// stage 2 keeps the K rows and `x_s` and draws the rest.
pub fn sample_multiscale<B: Backend>(
    backend: &B,
    model: &Model<B>,
    opts: &SampleOptions,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<(Images, Images)> {
    let (Some(s1), Some(r)) = (model.stage1.as_deref(), model.config.cond_stride()) else {
        return Err(Error::Config("not a multi-scale model".into()));
    };
    opts.validate(&model.config)?;
    // Completion: stage 1 keeps the small image's rows that lie in the given rows (small row i
    // is full row i*r), stage 2 keeps the given rows and the small image's positions.
    let small_opts = match &opts.prefix {
        None => opts.clone(),
        Some(p) => SampleOptions {
            prefix: Some(Prefix {
                images: crate::models::subsample(&p.images, r)?,
                rows: p.rows.div_ceil(r),
            }),
            ..opts.clone()
        },
    };
    let small = sample(backend, s1, &small_opts, on_rows)?;
    let stage2 = SampleOptions {
        seed: opts.seed ^ STAGE2_SEED_XOR,
        ..opts.clone()
    };
    let full = sample_with(backend, model, &stage2, Some((&small, r)), on_rows)?;
    Ok((small, full))
}

/// The small and the full images side by side: each output image is `H x 2W`, the small image
/// enlarged `r` times (nearest) on the left, the full image on the right.
pub fn side_by_side(small: &Images, full: &Images) -> Result<Images> {
    let r = full.height / small.height.max(1);
    let (h, w, c) = (full.height, full.width, full.channels);
    let mut px = Vec::with_capacity(full.n * h * 2 * w * c);
    for b in 0..full.n {
        let (s, f) = (small.image(b), full.image(b));
        for i in 0..h {
            for j in 0..w {
                let p = ((i / r) * small.width + j / r) * c;
                px.extend_from_slice(&s[p..p + c]);
            }
            px.extend_from_slice(&f[i * w * c..(i + 1) * w * c]);
        }
    }
    Ok(Images::new(full.n, h, 2 * w, c, full.binary, px)?)
}

/// Draws `opts.n` images from `model`. `on_rows(k)` is called (from any thread) each time `k`
/// more image rows are complete; they add up to [`progress_total`].
pub fn sample<B: Backend>(
    backend: &B,
    model: &Model<B>,
    opts: &SampleOptions,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<Images> {
    if model.stage1.is_some() {
        return Ok(sample_multiscale(backend, model, opts, on_rows)?.1);
    }
    sample_with(backend, model, opts, None, on_rows)
}

fn sample_with<B: Backend>(
    backend: &B,
    model: &Model<B>,
    opts: &SampleOptions,
    small: Option<(&Images, usize)>,
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<Images> {
    let cfg = &model.config;
    opts.validate(cfg)?;
    let dims = cfg.dims();
    let rows_given = opts.prefix.as_ref().map_or(0, |p| p.rows);
    let mut pixels = vec![0u8; opts.n * dims];
    if let Some(p) = &opts.prefix {
        let keep = p.rows * cfg.width * cfg.channels;
        for (b, img) in pixels.chunks_exact_mut(dims).enumerate() {
            img[..keep].copy_from_slice(&p.images.image(b % p.images.n)[..keep]);
        }
    }
    if let Some((sm, r)) = small {
        let c = cfg.channels;
        for (b, img) in pixels.chunks_exact_mut(dims).enumerate() {
            let s = sm.image(b);
            for i in 0..sm.height {
                for j in 0..sm.width {
                    let (src, dst) = ((i * sm.width + j) * c, ((i * r) * cfg.width + j * r) * c);
                    img[dst..dst + c].copy_from_slice(&s[src..src + c]);
                }
            }
        }
    }
    let draws = uniform_draws(opts.seed, sampled_steps(cfg, rows_given), opts.n);
    let threads = rayon::current_num_threads().max(1);
    let chunk = opts.chunk.unwrap_or(match opts.method {
        Method::Cached => opts.n.div_ceil(threads).clamp(1, 64),
        Method::Naive => opts.n.min(64),
    });
    let job = |offset: usize| Job {
        n_total: opts.n,
        offset,
        draws: &draws,
        rows_given,
        temperature: opts.temperature,
        small,
    };
    match opts.method {
        Method::Cached => pixels
            .par_chunks_mut(chunk * dims)
            .enumerate()
            .map(|(k, imgs)| cached_chunk(backend, model, &job(k * chunk), imgs, on_rows))
            .collect::<Result<Vec<()>>>()?,
        Method::Naive => pixels
            .chunks_mut(chunk * dims)
            .enumerate()
            .map(|(k, imgs)| naive_chunk(backend, model, &job(k * chunk), imgs, on_rows))
            .collect::<Result<Vec<()>>>()?,
    };
    Ok(Images::new(
        opts.n,
        cfg.height,
        cfg.width,
        cfg.channels,
        cfg.binary,
        pixels,
    )?)
}

/// Upscaling factor of [`grid_png`]: small images are enlarged so that each is at least about
/// 56 pixels wide.
pub fn grid_scale(height: usize, width: usize) -> usize {
    56usize.div_ceil(height.max(width)).max(1)
}

/// Border, in output pixels, around and between the images of [`grid_png`].
pub const GRID_BORDER: usize = 2;

/// A PNG of `images` in a near-square grid (`ceil(sqrt(n))` columns), each image upscaled by
/// [`grid_scale`] (nearest neighbour), separated by a mid-grey border of [`GRID_BORDER`]
/// pixels. Grey for one channel (binary values shown as 0 and 255), RGB for three.
pub fn grid_png(images: &Images) -> Result<Vec<u8>> {
    let n = images.n.max(1);
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(1);
    let rows = n.div_ceil(cols);
    let s = grid_scale(images.height, images.width);
    let (ch, cw) = (images.height * s, images.width * s);
    let b = GRID_BORDER;
    let width = cols * (cw + b) + b;
    let height = rows * (ch + b) + b;
    let c = images.channels;
    let mut buf = vec![128u8; width * height * c];
    for k in 0..images.n {
        let (gy, gx) = (k / cols, k % cols);
        let (oy, ox) = (b + gy * (ch + b), b + gx * (cw + b));
        let img = images.image(k);
        for y in 0..ch {
            for x in 0..cw {
                let src = ((y / s) * images.width + x / s) * c;
                let dst = ((oy + y) * width + ox + x) * c;
                for q in 0..c {
                    let v = img[src + q];
                    buf[dst + q] = if images.binary {
                        v.saturating_mul(255)
                    } else {
                        v
                    };
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(if c == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Unsupported(format!("PNG encoding failed: {e}")))?;
        w.write_image_data(&buf)
            .map_err(|e| Error::Unsupported(format!("PNG encoding failed: {e}")))?;
    }
    Ok(out)
}

/// Writes [`grid_png`] of `images` to `path` atomically.
pub fn save_grid_png(path: &std::path::Path, images: &Images) -> Result<()> {
    crate::checkpoint::write_atomic(path, &grid_png(images)?)
}
