//! The draw of whole pixels from a logistic mixture head (`--likelihood logistic-mixture`),
//! shared by both sampling loops.
//!
//! A mixture model has one channel group: its output at `(i, j)` depends on no sub-pixel of
//! `(i, j)`, so one evaluation per pixel gives every channel's distribution, and a pixel takes
//! `C + 1` uniforms from the stream: the component's, then R, G, B's. Draw slot `q` of the
//! pixel drawn at step `s` is stream entry `(s (C + 1) + q) n + b` for image `b` (slot-major,
//! image-minor, as the softmax's one uniform per sub-pixel), and the draw itself is the
//! backend's ([`crate::backend::Backend::logistic_mixture_sample`]), so the cached and naive
//! methods, which compute the same parameters bit for bit, draw the same images.

use super::chunk::{Job, BELOW_ONE};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::models::ModelConfig;
use crate::tensor::Tensor;

/// Uniform slots per pixel: the component's, then one per channel.
pub(super) fn slots(cfg: &ModelConfig) -> usize {
    cfg.channels + 1
}

/// Draws flat pixel `p` of every image of the chunk from the mixture parameters `params`
/// `[n, P]`, with the uniforms of pixel step `step`.
pub(super) fn draw_pixel<B: Backend>(
    backend: &B,
    job: &Job<'_>,
    cfg: &ModelConfig,
    imgs: &mut [u8],
    params: &Tensor<B>,
    step: usize,
    p: usize,
) -> Result<()> {
    let k = cfg.likelihood.mixtures().expect("a mixture model");
    let (dims, c, slots) = (cfg.dims(), cfg.channels, slots(cfg));
    let n = imgs.len() / dims;
    let mut u = Vec::with_capacity(n * slots);
    for b in 0..n {
        for q in 0..slots {
            let d = job.draws[(step * slots + q) * job.n_total + job.offset + b];
            u.push((d as f32).min(BELOW_ONE));
        }
    }
    let uniforms = Tensor::from_slice(backend, &[n, slots], &u)?;
    // A temperature whose inverse overflows f32 is temperature 0, as for the softmax.
    let t = if (1.0 / job.temperature).is_finite() {
        job.temperature
    } else {
        0.0
    };
    let values = backend
        .logistic_mixture_sample(params, &uniforms, k, t)?
        .to_vec(backend)?;
    for b in 0..n {
        for ch in 0..c {
            let v = values[b * c + ch];
            if v.is_nan() {
                return Err(Error::Sampling(format!(
                    "image {} has NaN or infinite mixture parameters at pixel ({}, {}): the \
                     model's forward pass overflows (check the checkpoint's weights)",
                    job.offset + b,
                    p / cfg.width,
                    p % cfg.width,
                )));
            }
            imgs[b * dims + p * c + ch] = v as u8;
        }
    }
    Ok(())
}
