//! Class conditioning (`--condition class`): each layer's learned class bias, a table
//! `[classes, F]` whose row `label[b]` is added to the layer's gate or input-to-state
//! pre-activations at every position of image `b` ([`ClassBias`]), and [`Cond`], what a layer
//! is conditioned on (a multi-scale map, class labels, both or neither).
//!
//! The bias is the same at every position, so it cannot break causality, and a table of zeros
//! leaves every pre-activation, hence every logit, exactly as in the unconditional model. The
//! table starts at zero: a conditional model starts as the unconditional model of its seed.
//!
//! Wiring a layer: a field `class_bias: Option<ClassBias<B>>`, `ClassBias::add(&self.class_bias,
//! backend, pre, cond.labels)` on the pre-activation in the forward, and
//! `ClassBias::backward(&mut self.class_bias, backend, &dpre, cond.labels)` on its gradient in
//! the backward (plus `ClassBias::params_mut` in the layer's parameters).

use super::Param;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// What a layer's forward is conditioned on: the multi-scale conditioning map
/// `[n, H, W, F]` (a stage 2) and the class labels `[n]` (a class-conditional model), each
/// when the model has it. `Option<&Tensor>` converts to a `Cond` with only the map.
pub struct Cond<'a, B: Backend> {
    /// Multi-scale stage 2: the upsampled small image.
    pub map: Option<&'a Tensor<B>>,
    /// Class conditioning: each image's class, as floats.
    pub labels: Option<&'a Tensor<B>>,
}

impl<B: Backend> Clone for Cond<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Cond<'_, B> {}

impl<'a, B: Backend> Cond<'a, B> {
    /// Nothing: an unconditional layer.
    pub fn none() -> Self {
        Cond {
            map: None,
            labels: None,
        }
    }

    /// A map and labels.
    pub fn new(map: Option<&'a Tensor<B>>, labels: Option<&'a Tensor<B>>) -> Self {
        Cond { map, labels }
    }
}

impl<'a, B: Backend> From<Option<&'a Tensor<B>>> for Cond<'a, B> {
    fn from(map: Option<&'a Tensor<B>>) -> Self {
        Cond { map, labels: None }
    }
}

/// A layer's class bias: the table `[classes, F]`, named `{prefix}.class_bias`.
pub struct ClassBias<B: Backend> {
    /// One row per class, added to the pre-activations of that class's images.
    pub table: Param<B>,
}

impl<B: Backend> ClassBias<B> {
    /// A zero table `[classes, features]` named `{prefix}.class_bias`.
    pub fn new(backend: &B, prefix: &str, classes: usize, features: usize) -> Result<Self> {
        Ok(ClassBias {
            table: Param::new(
                backend,
                format!("{prefix}.class_bias"),
                &[classes, features],
                &vec![0.0; classes * features],
            )?,
        })
    }

    /// Number of classes (rows of the table).
    pub fn classes(&self) -> usize {
        self.table.value.shape[0]
    }

    /// `pre + table[labels]` when the layer has a class bias, else `pre`. A layer with a class
    /// bias and no labels is an error (the model checks it first; this is the layer's guard).
    pub fn add(
        this: &Option<Self>,
        backend: &B,
        pre: Tensor<B>,
        labels: Option<&Tensor<B>>,
    ) -> Result<Tensor<B>> {
        match (this, labels) {
            (Some(cb), Some(l)) => backend.class_bias_forward(&pre, &cb.table.value, l),
            (Some(cb), None) => Err(missing(&cb.table.name)),
            (None, _) => Ok(pre),
        }
    }

    /// Given the pre-activation's gradient `dpre`, stores the table's gradient (the
    /// pre-activation's input gradient is `dpre` itself).
    pub fn backward(
        this: &mut Option<Self>,
        backend: &B,
        dpre: &Tensor<B>,
        labels: Option<&Tensor<B>>,
    ) -> Result<()> {
        match (this, labels) {
            (Some(cb), Some(l)) => {
                let k = cb.classes();
                cb.table.grad = backend.class_bias_backward(dpre, l, k)?;
                Ok(())
            }
            (Some(cb), None) => Err(missing(&cb.table.name)),
            (None, _) => Ok(()),
        }
    }

    /// The bias as a whole map `[n, h, w, F]` (row `labels[b]` at every position of image `b`):
    /// what the cached sampler adds at each position. `None` without a class bias.
    pub fn map(
        this: &Option<Self>,
        backend: &B,
        labels: Option<&Tensor<B>>,
        (n, h, w): (usize, usize, usize),
    ) -> Result<Option<Tensor<B>>> {
        let Some(cb) = this else {
            return Ok(None);
        };
        let f = cb.table.value.shape[1];
        let zeros = Tensor::zeros(backend, &[n, h, w, f])?;
        Ok(Some(Self::add(this, backend, zeros, labels)?))
    }

    /// The table, if any.
    pub fn params_mut(this: &mut Option<Self>) -> Vec<&mut Param<B>> {
        match this {
            Some(cb) => vec![&mut cb.table],
            None => Vec::new(),
        }
    }
}

fn missing(name: &str) -> Error {
    Error::Config(format!(
        "{name}: this model is class-conditional and needs each image's class"
    ))
}
