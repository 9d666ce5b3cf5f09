//! The layers of a Gated PixelCNN as one module: the first layer reads the image with both
//! stacks, each later layer reads the previous one's vertical and horizontal outputs, and the
//! output head reads the sum of every layer's skip projection (docs/gated-pixelcnn.md).

use rand_pcg::Pcg64;

use super::gated::{GatedCache, GatedLayer, GatedRole};
use super::{ClassBias, Param};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Kernel size of the first layer (as the 7x7 first layer of the paper's other models).
pub const GATED_FIRST_KERNEL: usize = 7;
/// Kernel size of every later layer.
pub const GATED_KERNEL: usize = 3;

/// Every layer of a Gated PixelCNN, named `layers.{l}.*`.
pub struct GatedStack<B: Backend> {
    /// The layers, first to last.
    pub layers: Vec<GatedLayer<B>>,
}

/// What the stack's backward needs: each layer's cache.
pub struct GatedStackCache<B: Backend> {
    layers: Vec<GatedCache<B>>,
}

impl<B: Backend> GatedStack<B> {
    /// `layers` layers (at least one) on `channels`-channel images in `groups` channel groups
    /// (C for the softmax, 1 for the logistic mixture), with `hidden` = h.
    pub fn new(
        backend: &B,
        layers: usize,
        hidden: usize,
        channels: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        if layers == 0 {
            return Err(Error::Config(
                "a Gated PixelCNN needs at least one layer (--layers 1 or more)".into(),
            ));
        }
        let layers = (0..layers)
            .map(|l| {
                let role = GatedRole {
                    first: l == 0,
                    last: l + 1 == layers,
                };
                let (cin, k) = if role.first {
                    (channels, GATED_FIRST_KERNEL)
                } else {
                    (2 * hidden, GATED_KERNEL)
                };
                GatedLayer::new(
                    backend,
                    &format!("layers.{l}"),
                    cin,
                    hidden,
                    k,
                    groups,
                    role,
                    rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GatedStack { layers })
    }

    /// Makes the stack class-conditional with `classes` classes: every layer gets a zero
    /// table `[K, 4h]` named `layers.{l}.class_bias` (zero: the conditional model starts as
    /// the unconditional one).
    pub fn add_class_bias(&mut self, backend: &B, classes: usize) -> Result<()> {
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let h4 = layer.h_conv.weight.value.shape[0];
            layer.class_bias = Some(ClassBias::new(
                backend,
                &format!("layers.{l}"),
                classes,
                h4,
            )?);
        }
        Ok(())
    }

    /// The sum of the layers' skip projections, `[n, H, W, 2h]`, for network input `x`
    /// `[n, H, W, C]` (an unconditional stack).
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, GatedStackCache<B>)> {
        self.forward_cond(backend, x, None)
    }

    /// [`GatedStack::forward`] given each image's class `labels` `[n]` (a class-conditional
    /// stack; `None` for an unconditional one).
    pub fn forward_cond(
        &self,
        backend: &B,
        x: &Tensor<B>,
        labels: Option<&Tensor<B>>,
    ) -> Result<(Tensor<B>, GatedStackCache<B>)> {
        let (mut v, mut h) = (x.clone(), x.clone());
        let mut skip: Option<Tensor<B>> = None;
        let mut caches = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (out, cache) = layer.forward(backend, &v, &h, labels)?;
            caches.push(cache);
            skip = Some(match skip {
                None => out.skip,
                Some(s) => backend.add(&s, &out.skip)?,
            });
            if let (Some(nv), Some(nh)) = (out.v, out.h) {
                v = nv;
                h = nh;
            }
        }
        let skip = skip.expect("a stack has at least one layer");
        Ok((skip, GatedStackCache { layers: caches }))
    }

    /// Backward from the gradient w.r.t. the skip sum: stores every parameter gradient (the
    /// class tables' included, given the forward's `labels`), hands each layer's parameters
    /// to `done` as soon as they are final (last layer first), and returns the gradient
    /// w.r.t. the network input.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: GatedStackCache<B>,
        dskip: &Tensor<B>,
        labels: Option<&Tensor<B>>,
        done: &mut dyn FnMut(Vec<&mut Param<B>>) -> Result<()>,
    ) -> Result<Tensor<B>> {
        let mut dv: Option<Tensor<B>> = None;
        let mut dh: Option<Tensor<B>> = None;
        for (layer, c) in self.layers.iter_mut().zip(cache.layers).rev() {
            let g = layer.backward(backend, c, dv.as_ref(), dh.as_ref(), dskip, labels)?;
            done(layer.params_mut())?;
            dv = Some(g.dv_in);
            dh = Some(g.dh_in);
        }
        let (dv, dh) = (dv.expect("one layer"), dh.expect("one layer"));
        backend.add(&dv, &dh)
    }

    /// Every layer's parameters, first layer first.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
