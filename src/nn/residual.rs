//! PixelCNN's residual block: ReLU, 1x1 2h->h, ReLU, 3x3 h->h, ReLU, 1x1 h->2h, plus the input.
//! All three convolutions are mask B.

use rand_pcg::Pcg64;

use super::{ClassBias, Cond, CondBias, MaskedConv2d};
use crate::backend::{Backend, ConvSpec, Mask};
use crate::error::Result;
use crate::nn::Param;
use crate::tensor::Tensor;

/// One residual block of PixelCNN.
pub struct ResidualBlock<B: Backend> {
    /// 1x1, 2h -> h.
    pub conv_in: MaskedConv2d<B>,
    /// 3x3, h -> h.
    pub conv_mid: MaskedConv2d<B>,
    /// 1x1, h -> 2h.
    pub conv_out: MaskedConv2d<B>,
    /// Multi-scale conditioning: unmasked 1x1 F -> h, added to `conv_mid`'s output.
    pub cond: Option<CondBias<B>>,
    /// Class conditioning: a `[classes, h]` table, added to `conv_mid`'s output.
    pub class_bias: Option<ClassBias<B>>,
}

/// What the block's backward needs: the ReLU outputs that feed each convolution.
pub struct ResidualCache<B: Backend> {
    r_in: Tensor<B>,
    r_mid: Tensor<B>,
    r_out: Tensor<B>,
}

impl<B: Backend> ResidualBlock<B> {
    /// A block on a map of `2 * hidden` features with `groups` channel groups.
    pub fn new(
        backend: &B,
        prefix: &str,
        hidden: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let h2 = 2 * hidden;
        Ok(ResidualBlock {
            conv_in: MaskedConv2d::new(
                backend,
                &format!("{prefix}.conv_in"),
                h2,
                hidden,
                ConvSpec::new(1, 1, Mask::B, groups, h2, hidden),
                rng,
            )?,
            conv_mid: MaskedConv2d::new(
                backend,
                &format!("{prefix}.conv_mid"),
                hidden,
                hidden,
                ConvSpec::new(3, 3, Mask::B, groups, hidden, hidden),
                rng,
            )?,
            conv_out: MaskedConv2d::new(
                backend,
                &format!("{prefix}.conv_out"),
                hidden,
                h2,
                ConvSpec::new(1, 1, Mask::B, groups, hidden, h2),
                rng,
            )?,
            cond: None,
            class_bias: None,
        })
    }

    /// `x + conv_out(relu(conv_mid(relu(conv_in(relu(x))))))`.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<(Tensor<B>, ResidualCache<B>)> {
        self.forward_cond(backend, x, None)
    }

    /// [`ResidualBlock::forward`] with the conditioning bias `cond_conv(cond.map)` and the
    /// class bias of `cond.labels` added to the 3x3 convolution's output (each when the block
    /// has it).
    pub fn forward_cond<'a>(
        &self,
        backend: &B,
        x: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
    ) -> Result<(Tensor<B>, ResidualCache<B>)> {
        let cond = cond.into();
        let r_in = backend.relu_forward(x)?;
        let a = self.conv_in.forward(backend, &r_in)?;
        let r_mid = backend.relu_forward(&a)?;
        let m = CondBias::add(
            &self.cond,
            backend,
            self.conv_mid.forward(backend, &r_mid)?,
            cond.map,
        )?;
        let m = ClassBias::add(&self.class_bias, backend, m, cond.labels)?;
        let r_out = backend.relu_forward(&m)?;
        let c = self.conv_out.forward(backend, &r_out)?;
        let y = backend.add(x, &c)?;
        Ok((y, ResidualCache { r_in, r_mid, r_out }))
    }

    /// Returns the gradient w.r.t. the block's input.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: ResidualCache<B>,
        dy: &Tensor<B>,
    ) -> Result<Tensor<B>> {
        Ok(self.backward_cond(backend, cache, dy, Cond::none())?.0)
    }

    /// Backward of [`ResidualBlock::forward_cond`]: the input gradient and the gradient w.r.t.
    /// `cond.map` (when conditioned on one); the class table's gradient is stored.
    pub fn backward_cond<'a>(
        &mut self,
        backend: &B,
        cache: ResidualCache<B>,
        dy: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
    ) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
        let cond = cond.into();
        let dr_out = need(self.conv_out.backward(backend, &cache.r_out, dy, true)?);
        let dm = backend.relu_backward(&cache.r_out, &dr_out)?;
        let dcond = CondBias::backward(&mut self.cond, backend, &dm, cond.map)?;
        ClassBias::backward(&mut self.class_bias, backend, &dm, cond.labels)?;
        let dr_mid = need(self.conv_mid.backward(backend, &cache.r_mid, &dm, true)?);
        let da = backend.relu_backward(&cache.r_mid, &dr_mid)?;
        let dr_in = need(self.conv_in.backward(backend, &cache.r_in, &da, true)?);
        let dx_branch = backend.relu_backward(&cache.r_in, &dr_in)?;
        Ok((backend.add(dy, &dx_branch)?, dcond))
    }

    /// The block's parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = Vec::new();
        p.extend(self.conv_in.params_mut());
        p.extend(self.conv_mid.params_mut());
        p.extend(self.conv_out.params_mut());
        p.extend(CondBias::params_mut(&mut self.cond));
        p.extend(ClassBias::params_mut(&mut self.class_bias));
        p
    }
}

/// Unwraps an input gradient that was asked for (`need_dx = true` always returns one).
pub(crate) fn need<B: Backend>(dx: Option<Tensor<B>>) -> Tensor<B> {
    dx.expect("backward was asked for the input gradient")
}
