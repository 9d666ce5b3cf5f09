//! Models built from a [`ModelConfig`]: the 7x7 mask-A input layer, a stack of hidden layers,
//! and the output head, with an explicit forward and backward.

mod classes;
mod config;
mod likelihood;
mod objective;
mod param_count;

pub use config::{ModelConfig, ModelKind, MultiScaleConfig, DEFAULT_ROW_KERNEL};
pub use likelihood::{Likelihood, DEFAULT_MIXTURES, MAX_MIXTURES};
pub use objective::{subsample, BatchNll, Stages};

use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::backend::{Backend, ConvSpec, Mask, Recurrence};
use crate::data::Images;
use crate::error::{Error, Result};
use crate::nn::{
    ClassBias, Cond, CondBias, DiagBiLstm, DiagBiLstmCache, GatedStack, GatedStackCache, HeadCache,
    MaskedConv2d, OutputHead, Param, ResidualBlock, ResidualCache, RowLstm, RowLstmCache, Upsample,
};
use crate::tensor::Tensor;

/// One hidden layer of a model.
// A model holds a handful of layers, built once: the size spread between variants is no cost.
#[allow(clippy::large_enum_variant)]
pub enum Layer<B: Backend> {
    /// PixelCNN residual block.
    Residual(ResidualBlock<B>),
    /// Row LSTM layer.
    RowLstm(RowLstm<B>),
    /// Diagonal BiLSTM layer.
    DiagBiLstm(DiagBiLstm<B>),
    /// Every layer of a Gated PixelCNN (the model's only entry of `layers`): its first layer
    /// reads the image, and the head reads the sum of its skip projections.
    Gated(GatedStack<B>),
}

enum LayerCache<B: Backend> {
    Residual(ResidualCache<B>),
    RowLstm(RowLstmCache<B>),
    DiagBiLstm(DiagBiLstmCache<B>),
    Gated(GatedStackCache<B>),
}

/// Everything a forward pass keeps for its backward.
pub struct ForwardCache<B: Backend> {
    x: Tensor<B>,
    /// Conditioned models: the small image and its conditioning map.
    cond: Option<(Tensor<B>, Tensor<B>)>,
    /// Class-conditional models: each image's class.
    labels: Option<Tensor<B>>,
    layer_inputs: Vec<LayerCache<B>>,
    head: HeadCache<B>,
}

/// A model on backend `B`.
pub struct Model<B: Backend> {
    /// Architecture.
    pub config: ModelConfig,
    /// 7x7 mask-A convolution, C -> 2h (`None` for Gated PixelCNN, whose first layer reads
    /// the image itself).
    pub input: Option<MaskedConv2d<B>>,
    /// Hidden layers.
    pub layers: Vec<Layer<B>>,
    /// Output head.
    pub head: OutputHead<B>,
    /// How the recurrent layers run their recurrence (a run-time choice: same numbers).
    pub recurrence: Recurrence,
    /// Conditioned models (a multi-scale stage 2): the transposed convolution from the small
    /// image to the conditioning map.
    pub upsample: Option<Upsample<B>>,
    /// Conditioned models: the input layer's conditioning bias (C -> 2h map, added to the 7x7
    /// convolution's output). Every hidden layer carries its own.
    pub input_cond: Option<CondBias<B>>,
    /// Class-conditional models: the input layer's class bias (`[K, 2h]`, added to the 7x7
    /// convolution's output). Every hidden layer carries its own.
    pub input_class: Option<ClassBias<B>>,
    /// Multi-scale models: stage 1, the unconditional model of the small image (this model's
    /// own layers are stage 2).
    pub stage1: Option<Box<Model<B>>>,
}

