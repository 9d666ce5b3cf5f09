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
    /// Per-sub-pixel NLL `[images, H, W, C]` in nats, when asked for (multi-scale: stage 1's
    /// NLL of `x_s` at the positions of `x_s`, stage 2's elsewhere; it sums to the total).
    pub per_subpixel: Option<Vec<f32>>,
    /// Multi-scale: mean NLL per image of `[stage 1 (x_s), stage 2 (x | x_s)]`, nats; they sum
    /// to `nll_nats`.
    pub stages: Option<[f64; 2]>,
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
    let mut parts: Option<[f64; 2]> = None;
    let mut per = keep_per_subpixel.then(|| Vec::with_capacity(n * model.config.dims()));
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let b = model.score(backend, images, chunk, per.is_some())?;
        total += b.total;
        if let Some(s) = b.stages {
            let p = parts.get_or_insert([0.0; 2]);
            p[0] += s[0];
            p[1] += s[1];
        }
        if let (Some(per), Some(v)) = (per.as_mut(), b.per_subpixel) {
            per.extend(v);
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
        stages: parts.map(|p| [p[0] / n as f64, p[1] / n as f64]),
    })
}
