//! The output head shared by every model: ReLU, 1x1 2h->D, ReLU, 1x1 D->C*256 (or D->C for
//! binary data), both mask B. Logit `k` of channel `c` is feature `k * C + c`, so feature `f`
//! belongs to group `f mod C` like every other map.

use rand_pcg::Pcg64;

use super::{residual::need, MaskedConv2d, Param};
use crate::backend::{Backend, ConvSpec, Mask};
use crate::error::Result;
use crate::tensor::Tensor;

/// The two 1x1 convolutions of the output head.
pub struct OutputHead<B: Backend> {
    /// 1x1, 2h -> D.
    pub hidden: MaskedConv2d<B>,
    /// 1x1, D -> C * 256 (softmax) or C (Bernoulli).
    pub logits: MaskedConv2d<B>,
}

/// ReLU outputs kept for the head's backward.
pub struct HeadCache<B: Backend> {
    r_in: Tensor<B>,
    r_hidden: Tensor<B>,
}

impl<B: Backend> OutputHead<B> {
    /// A head from `cin` features through `width` (D) to `outputs` logits.
    pub fn new(
        backend: &B,
        cin: usize,
        width: usize,
        outputs: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        Ok(OutputHead {
            hidden: MaskedConv2d::new(
                backend,
                "head.hidden",
                cin,
                width,
                ConvSpec::new(1, 1, Mask::B, groups, cin, width),
                rng,
            )?,
            logits: MaskedConv2d::new(
                backend,
                "head.logits",
                width,
                outputs,
                ConvSpec::new(1, 1, Mask::B, groups, width, outputs),
                rng,
            )?,
        })
    }

    /// Logits from the last layer's map.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, HeadCache<B>)> {
        let r_in = backend.relu_forward(x)?;
        let z = self.hidden.forward(backend, &r_in)?;
        let r_hidden = backend.relu_forward(&z)?;
        let logits = self.logits.forward(backend, &r_hidden)?;
        Ok((logits, HeadCache { r_in, r_hidden }))
    }

    /// Gradient w.r.t. the head's input.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: HeadCache<B>,
        dlogits: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        let dr_hidden = need(
            self.logits
                .backward(backend, &cache.r_hidden, dlogits, true)?,
        );
        let dz = backend.relu_backward(&cache.r_hidden, &dr_hidden)?;
        let dr_in = need(self.hidden.backward(backend, &cache.r_in, &dz, true)?);
        backend.relu_backward(&cache.r_in, &dr_in)
    }

    /// The head's parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = Vec::new();
        p.extend(self.hidden.params_mut());
        p.extend(self.logits.params_mut());
        p
    }
}