impl<B: Backend> Model<B> {
    /// A freshly initialised model; the same `seed` gives the same weights on every backend.
    pub fn new(backend: &B, config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        // Values and gradients, 4 bytes each, before the first weight is allocated.
        let params = config.estimated_params();
        crate::memory::check_fits(
            || format!("the {} ({params} parameters)", config.summary()),
            params * 8,
        )?;
        if config.kind == ModelKind::MultiScale {
            // Stage 1 from `seed`, stage 2 from a derived seed; names `stage1.*`, `stage2.*`.
            let mut stage1 = Model::new(backend, config.stage1_config(), seed)?;
            let mut stage2 = Model::new(
                backend,
                config.stage2_config(),
                seed ^ 0x5354_4147_4532_0000,
            )?;
            for p in stage1.params_mut() {
                p.name = format!("stage1.{}", p.name);
            }
            for p in stage2.params_mut() {
                p.name = format!("stage2.{}", p.name);
            }
            stage2.config = config;
            stage2.stage1 = Some(Box::new(stage1));
            return Ok(stage2);
        }
        let mut rng = Pcg64::seed_from_u64(seed);
        let c = config.channels;
        // Channel groups: C for the softmax, 1 for the logistic mixture (whole pixels).
        let g = config.groups();
        let h2 = 2 * config.hidden;
        if config.kind == ModelKind::GatedPixelCnn {
            let mut stack = GatedStack::new(backend, config.layers, config.hidden, c, g, &mut rng)?;
            if let Some(k) = config.classes {
                // Zero tables after every weight: as the other models' (below).
                stack.add_class_bias(backend, k)?;
            }
            let head = OutputHead::new(
                backend,
                h2,
                config.head,
                config.logits_per_position(),
                g,
                &mut rng,
            )?;
            return Ok(Model {
                config,
                input: None,
                layers: vec![Layer::Gated(stack)],
                head,
                recurrence: Recurrence::default(),
                upsample: None,
                input_cond: None,
                input_class: None,
                stage1: None,
            });
        }
        let input = Some(MaskedConv2d::new(
            backend,
            "input",
            c,
            h2,
            ConvSpec::new(7, 7, Mask::A, g, c, h2),
            &mut rng,
        )?);
        let layers = (0..config.layers)
            .map(|l| {
                let prefix = format!("layers.{l}");
                match config.kind {
                    ModelKind::PixelCnn => Ok(Layer::Residual(ResidualBlock::new(
                        backend,
                        &prefix,
                        config.hidden,
                        g,
                        &mut rng,
                    )?)),
                    ModelKind::RowLstm => Ok(Layer::RowLstm(RowLstm::new(
                        backend,
                        &prefix,
                        config.hidden,
                        config.row_kernel,
                        g,
                        &mut rng,
                    )?)),
                    ModelKind::DiagBiLstm => Ok(Layer::DiagBiLstm(DiagBiLstm::new(
                        backend,
                        &prefix,
                        config.hidden,
                        g,
                        &mut rng,
                    )?)),
                    other => Err(Error::Unsupported(format!(
                        "model '{}' is not built yet",
                        other.name()
                    ))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let head = OutputHead::new(
            backend,
            h2,
            config.head,
            config.logits_per_position(),
            g,
            &mut rng,
        )?;
        let mut model = Model {
            config,
            input,
            layers,
            head,
            recurrence: Recurrence::default(),
            upsample: None,
            input_cond: None,
            input_class: None,
            stage1: None,
        };
        // Class tables start at zero (no draws from the weight stream): the conditional model
        // starts as the unconditional model of the same seed.
        if let Some(k) = model.config.classes {
            let hid = model.config.hidden;
            model.input_class = Some(ClassBias::new(backend, "input", k, h2)?);
            for (l, layer) in model.layers.iter_mut().enumerate() {
                let p = format!("layers.{l}");
                match layer {
                    Layer::Residual(b) => b.class_bias = Some(ClassBias::new(backend, &p, k, hid)?),
                    Layer::RowLstm(x) => {
                        x.class_bias = Some(ClassBias::new(backend, &p, k, 4 * hid)?)
                    }
                    Layer::DiagBiLstm(x) => {
                        let (pl, pr) = (format!("{p}.left"), format!("{p}.right"));
                        x.left.class_bias = Some(ClassBias::new(backend, &pl, k, 4 * hid)?);
                        x.right.class_bias = Some(ClassBias::new(backend, &pr, k, 4 * hid)?);
                    }
                    Layer::Gated(_) => unreachable!("a gated model returned above"),
                }
            }
        }
        // Conditioning weights come after every other weight from the same stream, so a
        // conditioned model has the unconditioned model's weights for the same seed.
        if let (Some(ms), Some(r)) = (model.config.multiscale, model.config.cond_stride()) {
            let f = ms.cond_features;
            let hid = model.config.hidden;
            model.upsample = Some(Upsample::new(backend, "upsample", c, f, r, &mut rng)?);
            model.input_cond = Some(CondBias::new(backend, "input", f, h2, c, &mut rng)?);
            for (l, layer) in model.layers.iter_mut().enumerate() {
                let p = format!("layers.{l}");
                match layer {
                    Layer::Residual(b) => {
                        b.cond = Some(CondBias::new(backend, &p, f, hid, c, &mut rng)?)
                    }
                    Layer::RowLstm(x) => {
                        x.cond = Some(CondBias::new(backend, &p, f, 4 * hid, c, &mut rng)?)
                    }
                    Layer::DiagBiLstm(x) => {
                        let (pl, pr) = (format!("{p}.left"), format!("{p}.right"));
                        x.left.cond = Some(CondBias::new(backend, &pl, f, 4 * hid, c, &mut rng)?);
                        x.right.cond = Some(CondBias::new(backend, &pr, f, 4 * hid, c, &mut rng)?);
                    }
                    Layer::Gated(_) => unreachable!("ModelConfig::validate refuses a gated base"),
                }
            }
        }
        Ok(model)
    }

    /// Sets how the recurrent layers (of both stages) run their recurrence.
    pub fn set_recurrence(&mut self, rec: Recurrence) {
        self.recurrence = rec;
        if let Some(s1) = self.stage1.as_mut() {
            s1.set_recurrence(rec);
        }
    }

    /// Whether this model needs a small image ([`Model::forward_cond`]).
    pub fn is_conditioned(&self) -> bool {
        self.upsample.is_some()
    }

    /// Whether this model is class-conditional (`--condition class`): its forward needs each
    /// image's class ([`Model::forward_with`]).
    pub fn is_class_conditional(&self) -> bool {
        self.config.classes.is_some()
    }

    /// Logits `[n, H, W, logits_per_position]` for network input `x` `[n, H, W, C]`.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, ForwardCache<B>)> {
        self.forward_with(backend, x, None, None)
    }

    /// Forward of a conditioned model (a multi-scale stage 2; for a multi-scale model, its
    /// stage 2): `xs` is the small image `[n, s, s, C]`, scaled like the network input.
    /// Unconditioned models take `None`.
    pub fn forward_cond(
        &self,
        backend: &B,
        x: &Tensor<B>,
        xs: Option<&Tensor<B>>,
    ) -> Result<(Tensor<B>, ForwardCache<B>)> {
        self.forward_with(backend, x, xs, None)
    }

    /// The forward of every model: `xs` the small image of a multi-scale stage 2 (else
    /// `None`), `labels` `[n]` each image's class for a class-conditional model
    /// ([`Model::labels`]; else `None`).
    pub fn forward_with(
        &self,
        backend: &B,
        x: &Tensor<B>,
        xs: Option<&Tensor<B>>,
        labels: Option<&Tensor<B>>,
    ) -> Result<(Tensor<B>, ForwardCache<B>)> {
        let [n, h, w, c] = x.nhwc("Model::forward")?;
        match (self.config.classes, labels) {
            (Some(_), None) => {
                return Err(Error::Config(
                    "this model is class-conditional: it needs each image's class".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "this model is not class-conditional: it takes no classes".into(),
                ))
            }
            (Some(_), Some(l)) if l.shape != [n] => {
                return Err(Error::shape(
                    "Model::forward",
                    format!("labels should be [{n}], got {:?}", l.shape),
                ))
            }
            _ => {}
        }
        if (h, w, c) != (self.config.height, self.config.width, self.config.channels) {
            return Err(Error::shape(
                "Model::forward",
                format!(
                    "model expects {}x{}x{} images, got {h}x{w}x{c}",
                    self.config.height, self.config.width, self.config.channels
                ),
            ));
        }
        let cond = match (&self.upsample, xs) {
            (None, None) => None,
            (Some(up), Some(xs)) => {
                let r = self.config.cond_stride().expect("conditioned");
                if xs.shape != [n, h / r, w / r, c] {
                    return Err(Error::shape(
                        "Model::forward",
                        format!(
                            "the small image should be [{n}, {}, {}, {c}], got {:?}",
                            h / r,
                            w / r,
                            xs.shape
                        ),
                    ));
                }
                Some((xs.clone(), up.forward(backend, xs)?))
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "this model is not conditioned: it takes no small image".into(),
                ))
            }
            (Some(_), None) => {
                return Err(Error::Config(
                    "this model is conditioned on a small image (multi-scale stage 2): use forward_cond".into(),
                ))
            }
        };
        let map = cond.as_ref().map(|c| &c.1);
        let mut act = match &self.input {
            Some(input) => {
                let a = CondBias::add(&self.input_cond, backend, input.forward(backend, x)?, map)?;
                ClassBias::add(&self.input_class, backend, a, labels)?
            }
            None => x.clone(),
        };
        let lcond = Cond::new(map, labels);
        let mut caches = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            match layer {
                Layer::Residual(block) => {
                    let (y, cache) = block.forward_cond(backend, &act, lcond)?;
                    caches.push(LayerCache::Residual(cache));
                    act = y;
                }
                Layer::RowLstm(l) => {
                    let (y, cache) = l.forward_cond(backend, &act, lcond, self.recurrence)?;
                    caches.push(LayerCache::RowLstm(cache));
                    act = y;
                }
                Layer::DiagBiLstm(l) => {
                    let (y, cache) = l.forward_cond(backend, &act, lcond, self.recurrence)?;
                    caches.push(LayerCache::DiagBiLstm(cache));
                    act = y;
                }
                Layer::Gated(stack) => {
                    let (y, cache) = stack.forward_cond(backend, &act, labels)?;
                    caches.push(LayerCache::Gated(cache));
                    act = y;
                }
            }
        }
        let (logits, head) = self.head.forward(backend, &act)?;
        Ok((
            logits,
            ForwardCache {
                x: x.clone(),
                cond,
                labels: labels.cloned(),
                layer_inputs: caches,
                head,
            },
        ))
    }

