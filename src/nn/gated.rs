//! One layer of Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
//! PixelCNN Decoders"; the semantics and every choice: docs/gated-pixelcnn.md).
//!
//! A vertical stack (a `k x k` convolution whose live taps are the rows above and the centre
//! row, [`Mask::Vertical`]) and a horizontal stack (a `1 x k` convolution over the current row
//! up to the pixel, mask A in the first layer and B after, with the channel-group rule at the
//! centre), both `-> 4h` pre-activations (filter block, then gate block, `2h` each). The
//! vertical pre-activation, shifted down one row, reaches the horizontal one through an
//! unmasked 1x1 convolution; both are gated, `tanh(f) * sigmoid(g)`; the horizontal stack has
//! a 1x1 mask-B residual projection and a 1x1 mask-B skip projection into the output head.
//!
//! Class conditioning (the paper's `V^T h` with h one-hot): a table `[K, 4h]` whose row of
//! the image's class is added to both stacks' pre-activations, the vertical one before the
//! shift (docs/gated-pixelcnn.md, "Class conditioning").

use rand_pcg::Pcg64;

use super::residual::need;
use super::{ClassBias, MaskedConv2d, Param};
use crate::backend::{Backend, ConvSpec, Mask};
use crate::error::Result;
use crate::tensor::Tensor;

/// Where a layer sits in the stack: what it reads and what it must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatedRole {
    /// The first layer: both stacks read the image, the horizontal convolution is mask A, and
    /// there is no residual connection (the input has C features, not 2h).
    pub first: bool,
    /// The last layer: nothing reads its vertical output or its horizontal output (the head
    /// reads the skip sum), so it has neither the vertical gate nor the residual projection.
    pub last: bool,
}

/// One Gated PixelCNN layer on stacks of `2h` features.
pub struct GatedLayer<B: Backend> {
    /// Vertical stack: `k x k` [`Mask::Vertical`] (rows above and the centre row), -> 4h.
    pub v_conv: MaskedConv2d<B>,
    /// Horizontal stack: `1 x k`, mask A (first layer) or B, -> 4h (unit u of each block in
    /// group u mod C).
    pub h_conv: MaskedConv2d<B>,
    /// The vertical-to-horizontal link: 1x1 unmasked 4h -> 4h on the vertical pre-activation
    /// shifted down one row.
    pub link: MaskedConv2d<B>,
    /// Residual projection of the horizontal gate output, 1x1 mask B 2h -> 2h (absent in the
    /// last layer).
    pub res_conv: Option<MaskedConv2d<B>>,
    /// Skip projection into the head, 1x1 mask B 2h -> 2h.
    pub skip_conv: MaskedConv2d<B>,
    /// First and/or last.
    pub role: GatedRole,
    /// Class-conditional models: the table `[K, 4h]` named `{prefix}.class_bias`, added to
    /// both stacks' pre-activations (`None`: unconditional).
    pub class_bias: Option<ClassBias<B>>,
}

/// What the layer's backward needs.
pub struct GatedCache<B: Backend> {
    v_in: Tensor<B>,
    h_in: Tensor<B>,
    v_pre: Tensor<B>,
    v_shift: Tensor<B>,
    h_pre: Tensor<B>,
    h_gate: Tensor<B>,
}

/// A layer's outputs.
pub struct GatedOut<B: Backend> {
    /// Vertical stack output `[n, H, W, 2h]` (`None` in the last layer).
    pub v: Option<Tensor<B>>,
    /// Horizontal stack output `[n, H, W, 2h]` (`None` in the last layer).
    pub h: Option<Tensor<B>>,
    /// Skip contribution `[n, H, W, 2h]`.
    pub skip: Tensor<B>,
}

/// A layer's input gradients.
pub struct GatedGrads<B: Backend> {
    /// W.r.t. the vertical input.
    pub dv_in: Tensor<B>,
    /// W.r.t. the horizontal input.
    pub dh_in: Tensor<B>,
}

