//! The layers of a Gated PixelCNN as one module: the first layer reads the image with both
//! stacks, each later layer reads the previous one's vertical and horizontal outputs, and the
//! output head reads the sum of every layer's skip projection (docs/gated-pixelcnn.md).

use rand_pcg::Pcg64;

use super::gated::{GatedCache, GatedLayer, GatedRole};
use super::Param;
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

/// Each layer's gradient w.r.t. the bias added to its pre-activations (`None` where none
/// was added), first layer first.
pub type GatedBiasGrads<B> = Vec<Option<Tensor<B>>>;

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

    /// The sum of the layers' skip projections, `[n, H, W, 2h]`, for network input `x`
    /// `[n, H, W, C]`.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, GatedStackCache<B>)> {
        self.forward_biased(backend, x, &mut |_| Ok(None))
    }

    /// [`GatedStack::forward`] with `bias(l)` added to both pre-activations of layer `l` (the
    /// conditioning hook; `None`: no bias).
    pub fn forward_biased(
        &self,
        backend: &B,
        x: &Tensor<B>,
        bias: &mut dyn FnMut(usize) -> Result<Option<Tensor<B>>>,
    ) -> Result<(Tensor<B>, GatedStackCache<B>)> {
        let (mut v, mut h) = (x.clone(), x.clone());
        let mut skip: Option<Tensor<B>> = None;
        let mut caches = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let b = bias(l)?;
            let (out, cache) = layer.forward(backend, &v, &h, b.as_ref())?;
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

    /// Backward from the gradient w.r.t. the skip sum: stores every parameter gradient, hands
    /// each layer's parameters to `done` as soon as they are final (last layer first), and
    /// returns the gradient w.r.t. the network input together with each layer's bias
    /// gradient (`None` where no bias was added).
    pub fn backward(
        &mut self,
        backend: &B,
        cache: GatedStackCache<B>,
        dskip: &Tensor<B>,
        done: &mut dyn FnMut(Vec<&mut Param<B>>) -> Result<()>,
    ) -> Result<(Tensor<B>, GatedBiasGrads<B>)> {
        let mut dv: Option<Tensor<B>> = None;
        let mut dh: Option<Tensor<B>> = None;
        let mut dbias = Vec::with_capacity(self.layers.len());
        for (layer, c) in self.layers.iter_mut().zip(cache.layers).rev() {
            let g = layer.backward(backend, c, dv.as_ref(), dh.as_ref(), dskip)?;
            done(layer.params_mut())?;
            dbias.push(g.dbias);
            dv = Some(g.dv_in);
            dh = Some(g.dh_in);
        }
        dbias.reverse();
        let (dv, dh) = (dv.expect("one layer"), dh.expect("one layer"));
        Ok((backend.add(&dv, &dh)?, dbias))
    }

    /// Every layer's parameters, first layer first.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