    /// Backward from `dlogits`: stores every parameter gradient and returns the gradient
    /// w.r.t. the network input when `need_input_grad`.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: ForwardCache<B>,
        dlogits: &Tensor<B>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<B>>> {
        self.backward_with(backend, cache, dlogits, need_input_grad, &mut |_| Ok(()))
    }

    /// [`Model::backward`] that hands each module's parameters to `done` as soon as their
    /// gradients are final (head first, input last), so that a data-parallel step can start
    /// their all-reduce while the rest of the backward runs ([`crate::train::GradSync`]).
    pub fn backward_with(
        &mut self,
        backend: &B,
        cache: ForwardCache<B>,
        dlogits: &Tensor<B>,
        need_input_grad: bool,
        done: &mut dyn FnMut(Vec<&mut Param<B>>) -> Result<()>,
    ) -> Result<Option<Tensor<B>>> {
        let mut grad = self.head.backward(backend, cache.head, dlogits)?;
        done(self.head.params_mut())?;
        let map = cache.cond.as_ref().map(|c| &c.1);
        let labels = cache.labels.as_ref();
        let lcond = Cond::new(map, labels);
        let mut dmap: Option<Tensor<B>> = None;
        for (layer, lc) in self.layers.iter_mut().zip(cache.layer_inputs).rev() {
            let (g, dm) = match (layer, lc) {
                (Layer::Residual(block), LayerCache::Residual(c)) => {
                    let out = block.backward_cond(backend, c, &grad, lcond)?;
                    done(block.params_mut())?;
                    out
                }
                (Layer::RowLstm(l), LayerCache::RowLstm(c)) => {
                    let out = l.backward_cond(backend, c, &grad, lcond, self.recurrence)?;
                    done(l.params_mut())?;
                    out
                }
                (Layer::DiagBiLstm(l), LayerCache::DiagBiLstm(c)) => {
                    let out = l.backward_cond(backend, c, &grad, lcond, self.recurrence)?;
                    done(l.params_mut())?;
                    out
                }
                (Layer::Gated(stack), LayerCache::Gated(c)) => {
                    (stack.backward(backend, c, &grad, labels, done)?, None)
                }
                _ => unreachable!("caches are made by the same layers"),
            };
            grad = g;
            dmap = accumulate(backend, dmap, dm)?;
        }
        let dm = CondBias::backward(&mut self.input_cond, backend, &grad, map)?;
        done(CondBias::params_mut(&mut self.input_cond))?;
        ClassBias::backward(&mut self.input_class, backend, &grad, labels)?;
        done(ClassBias::params_mut(&mut self.input_class))?;
        dmap = accumulate(backend, dmap, dm)?;
        if let (Some(up), Some((xs, _)), Some(dmap)) = (self.upsample.as_mut(), &cache.cond, dmap) {
            up.backward(backend, xs, &dmap)?;
            done(up.params_mut().into())?;
        }
        match self.input.as_mut() {
            Some(input) => {
                let dx = input.backward(backend, &cache.x, &grad, need_input_grad)?;
                done(input.params_mut().into())?;
                Ok(dx)
            }
            // Gated PixelCNN: the stack's first layer already returned the input gradient.
            None => Ok(need_input_grad.then_some(grad)),
        }
    }

