//! The training and evaluation objective of every model, multi-scale included: one batch of
//! images in, its NLL (and, when training, every gradient) out.
//!
//! Multi-scale (MODELS.md, "Multi-Scale PixelRNN"): `NLL = NLL_stage1(x_s) + NLL_stage2(x | x_s)`
//! with `x_s = x[::r, ::r]`, `r = n/s`. Stage 2 scores only the sub-pixels that are not in
//! `x_s`: those are given (stage 2 conditions on all of `x_s`), so scoring them again would
//! count them twice and make `p(x_s) p(x | x_s)` lose mass on images that disagree with their
//! own `x_s`. The product is then an exactly normalised distribution over full images.

use super::Model;
use crate::backend::Backend;
use crate::data::Images;
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::tensor::Tensor;

/// NLL of one batch, in nats, summed over its images.
#[derive(Clone, Debug)]
pub struct BatchNll {
    /// Total NLL (multi-scale: stage 1 + stage 2).
    pub total: f64,
    /// Multi-scale only: `[stage 1, stage 2]` (a stage that was not computed is 0).
    pub stages: Option<[f64; 2]>,
    /// Per-sub-pixel NLL `[n, H, W, C]` when asked for. Multi-scale: stage 1's NLL of `x_s`
    /// at the positions of `x_s`, stage 2's elsewhere (so it still sums to the total).
    pub per_subpixel: Option<Vec<f32>>,
}

/// Which stage(s) of a multi-scale model a training step trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stages {
    /// Both (one loss: the sum).
    #[default]
    Both,
    /// Stage 1 only (stage 2 is not run).
    One,
    /// Stage 2 only (stage 1 is not run).
    Two,
}

impl<B: Backend> Model<B> {
    /// The small images `x_s = x[::r, ::r]` of `indices` as stage 1's (network input,
    /// targets), both `[n, s, s, C]`.
    pub fn small_batch(
        &self,
        backend: &B,
        images: &Images,
        indices: &[usize],
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        let (Some(s1), Some(r)) = (self.stage1.as_deref(), self.config.cond_stride()) else {
            return Err(Error::Config(
                "only a multi-scale model has a small image".into(),
            ));
        };
        let sub = subsample(&images.subset(indices), r)?;
        let idx: Vec<usize> = (0..indices.len()).collect();
        s1.batch(backend, &sub, &idx)
    }

    /// Scores images `indices` (no gradients).
    pub fn score(
        &self,
        backend: &B,
        images: &Images,
        indices: &[usize],
        keep_per_subpixel: bool,
    ) -> Result<BatchNll> {
        self.run_batch(backend, images, indices, None, keep_per_subpixel)
    }

    /// One training batch: forward, loss (mean NLL per sub-pixel times `grad_scale` in the
    /// logits' gradient), backward; the gradients are stored in the parameters.
    pub fn train_batch(
        &mut self,
        backend: &B,
        images: &Images,
        indices: &[usize],
        grad_scale: f32,
        stages: Stages,
    ) -> Result<BatchNll> {
        self.train_batch_with(
            backend,
            images,
            indices,
            grad_scale,
            stages,
            &mut |_| Ok(()),
        )
    }

    /// [`Model::train_batch`] that hands each module's parameters to `done` as soon as the
    /// backward has finished their gradients ([`Model::backward_with`]; multi-scale: stage 1's
    /// modules, then stage 2's). Parameters of a stage that `stages` leaves out are not handed
    /// over.
    pub fn train_batch_with(
        &mut self,
        backend: &B,
        images: &Images,
        indices: &[usize],
        grad_scale: f32,
        stages: Stages,
        done: &mut dyn FnMut(Vec<&mut Param<B>>) -> Result<()>,
    ) -> Result<BatchNll> {
        // The forward passes take `&self`; the backward passes are replayed on `&mut self`.
        let mut pending = Vec::new();
        let out = self.run_batch(
            backend,
            images,
            indices,
            Some((grad_scale, stages, &mut pending)),
            false,
        )?;
        for p in pending {
            match p {
                Pending::Plain(cache, d) => {
                    self.backward_with(backend, cache, &d, false, done)?;
                }
                Pending::Stage1(cache, d) => {
                    let s1 = self.stage1.as_deref_mut().expect("multi-scale");
                    s1.backward_with(backend, cache, &d, false, done)?;
                }
            }
        }
        Ok(out)
    }

