//! A masked convolution layer: weight, bias and the backend's `masked_conv2d`.

use rand_pcg::Pcg64;

use super::{init, Param};
use crate::backend::{Backend, ConvSpec};
use crate::error::Result;
use crate::tensor::Tensor;

/// Convolution with parameters `{prefix}.weight` `[cout, cin, kh, kw]` and `{prefix}.bias`.
pub struct MaskedConv2d<B: Backend> {
    /// Kernel and mask.
    pub spec: ConvSpec,
    /// Weight, PyTorch layout; masked taps stay zero.
    pub weight: Param<B>,
    /// Bias.
    pub bias: Param<B>,
}

impl<B: Backend> MaskedConv2d<B> {
    /// A freshly initialised layer (see [`init`]).
    pub fn new(
        backend: &B,
        prefix: &str,
        cin: usize,
        cout: usize,
        spec: ConvSpec,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        spec.validate()?;
        let w = init::conv_weight(rng, cin, cout, &spec);
        Ok(MaskedConv2d {
            spec,
            weight: Param::new(
                backend,
                format!("{prefix}.weight"),
                &[cout, cin, spec.kh, spec.kw],
                &w,
            )?,
            bias: Param::new(backend, format!("{prefix}.bias"), &[cout], &vec![0.0; cout])?,
        })
    }

    /// `conv(x) + bias`.
    pub fn forward(&self, backend: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        backend.masked_conv2d_forward(x, &self.weight.value, &self.bias.value, &self.spec)
    }

    /// Stores the weight and bias gradients; returns the input gradient if `need_dx`.
    pub fn backward(
        &mut self,
        backend: &B,
        x: &Tensor<B>,
        dy: &Tensor<B>,
        need_dx: bool,
    ) -> Result<Option<Tensor<B>>> {
        let g = backend.masked_conv2d_backward(x, &self.weight.value, dy, &self.spec, need_dx)?;
        self.weight.grad = g.dw;
        self.bias.grad = g.db;
        Ok(g.dx)
    }

    /// The layer's parameters.
    pub fn params_mut(&mut self) -> [&mut Param<B>; 2] {
        [&mut self.weight, &mut self.bias]
    }
}
