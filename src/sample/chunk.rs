//! One chunk of images drawn by either method: the cached loop (one position per layer after
//! each draw), the naive loop (a full forward per sub-pixel) and the draw on the backend that
//! both share.

use super::{draw, input_value};
use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::models::Model;
use crate::tensor::Tensor;

/// What one chunk of images needs to know.
pub(super) struct Job<'a> {
    /// Images in the whole call, and this chunk's first.
    pub(super) n_total: usize,
    pub(super) offset: usize,
    pub(super) draws: &'a [f64],
    pub(super) rows_given: usize,
    pub(super) temperature: f32,
    /// Multi-scale: every image's small image (all `n_total`) and the stride r; the positions
    /// `(i*r, j*r)` are given, not drawn.
    pub(super) small: Option<(&'a Images, usize)>,
    /// Class-conditional models: every image's class (all `n_total`).
    pub(super) classes: Option<&'a [usize]>,
}

impl Job<'_> {
    /// Whether pixel `(i, j)` is given (completion rows, or a multi-scale small image's).
    fn given(&self, i: usize, j: usize) -> bool {
        i < self.rows_given
            || self
                .small
                .is_some_and(|(_, r)| i.is_multiple_of(r) && j.is_multiple_of(r))
    }

    /// The chunk's labels `[n]` (class-conditional models only).
    fn labels<B: Backend>(
        &self,
        backend: &B,
        model: &Model<B>,
        n: usize,
    ) -> Result<Option<Tensor<B>>> {
        match self.classes {
            Some(c) => Ok(Some(
                model.class_tensor(backend, &c[self.offset..self.offset + n])?,
            )),
            None => Ok(None),
        }
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

/// Number of uniforms drawn per image: one per sampled sub-pixel, or for a logistic mixture
/// one per sampled pixel and slot ([`super::mixture`]).
pub(super) fn sampled_steps(cfg: &crate::models::ModelConfig, rows_given: usize) -> usize {
    let per_pixel = match cfg.likelihood.mixtures() {
        Some(_) => super::mixture::slots(cfg),
        None => cfg.channels,
    };
    (cfg.height - rows_given) * cfg.width * per_pixel
}

/// The largest `f32` below 1: uniforms are kept below it after rounding to f32.
pub(super) const BELOW_ONE: f32 = 1.0 - f32::EPSILON / 2.0;

/// Draws channel `c` at flat pixel `p` for every image of the chunk from `logits` `[n, L]`
/// (on the backend; see the docs of [`super`]).
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
    // A value drawn from non-finite logits is refused (the backend marks it NaN; see
    // `Backend::sample_logits` for why the check lives there).
    let refuse = |b: usize, scaled: bool| {
        Error::Sampling(format!(
            "image {} has NaN or infinite logits{} at pixel ({}, {}) channel {c}: the model's \
             forward pass overflows (check the checkpoint's weights)",
            job.offset + b,
            if scaled {
                " (after dividing by the temperature)"
            } else {
                ""
            },
            p / cfg.width,
            p % cfg.width,
        ))
    };
    let inv_t = 1.0 / job.temperature;
    if !inv_t.is_finite() {
        // Temperature 0: the most likely value (the uniforms are not used).
        let l = cfg.logits_per_position();
        let host = logits.to_vec(backend)?;
        for (b, &u) in draws.iter().enumerate() {
            let row = &host[b * l..(b + 1) * l];
            let finite = if cfg.binary {
                row[c].is_finite()
            } else {
                (0..256).all(|k| row[k * channels + c].is_finite())
            };
            if !finite {
                return Err(refuse(b, false));
            }
            imgs[b * dims + p * channels + c] = draw(row, c, channels, cfg.binary, 0.0, u);
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
        let v = values[b * channels + c];
        if v.is_nan() {
            return Err(refuse(b, inv_t != 1.0));
        }
        imgs[b * dims + p * channels + c] = v as u8;
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

/// Draws the chunk `imgs` with the cached method ([`super::Method::Cached`]).
pub(super) fn cached_chunk<B: Backend>(
    backend: &B,
    model: &Model<B>,
    job: &Job<'_>,
    imgs: &mut [u8],
    on_rows: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let cfg = &model.config;
    let n = imgs.len() / cfg.dims();
    let xs = job.small_input(backend, n)?;
    let labels = job.labels(backend, model, n)?;
    let mut st = model.incremental_with(backend, n, xs.as_ref(), labels.as_ref())?;
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
            if cfg.likelihood.mixtures().is_some() {
                // One channel group: the whole pixel from one evaluation.
                let a = st.step(backend, i, j)?;
                let params = st.logits(backend, &a)?;
                super::mixture::draw_pixel(backend, job, cfg, imgs, &params, step, p)?;
                step += 1;
                st.set_input(backend, i, j, &pixel_input(cfg, imgs, p))?;
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

/// Draws the chunk `imgs` with the naive method ([`super::Method::Naive`]).
pub(super) fn naive_chunk<B: Backend>(
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
    let labels = job.labels(backend, model, n)?;
    let mut step = 0;
    for i in 0..cfg.height {
        if i >= job.rows_given {
            for j in 0..cfg.width {
                if job.given(i, j) {
                    continue;
                }
                let p = i * cfg.width + j;
                if cfg.likelihood.mixtures().is_some() {
                    let x: Vec<f32> = imgs.iter().map(|&v| input_value(v, cfg.binary)).collect();
                    let (params, _) = model.forward_cond(
                        backend,
                        &Tensor::from_slice(backend, &shape, &x)?,
                        xs.as_ref(),
                    )?;
                    let at = backend.read_position(&params, i, j)?;
                    super::mixture::draw_pixel(backend, job, cfg, imgs, &at, step, p)?;
                    step += 1;
                    continue;
                }
                for c in 0..cfg.channels {
                    let x: Vec<f32> = imgs.iter().map(|&v| input_value(v, cfg.binary)).collect();
                    let (logits, _) = model.forward_with(
                        backend,
                        &Tensor::from_slice(backend, &shape, &x)?,
                        xs.as_ref(),
                        labels.as_ref(),
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