    fn run_batch(
        &self,
        backend: &B,
        images: &Images,
        indices: &[usize],
        mut train: Option<(f32, Stages, &mut Vec<Pending<B>>)>,
        keep: bool,
    ) -> Result<BatchNll> {
        let gs = train.as_ref().map_or(0.0, |t| t.0);
        let stages = train.as_ref().map_or(Stages::Both, |t| t.1);
        let Some(s1) = self.stage1.as_deref() else {
            if self.is_conditioned() {
                return Err(Error::Config(
                    "a conditioned model is scored as part of its multi-scale model".into(),
                ));
            }
            let (x, t) = self.batch(backend, images, indices)?;
            let labels = self.labels(backend, images, indices)?;
            let (logits, cache) = self.forward_with(backend, &x, None, labels.as_ref())?;
            let (nll, d) = self.loss(backend, &logits, &t, gs)?;
            let total = backend.sum(&nll)?;
            let per = if keep {
                Some(nll.to_vec(backend)?)
            } else {
                None
            };
            if let Some((_, _, pending)) = train.as_mut() {
                pending.push(Pending::Plain(cache, d));
            }
            return Ok(BatchNll {
                total,
                stages: None,
                per_subpixel: per,
            });
        };
        let (xs, ts) = self.small_batch(backend, images, indices)?;
        // Class-conditional: both stages see each image's class.
        let labels = self.labels(backend, images, indices)?;
        let mut parts = [0.0f64; 2];
        let mut nll1 = None;
        if stages != Stages::Two {
            let (logits, cache) = s1.forward_with(backend, &xs, None, labels.as_ref())?;
            let (nll, d) = s1.loss(backend, &logits, &ts, gs)?;
            parts[0] = backend.sum(&nll)?;
            if keep {
                nll1 = Some(nll.to_vec(backend)?);
            }
            if let Some((_, _, pending)) = train.as_mut() {
                pending.push(Pending::Stage1(cache, d));
            }
        }
        let mut nll2 = None;
        if stages != Stages::One {
            let (x, t) = self.batch(backend, images, indices)?;
            let (logits, cache) = self.forward_with(backend, &x, Some(&xs), labels.as_ref())?;
            let (mut nll, mut d) = self.loss(backend, &logits, &t, gs)?;
            self.zero_given(backend, &mut nll)?;
            if train.is_some() {
                self.zero_given(backend, &mut d)?;
            }
            parts[1] = backend.sum(&nll)?;
            if keep {
                nll2 = Some(nll.to_vec(backend)?);
            }
            if let Some((_, _, pending)) = train.as_mut() {
                pending.push(Pending::Plain(cache, d));
            }
        }
        let per = match (nll1, nll2) {
            (Some(a), Some(mut b)) => {
                self.scatter_small(&a, &mut b, indices.len());
                Some(b)
            }
            _ => None,
        };
        Ok(BatchNll {
            total: parts[0] + parts[1],
            stages: Some(parts),
            per_subpixel: per,
        })
    }

    /// Zeroes map `t` `[n, H, W, F]` at the positions of the small image (stage 2 does not
    /// score them: they are given).
    fn zero_given(&self, backend: &B, t: &mut Tensor<B>) -> Result<()> {
        let r = self.config.cond_stride().expect("multi-scale");
        let [n, h, w, f] = t.nhwc("zero_given")?;
        let zero = Tensor::zeros(backend, &[n, f])?;
        for i in (0..h).step_by(r) {
            for j in (0..w).step_by(r) {
                backend.write_position(t, i, j, &zero)?;
            }
        }
        Ok(())
    }

    /// Writes stage 1's per-sub-pixel NLL `[n, s, s, C]` into the positions of the small image
    /// in stage 2's `[n, H, W, C]`.
    fn scatter_small(&self, small: &[f32], full: &mut [f32], n: usize) {
        let cfg = &self.config;
        let r = cfg.cond_stride().expect("multi-scale");
        let (sh, sw, c) = (cfg.height / r, cfg.width / r, cfg.channels);
        for img in 0..n {
            for y in 0..sh {
                for x in 0..sw {
                    let src = ((img * sh + y) * sw + x) * c;
                    let dst = ((img * cfg.height + y * r) * cfg.width + x * r) * c;
                    full[dst..dst + c].copy_from_slice(&small[src..src + c]);
                }
            }
        }
    }
}

/// `x[::r, ::r]` of every image (MODELS.md: strided subsampling, values kept).
pub fn subsample(images: &Images, r: usize) -> Result<Images> {
    let (h, w, c) = (images.height, images.width, images.channels);
    if r == 0 || h % r != 0 || w % r != 0 {
        return Err(Error::Config(format!(
            "cannot subsample {h}x{w} images by {r}"
        )));
    }
    let (sh, sw) = (h / r, w / r);
    let mut small = Vec::with_capacity(images.n * sh * sw * c);
    for i in 0..images.n {
        let img = images.image(i);
        for y in 0..sh {
            for x in 0..sw {
                let p = ((y * r) * w + x * r) * c;
                small.extend_from_slice(&img[p..p + c]);
            }
        }
    }
    Ok(Images::new(images.n, sh, sw, c, images.binary, small)?)
}

enum Pending<B: Backend> {
    Plain(super::ForwardCache<B>, Tensor<B>),
    Stage1(super::ForwardCache<B>, Tensor<B>),
}
