//! Models built from a [`ModelConfig`]: the 7x7 mask-A input layer, a stack of hidden layers,
//! and the output head, with an explicit forward and backward.

mod config;

pub use config::{ModelConfig, ModelKind, DEFAULT_ROW_KERNEL};

use rand::SeedableRng;
use rand_pcg::Pcg64;

use crate::backend::{Backend, ConvSpec, Mask, Recurrence};
use crate::data::Images;
use crate::error::{Error, Result};
use crate::nn::{
    DiagBiLstm, DiagBiLstmCache, HeadCache, MaskedConv2d, OutputHead, Param, ResidualBlock,
    ResidualCache, RowLstm, RowLstmCache,
};
use crate::tensor::Tensor;

/// One hidden layer of a model.
pub enum Layer<B: Backend> {
    /// PixelCNN residual block.
    Residual(ResidualBlock<B>),
    /// Row LSTM layer.
    RowLstm(RowLstm<B>),
    /// Diagonal BiLSTM layer.
    DiagBiLstm(DiagBiLstm<B>),
}

enum LayerCache<B: Backend> {
    Residual(ResidualCache<B>),
    RowLstm(RowLstmCache<B>),
    DiagBiLstm(DiagBiLstmCache<B>),
}

/// Everything a forward pass keeps for its backward.
pub struct ForwardCache<B: Backend> {
    x: Tensor<B>,
    layer_inputs: Vec<LayerCache<B>>,
    head: HeadCache<B>,
}

/// A model on backend `B`.
pub struct Model<B: Backend> {
    /// Architecture.
    pub config: ModelConfig,
    /// 7x7 mask-A convolution, C -> 2h.
    pub input: MaskedConv2d<B>,
    /// Hidden layers.
    pub layers: Vec<Layer<B>>,
    /// Output head.
    pub head: OutputHead<B>,
    /// How the recurrent layers run their recurrence (a run-time choice: same numbers).
    pub recurrence: Recurrence,
}

impl<B: Backend> Model<B> {
    /// A freshly initialised model; the same `seed` gives the same weights on every backend.
    pub fn new(backend: &B, config: ModelConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = Pcg64::seed_from_u64(seed);
        let c = config.channels;
        let h2 = 2 * config.hidden;
        let input = MaskedConv2d::new(
            backend,
            "input",
            c,
            h2,
            ConvSpec::new(7, 7, Mask::A, c, c, h2),
            &mut rng,
        )?;
        let layers = (0..config.layers)
            .map(|l| {
                let prefix = format!("layers.{l}");
                match config.kind {
                    ModelKind::PixelCnn => Ok(Layer::Residual(ResidualBlock::new(
                        backend,
                        &prefix,
                        config.hidden,
                        c,
                        &mut rng,
                    )?)),
                    ModelKind::RowLstm => Ok(Layer::RowLstm(RowLstm::new(
                        backend,
                        &prefix,
                        config.hidden,
                        config.row_kernel,
                        c,
                        &mut rng,
                    )?)),
                    ModelKind::DiagBiLstm => Ok(Layer::DiagBiLstm(DiagBiLstm::new(
                        backend,
                        &prefix,
                        config.hidden,
                        c,
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
            c,
            &mut rng,
        )?;
        Ok(Model {
            config,
            input,
            layers,
            head,
            recurrence: Recurrence::default(),
        })
    }

    /// Logits `[n, H, W, logits_per_position]` for network input `x` `[n, H, W, C]`.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, ForwardCache<B>)> {
        let [_, h, w, c] = x.nhwc("Model::forward")?;
        if (h, w, c) != (self.config.height, self.config.width, self.config.channels) {
            return Err(Error::shape(
                "Model::forward",
                format!(
                    "model expects {}x{}x{} images, got {h}x{w}x{c}",
                    self.config.height, self.config.width, self.config.channels
                ),
            ));
        }
        let mut act = self.input.forward(backend, x)?;
        let mut caches = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            match layer {
                Layer::Residual(block) => {
                    let (y, cache) = block.forward(backend, &act)?;
                    caches.push(LayerCache::Residual(cache));
                    act = y;
                }
                Layer::RowLstm(l) => {
                    let (y, cache) = l.forward(backend, &act, self.recurrence)?;
                    caches.push(LayerCache::RowLstm(cache));
                    act = y;
                }
                Layer::DiagBiLstm(l) => {
                    let (y, cache) = l.forward(backend, &act, self.recurrence)?;
                    caches.push(LayerCache::DiagBiLstm(cache));
                    act = y;
                }
            }
        }
        let (logits, head) = self.head.forward(backend, &act)?;
        Ok((
            logits,
            ForwardCache {
                x: x.clone(),
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
        let mut grad = self.head.backward(backend, cache.head, dlogits)?;
        for (layer, lc) in self.layers.iter_mut().zip(cache.layer_inputs).rev() {
            grad = match (layer, lc) {
                (Layer::Residual(block), LayerCache::Residual(c)) => {
                    block.backward(backend, c, &grad)?
                }
                (Layer::RowLstm(l), LayerCache::RowLstm(c)) => {
                    l.backward(backend, c, &grad, self.recurrence)?
                }
                (Layer::DiagBiLstm(l), LayerCache::DiagBiLstm(c)) => {
                    l.backward(backend, c, &grad, self.recurrence)?
                }
                _ => unreachable!("caches are made by the same layers"),
            };
        }
        self.input
            .backward(backend, &cache.x, &grad, need_input_grad)
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
        if self.config.binary {
            backend.bernoulli_nll(logits, targets, grad_scale)
        } else {
            backend.softmax_nll(logits, targets, grad_scale)
        }
    }

    /// Every parameter, in a fixed order (input, layers, head).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = self.input.params_mut().into_iter().collect();
        for layer in &mut self.layers {
            match layer {
                Layer::Residual(block) => p.extend(block.params_mut()),
                Layer::RowLstm(l) => p.extend(l.params_mut()),
                Layer::DiagBiLstm(l) => p.extend(l.params_mut()),
            }
        }
        p.extend(self.head.params_mut());
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
