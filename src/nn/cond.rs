//! Multi-scale conditioning (MODELS.md, "Multi-Scale PixelRNN"): the small image, scaled like
//! the input, goes through a learned transposed convolution ([`Upsample`], stride = kernel =
//! n/s) to an n x n map of F features; every layer adds an unmasked 1x1 convolution of that map
//! ([`CondBias`]) to its input-to-state pre-activations (PixelCNN: to its 3x3 convolution's
//! output). Nothing here is masked: the map depends on the whole small image, never on the
//! full image's pixels.

use rand::Rng;
use rand_pcg::Pcg64;

use super::{MaskedConv2d, Param};
use crate::backend::{Backend, ConvSpec, Mask};
use crate::error::Result;
use crate::tensor::Tensor;

/// Kernel size of the upsampling for stride `r`: `3r` (padding `r`).
pub fn upsample_kernel(r: usize) -> usize {
    3 * r
}

/// The transposed convolution `[C, F, 3r, 3r]` (+ bias `[F]`), stride r, from the small image
/// to the conditioning map.
pub struct Upsample<B: Backend> {
    /// Stride r = n/s.
    pub stride: usize,
    /// Weight `[cin, F, 3r, 3r]`, PyTorch `ConvTranspose2d` layout.
    pub weight: Param<B>,
    /// Bias `[F]`.
    pub bias: Param<B>,
}

impl<B: Backend> Upsample<B> {
    /// Uniform init with variance `1 / (9 cin)` (each output sees 3 x 3 small pixels of `cin`
    /// channels); zero bias.
    pub fn new(
        backend: &B,
        prefix: &str,
        cin: usize,
        features: usize,
        r: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let k = upsample_kernel(r);
        let a = (3.0 / (9 * cin) as f32).sqrt();
        let w: Vec<f32> = (0..cin * features * k * k)
            .map(|_| rng.random_range(-a..=a))
            .collect();
        Ok(Upsample {
            stride: r,
            weight: Param::new(
                backend,
                format!("{prefix}.weight"),
                &[cin, features, k, k],
                &w,
            )?,
            bias: Param::new(
                backend,
                format!("{prefix}.bias"),
                &[features],
                &vec![0.0; features],
            )?,
        })
    }

    /// `[n, s, s, C]` -> `[n, s*r, s*r, F]`.
    pub fn forward(&self, backend: &B, xs: &Tensor<B>) -> Result<Tensor<B>> {
        backend.conv_transpose2d_forward(xs, &self.weight.value, &self.bias.value, self.stride)
    }

    /// Stores the gradients (the small image needs none: it is data).
    pub fn backward(&mut self, backend: &B, xs: &Tensor<B>, dmap: &Tensor<B>) -> Result<()> {
        let g =
            backend.conv_transpose2d_backward(xs, &self.weight.value, dmap, self.stride, false)?;
        self.weight.grad = g.dw;
        self.bias.grad = g.db;
        Ok(())
    }

    /// Weight and bias.
    pub fn params_mut(&mut self) -> [&mut Param<B>; 2] {
        [&mut self.weight, &mut self.bias]
    }
}

/// A layer's conditioning bias: an unmasked 1x1 convolution F -> width of the pre-activation.
pub struct CondBias<B: Backend> {
    /// The 1x1 convolution (`Mask::None`).
    pub conv: MaskedConv2d<B>,
}

impl<B: Backend> CondBias<B> {
    /// A 1x1 unmasked convolution `features -> out` named `{prefix}.cond`.
    pub fn new(
        backend: &B,
        prefix: &str,
        features: usize,
        out: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let spec = ConvSpec::new(1, 1, Mask::None, groups, features, out);
        Ok(CondBias {
            conv: MaskedConv2d::new(backend, &format!("{prefix}.cond"), features, out, spec, rng)?,
        })
    }

    /// `pre + conv(cond)` when both the layer's bias and the map exist, else `pre`.
    pub fn add(
        this: &Option<Self>,
        backend: &B,
        pre: Tensor<B>,
        cond: Option<&Tensor<B>>,
    ) -> Result<Tensor<B>> {
        match (this, cond) {
            (Some(cb), Some(m)) => backend.add(&pre, &cb.conv.forward(backend, m)?),
            _ => Ok(pre),
        }
    }

    /// Given the pre-activation's gradient `dpre`, stores the 1x1's gradients and returns the
    /// gradient w.r.t. the conditioning map.
    pub fn backward(
        this: &mut Option<Self>,
        backend: &B,
        dpre: &Tensor<B>,
        cond: Option<&Tensor<B>>,
    ) -> Result<Option<Tensor<B>>> {
        match (this, cond) {
            (Some(cb), Some(m)) => cb.conv.backward(backend, m, dpre, true),
            _ => Ok(None),
        }
    }

    /// The 1x1's weight and bias, if any.
    pub fn params_mut(this: &mut Option<Self>) -> Vec<&mut Param<B>> {
        match this {
            Some(cb) => cb.conv.params_mut().into_iter().collect(),
            None => Vec::new(),
        }
    }
}