    /// Per-sub-pixel NLL in nats `[n, H, W, C]` and the logits' gradient scaled by
    /// `grad_scale`.
    pub fn loss(
        &self,
        backend: &B,
        logits: &Tensor<B>,
        targets: &Tensor<B>,
        grad_scale: f32,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        if let Some(k) = self.config.likelihood.mixtures() {
            backend.logistic_mixture_nll(logits, targets, k, grad_scale)
        } else if self.config.binary {
            backend.bernoulli_nll(logits, targets, grad_scale)
        } else {
            backend.softmax_nll(logits, targets, grad_scale)
        }
    }

    /// Every parameter, in a fixed order (input, layers, head).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = match self.stage1.as_mut() {
            Some(s1) => s1.params_mut(),
            None => Vec::new(),
        };
        if let Some(input) = self.input.as_mut() {
            p.extend(input.params_mut());
        }
        for layer in &mut self.layers {
            match layer {
                Layer::Residual(block) => p.extend(block.params_mut()),
                Layer::RowLstm(l) => p.extend(l.params_mut()),
                Layer::DiagBiLstm(l) => p.extend(l.params_mut()),
                Layer::Gated(stack) => p.extend(stack.params_mut()),
            }
        }
        p.extend(self.head.params_mut());
        if let Some(up) = self.upsample.as_mut() {
            p.extend(up.params_mut());
        }
        p.extend(CondBias::params_mut(&mut self.input_cond));
        p.extend(ClassBias::params_mut(&mut self.input_class));
        p
    }

    /// Number of trainable scalars.
    pub fn num_params(&mut self) -> usize {
        self.params_mut().iter().map(|p| p.value.numel()).sum()
    }

    /// Network input and targets for images `indices` of `images`: the input is `x / 127.5 - 1`
    /// for 256-level data and `x` for binary data; targets are the raw values.
    pub fn batch(
        &self,
        backend: &B,
        images: &Images,
        indices: &[usize],
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        let cfg = &self.config;
        if (images.height, images.width, images.channels, images.binary)
            != (cfg.height, cfg.width, cfg.channels, cfg.binary)
        {
            return Err(Error::Config(format!(
                "the data is {} but the model was built for {}",
                images.format_label(),
                cfg.format_label()
            )));
        }
        let dims = cfg.dims();
        let mut x = Vec::with_capacity(indices.len() * dims);
        let mut t = Vec::with_capacity(indices.len() * dims);
        for &i in indices {
            for &v in images.image(i) {
                t.push(v as f32);
                x.push(if cfg.binary {
                    v as f32
                } else {
                    v as f32 / 127.5 - 1.0
                });
            }
        }
        let shape = [indices.len(), cfg.height, cfg.width, cfg.channels];
        Ok((
            Tensor::from_slice(backend, &shape, &x)?,
            Tensor::from_slice(backend, &shape, &t)?,
        ))
    }
}

fn accumulate<B: Backend>(
    backend: &B,
    acc: Option<Tensor<B>>,
    add: Option<Tensor<B>>,
) -> Result<Option<Tensor<B>>> {
    Ok(match (acc, add) {
        (Some(a), Some(b)) => Some(backend.add(&a, &b)?),
        (a, b) => a.or(b),
    })
}
