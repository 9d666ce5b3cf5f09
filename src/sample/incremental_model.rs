//! A whole model evaluated one position at a time, for the cached method: each layer's
//! per-position state (`nn::incremental`), the conditioning maps of a multi-scale stage 2 and
//! of a class-conditional model (its class biases as whole maps), and the head.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::models::{Layer, Model};
use crate::nn::gated_at::GatedStackAt;
use crate::nn::incremental::{ConvAt, DiagBiLstmAt, HeadAt, ResidualAt, RowLstmAt};
use crate::nn::{ClassBias, CondBias};
use crate::tensor::Tensor;

/// One hidden layer's incremental state.
enum LayerAt<B: Backend> {
    Residual(ResidualAt<B>),
    RowLstm(RowLstmAt<B>),
    DiagBiLstm(DiagBiLstmAt<B>),
    Gated(GatedStackAt<B>),
}

/// A model evaluated one position at a time over cached maps (see the module docs).
pub struct IncrementalModel<B: Backend> {
    /// The input layer (`None` for Gated PixelCNN: its stack reads the network input).
    input: Option<ConvAt<B>>,
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
        self.incremental_with(backend, n, None, None)
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
        self.incremental_with(backend, n, xs, None)
    }

    /// [`Model::incremental_cond`] that also takes each image's class `labels` `[n]` (a
    /// class-conditional model; else `None`): each layer's class bias joins its conditioning
    /// map, computed here once.
    pub fn incremental_with(
        &self,
        backend: &B,
        n: usize,
        xs: Option<&Tensor<B>>,
        labels: Option<&Tensor<B>>,
    ) -> Result<IncrementalModel<B>> {
        let (h, w) = (self.config.height, self.config.width);
        if self.is_class_conditional() != labels.is_some() {
            return Err(Error::Config(
                "a class-conditional model needs each image's class (and only it does)".into(),
            ));
        }
        let map = match (&self.upsample, xs) {
            (Some(up), Some(xs)) => Some(up.forward(backend, xs)?),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "a conditioned model needs its small image (and only it does)".into(),
                ))
            }
        };
        // A layer's bias map: its multi-scale conditioning plus its class bias (either, both
        // or neither), the class bias being the same at every position.
        let bias =
            |cb: &Option<CondBias<B>>, class: &Option<ClassBias<B>>| -> Result<Option<Tensor<B>>> {
                let cond = match (cb, &map) {
                    (Some(cb), Some(m)) => Some(cb.conv.forward(backend, m)?),
                    _ => None,
                };
                Ok(match cond {
                    Some(c) => Some(ClassBias::add(class, backend, c, labels)?),
                    None => ClassBias::map(class, backend, labels, (n, h, w))?,
                })
            };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(match l {
                    Layer::Residual(b) => {
                        let mut at = b.incremental(backend, n, h, w)?;
                        at.cond = bias(&b.cond, &b.class_bias)?;
                        LayerAt::Residual(at)
                    }
                    Layer::RowLstm(r) => {
                        let mut at = r.incremental(backend, n, h, w)?;
                        at.cond = bias(&r.cond, &r.class_bias)?;
                        LayerAt::RowLstm(at)
                    }
                    Layer::DiagBiLstm(d) => {
                        let mut at = d.incremental(backend, n, h, w)?;
                        let (l, r) = (
                            bias(&d.left.cond, &d.left.class_bias)?,
                            bias(&d.right.cond, &d.right.class_bias)?,
                        );
                        if let (Some(l), Some(r)) = (l, r) {
                            at.cond = Some((l, backend.mirror_width(&r)?));
                        }
                        LayerAt::DiagBiLstm(at)
                    }
                    Layer::Gated(g) => {
                        LayerAt::Gated(g.incremental_with(backend, n, h, w, labels)?)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IncrementalModel {
            input: self
                .input
                .as_ref()
                .map(|c| ConvAt::new(backend, c))
                .transpose()?,
            input_cond: bias(&self.input_cond, &self.input_class)?,
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
        let mut a = match &self.input {
            Some(input) => input.at(backend, &self.x, i, j)?,
            None => backend.read_position(&self.x, i, j)?,
        };
        if let Some(m) = &self.input_cond {
            a = backend.add(&a, &backend.read_position(m, i, j)?)?;
        }
        for layer in &mut self.layers {
            a = match layer {
                LayerAt::Residual(l) => l.step(backend, &a, i, j)?,
                LayerAt::RowLstm(l) => l.step(backend, &a, i, j)?,
                LayerAt::DiagBiLstm(l) => l.step(backend, &a, i, j)?,
                // The stack reads the network input map itself (its first layer has no
                // input convolution before it).
                LayerAt::Gated(l) => l.step(backend, &self.x, i, j)?,
            };
        }
        Ok(a)
    }

    /// Row `r` is complete: computes what depends on all of it (the Diagonal BiLSTM's right
    /// direction, Gated PixelCNN's vertical stacks).
    pub fn finish_row(&mut self, backend: &B, r: usize) -> Result<()> {
        for layer in &mut self.layers {
            match layer {
                LayerAt::DiagBiLstm(l) => l.finish_row(backend, r)?,
                LayerAt::Gated(l) => l.finish_row(backend, &self.x, r)?,
                LayerAt::Residual(_) | LayerAt::RowLstm(_) => {}
            }
        }
        Ok(())
    }

    /// Logits `[n, logits_per_position]` from [`IncrementalModel::step`]'s features.
    pub fn logits(&self, backend: &B, features: &Tensor<B>) -> Result<Tensor<B>> {
        self.head.logits(backend, features)
    }
}
