//! Exact test-set likelihood: NLL in nats per image and bits per dimension.

use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::models::Model;

/// Result of scoring a set of images.
#[derive(Clone, Debug)]
pub struct EvalResult {
    /// Images scored.
    pub images: usize,
    /// Mean NLL per image, nats.
    pub nll_nats: f64,
    /// `nll_nats / (H * W * C * ln 2)`.
    pub bits_per_dim: f64,
    /// Per-sub-pixel NLL `[images, H, W, C]` in nats, when asked for.
    pub per_subpixel: Option<Vec<f32>>,
}

/// Converts nats per image to bits per dimension.
pub fn bits_per_dim(nats_per_image: f64, dims: usize) -> f64 {
    nats_per_image / (dims as f64 * std::f64::consts::LN_2)
}

/// Scores the first `limit` images (all when `None`) in batches of `batch`.
pub fn evaluate<B: Backend>(
    backend: &B,
    model: &Model<B>,
    images: &Images,
    batch: usize,
    limit: Option<usize>,
    keep_per_subpixel: bool,
) -> Result<EvalResult> {
    let n = limit.map_or(images.n, |l| l.min(images.n));
    if n == 0 {
        return Err(Error::Config("no images to evaluate".into()));
    }
    let mut total = 0.0f64;
    let mut per = keep_per_subpixel.then(|| Vec::with_capacity(n * model.config.dims()));
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let (x, t) = model.batch(backend, images, chunk)?;
        let (logits, _) = model.forward(backend, &x)?;
        let (nll, _) = model.loss(backend, &logits, &t, 0.0)?;
        total += backend.sum(&nll)?;
        if let Some(per) = per.as_mut() {
            per.extend(nll.to_vec(backend)?);
        }
    }
    let nll_nats = total / n as f64;
    if !nll_nats.is_finite() {
        return Err(Error::NonFinite {
            what: "test NLL",
            step: 0,
        });
    }
    Ok(EvalResult {
        images: n,
        nll_nats,
        bits_per_dim: bits_per_dim(nll_nats, model.config.dims()),
        per_subpixel: per,
    })
}