impl<B: Backend> GatedLayer<B> {
    /// A layer reading `cin` features (C in the first layer, else 2h) with `hidden` = h,
    /// kernel size `k` (odd), `groups` channel groups. Parameters `{prefix}.v_conv`,
    /// `.h_conv`, `.link`, `.res_conv` (not in the last layer), `.skip_conv`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: &B,
        prefix: &str,
        cin: usize,
        hidden: usize,
        k: usize,
        groups: usize,
        role: GatedRole,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let (h2, h4) = (2 * hidden, 4 * hidden);
        let conv = |name: &str, cin: usize, cout: usize, spec: ConvSpec, rng: &mut Pcg64| {
            MaskedConv2d::new(backend, &format!("{prefix}.{name}"), cin, cout, spec, rng)
        };
        // Gate pre-activations repeat their groups every 2h features (out_block), so that
        // feature u of the filter block and of the gate block share group u mod C, the group
        // of the gate's output feature u.
        let v_spec = ConvSpec {
            out_block: h2,
            ..ConvSpec::new(k, k, Mask::Vertical, groups, cin, h4)
        };
        let h_mask = if role.first { Mask::A } else { Mask::B };
        let h_spec = ConvSpec {
            out_block: h2,
            ..ConvSpec::new(1, k, h_mask, groups, cin, h4)
        };
        let link_spec = ConvSpec::new(1, 1, Mask::None, groups, h4, h4);
        let point = ConvSpec::new(1, 1, Mask::B, groups, h2, h2);
        Ok(GatedLayer {
            v_conv: conv("v_conv", cin, h4, v_spec, rng)?,
            h_conv: conv("h_conv", cin, h4, h_spec, rng)?,
            link: conv("link", h4, h4, link_spec, rng)?,
            res_conv: if role.last {
                None
            } else {
                Some(conv("res_conv", h2, h2, point, rng)?)
            },
            skip_conv: conv("skip_conv", h2, h2, point, rng)?,
            role,
            class_bias: None,
        })
    }

    /// The layer on vertical input `v_in` and horizontal input `h_in` (in the first layer
    /// both are the network input); `labels` `[n]` each image's class (class-conditional
    /// layers only: the row `table[label]` is added to both stacks' pre-activations).
    pub fn forward(
        &self,
        backend: &B,
        v_in: &Tensor<B>,
        h_in: &Tensor<B>,
        labels: Option<&Tensor<B>>,
    ) -> Result<(GatedOut<B>, GatedCache<B>)> {
        let class = |pre: Tensor<B>| ClassBias::add(&self.class_bias, backend, pre, labels);
        // The class row joins the vertical pre-activation before the shift, so that the
        // vertical gate sees it (the paper's V_v^T h) and, through the link, so does the
        // horizontal stack of the row below: still only a function of the class.
        let v_pre = class(self.v_conv.forward(backend, v_in)?)?;
        // The vertical map at row i has seen all of row i; one row down, it is causal.
        let v_shift = backend.shift_down(&v_pre)?;
        let h_pre = class(backend.add(
            &self.h_conv.forward(backend, h_in)?,
            &self.link.forward(backend, &v_shift)?,
        )?)?;
        let h_gate = backend.gated_forward(&h_pre)?;
        let v = if self.role.last {
            None
        } else {
            Some(backend.gated_forward(&v_pre)?)
        };
        let h = match &self.res_conv {
            None => None,
            Some(res) => {
                let r = res.forward(backend, &h_gate)?;
                Some(if self.role.first {
                    r
                } else {
                    backend.add(h_in, &r)?
                })
            }
        };
        let skip = self.skip_conv.forward(backend, &h_gate)?;
        Ok((
            GatedOut { v, h, skip },
            GatedCache {
                v_in: v_in.clone(),
                h_in: h_in.clone(),
                v_pre,
                v_shift,
                h_pre,
                h_gate,
            },
        ))
    }

    /// Stores the parameter gradients from the gradients w.r.t. the layer's outputs (`None`
    /// where nothing reads an output: the last layer's) and returns the input gradients.
    /// `labels`: the classes the forward was given (class-conditional layers only).
    pub fn backward(
        &mut self,
        backend: &B,
        cache: GatedCache<B>,
        dv: Option<&Tensor<B>>,
        dh: Option<&Tensor<B>>,
        dskip: &Tensor<B>,
        labels: Option<&Tensor<B>>,
    ) -> Result<GatedGrads<B>> {
        let mut d_gate = need(
            self.skip_conv
                .backward(backend, &cache.h_gate, dskip, true)?,
        );
        if let (Some(res), Some(dh)) = (self.res_conv.as_mut(), dh) {
            let d = need(res.backward(backend, &cache.h_gate, dh, true)?);
            d_gate = backend.add(&d_gate, &d)?;
        }
        let d_h_pre = backend.gated_backward(&cache.h_pre, &d_gate)?;
        let mut dh_in = need(self.h_conv.backward(backend, &cache.h_in, &d_h_pre, true)?);
        if let (false, Some(dh)) = (self.role.first, dh) {
            dh_in = backend.add(&dh_in, dh)?;
        }
        let d_shift = need(
            self.link
                .backward(backend, &cache.v_shift, &d_h_pre, true)?,
        );
        let mut d_v_pre = backend.shift_up(&d_shift)?;
        if let Some(dv) = dv {
            d_v_pre = backend.add(&d_v_pre, &backend.gated_backward(&cache.v_pre, dv)?)?;
        }
        let dv_in = need(self.v_conv.backward(backend, &cache.v_in, &d_v_pre, true)?);
        if self.class_bias.is_some() {
            // The same row joins both pre-activations: its gradient is the sum of theirs
            // (d_v_pre already holds what reached it through the link).
            let dpre = backend.add(&d_v_pre, &d_h_pre)?;
            ClassBias::backward(&mut self.class_bias, backend, &dpre, labels)?;
        }
        Ok(GatedGrads { dv_in, dh_in })
    }

    /// The layer's parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = Vec::new();
        p.extend(self.v_conv.params_mut());
        p.extend(self.h_conv.params_mut());
        p.extend(self.link.params_mut());
        if let Some(res) = self.res_conv.as_mut() {
            p.extend(res.params_mut());
        }
        p.extend(self.skip_conv.params_mut());
        p.extend(ClassBias::params_mut(&mut self.class_bias));
        p
    }
}
