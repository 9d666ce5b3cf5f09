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
//! Class-conditional models draw image `b` of class `opts.classes[b]` (both stages of a
//! multi-scale model see it); both methods take the same classes.
//!
//! Completion (`prefix`): the first `rows` rows of each image are copied from given images and
//! the rest is sampled; the cached method runs the given rows through the layers once. A
//! multi-scale model completes the small image first (its rows inside the given rows are
//! given), then the full image.
//!
//! Files: `options.rs` (what to draw), `draw.rs` (one value from its logits, the uniforms),
//! `incremental_model.rs` (the cached method's model state), `chunk.rs` (each method's loop
//! over a chunk of images), `grid.rs` (PNG grids).

mod chunk;
mod draw;
mod grid;
mod incremental_model;
mod mixture;
mod options;

use rayon::prelude::*;

pub use draw::{draw, input_value, uniform_draws};
pub use grid::{
    grid_png, grid_png_cols, grid_scale, save_grid_png, save_grid_png_cols, side_by_side,
    GRID_BORDER,
};
pub use incremental_model::IncrementalModel;
pub use options::{Method, Prefix, SampleOptions};

use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::models::Model;
use chunk::{cached_chunk, naive_chunk, sampled_steps, Job};

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
    let mut pixels = given_pixels(cfg, opts, small);
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
        classes: opts.classes.as_deref(),
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

/// The `opts.n` images before any draw: zero, except the given rows (`opts.prefix`) and a
/// multi-scale stage 2's small image `(small, r)` at the positions `(i*r, j*r)`.
fn given_pixels(
    cfg: &crate::models::ModelConfig,
    opts: &SampleOptions,
    small: Option<(&Images, usize)>,
) -> Vec<u8> {
    let dims = cfg.dims();
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
    pixels
}
