//! The Diagonal BiLSTM layer (MODELS.md, "Diagonal BiLSTM layer"). Per direction: a 1x1 mask-B
//! input-to-state convolution and the diagonal scan (skew folded into the backend's indexing:
//! state from the pixel above and the pixel to the left). The right direction runs on the
//! mirrored map with its own weights, is mirrored back and shifted down one row (without the
//! shift each pixel would see the rest of its own row); the two are summed and projected by a
//! 1x1 mask-B residual convolution h -> 2h added to the input.

use rand_pcg::Pcg64;

use super::residual::need;
use super::{init, ClassBias, Cond, CondBias, MaskedConv2d, Param};
use crate::backend::{Backend, ConvSpec, LstmState, Mask, Recurrence};
use crate::error::Result;
use crate::tensor::Tensor;

/// One direction: input-to-state convolution and state-to-state weight.
pub struct DiagDirection<B: Backend> {
    /// 1x1 mask B, 2h -> 4h.
    pub is_conv: MaskedConv2d<B>,
    /// State-to-state weight `[4h, h, 2, 1]`: tap 0 reads the pixel above, tap 1 the pixel to
    /// the left (rows r-1 and r of the previous skewed column).
    pub ss_weight: Param<B>,
    /// Multi-scale conditioning: unmasked 1x1 F -> 4h, added to the input-to-state map (the
    /// right direction adds it mirrored, like its input).
    pub cond: Option<CondBias<B>>,
    /// Class conditioning: a `[classes, 4h]` table, added to the input-to-state map (the same
    /// at every position, so mirroring leaves it as it is).
    pub class_bias: Option<ClassBias<B>>,
}

impl<B: Backend> DiagDirection<B> {
    fn new(
        backend: &B,
        prefix: &str,
        hidden: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let (h2, g) = (2 * hidden, 4 * hidden);
        let is_spec = ConvSpec {
            out_block: hidden,
            ..ConvSpec::new(1, 1, Mask::B, groups, h2, g)
        };
        let mut is_conv =
            MaskedConv2d::new(backend, &format!("{prefix}.is_conv"), h2, g, is_spec, rng)?;
        is_conv.bias.value = Tensor::from_slice(backend, &[g], &init::lstm_bias(hidden))?;
        let ss_spec = ConvSpec {
            kh: 2,
            kw: 1,
            ..ConvSpec::new(1, 1, Mask::None, groups, hidden, g)
        };
        let ss = init::conv_weight(rng, hidden, g, &ss_spec);
        Ok(DiagDirection {
            is_conv,
            ss_weight: Param::new(
                backend,
                format!("{prefix}.ss_conv.weight"),
                &[g, hidden, 2, 1],
                &ss,
            )?,
            cond: None,
            class_bias: None,
        })
    }
}

/// One Diagonal BiLSTM layer on a map of `2h` features.
pub struct DiagBiLstm<B: Backend> {
    /// Left-to-right direction (on the map as it is).
    pub left: DiagDirection<B>,
    /// Right-to-left direction (on the mirrored map).
    pub right: DiagDirection<B>,
    /// 1x1 mask B, h -> 2h.
    pub res_conv: MaskedConv2d<B>,
}

/// What the layer's backward needs.
pub struct DiagBiLstmCache<B: Backend> {
    x: Tensor<B>,
    x_mirror: Tensor<B>,
    left: LstmState<B>,
    right: LstmState<B>,
    h_sum: Tensor<B>,
}

impl<B: Backend> DiagBiLstm<B> {
    /// A layer with `hidden` units per direction and `groups` channel groups.
    pub fn new(
        backend: &B,
        prefix: &str,
        hidden: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        Ok(DiagBiLstm {
            left: DiagDirection::new(backend, &format!("{prefix}.left"), hidden, groups, rng)?,
            right: DiagDirection::new(backend, &format!("{prefix}.right"), hidden, groups, rng)?,
            res_conv: MaskedConv2d::new(
                backend,
                &format!("{prefix}.res_conv"),
                hidden,
                2 * hidden,
                ConvSpec::new(1, 1, Mask::B, groups, hidden, 2 * hidden),
                rng,
            )?,
        })
    }

    /// `x + res_conv(left(x) + shift_down(mirror(right(mirror(x)))))`.
    pub fn forward(
        &self,
        backend: &B,
        x: &Tensor<B>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, DiagBiLstmCache<B>)> {
        self.forward_cond(backend, x, Cond::none(), rec)
    }

    /// [`DiagBiLstm::forward`] with each direction's conditioning bias added to its
    /// input-to-state map (the right direction's mirrored, as its map is), and each
    /// direction's class bias.
    pub fn forward_cond<'a>(
        &self,
        backend: &B,
        x: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, DiagBiLstmCache<B>)> {
        let Cond { map: cond, labels } = cond.into();
        let is_l = CondBias::add(
            &self.left.cond,
            backend,
            self.left.is_conv.forward(backend, x)?,
            cond,
        )?;
        let is_l = ClassBias::add(&self.left.class_bias, backend, is_l, labels)?;
        let left = backend.diag_lstm_forward(&is_l, &self.left.ss_weight.value, rec)?;
        let x_mirror = backend.mirror_width(x)?;
        let mut is_r = self.right.is_conv.forward(backend, &x_mirror)?;
        if let (Some(cb), Some(m)) = (&self.right.cond, cond) {
            let bias = backend.mirror_width(&cb.conv.forward(backend, m)?)?;
            is_r = backend.add(&is_r, &bias)?;
        }
        let is_r = ClassBias::add(&self.right.class_bias, backend, is_r, labels)?;
        let right = backend.diag_lstm_forward(&is_r, &self.right.ss_weight.value, rec)?;
        // left + shift_down(mirror(right)): one fused op (one kernel on CUDA).
        let h_sum = backend.diag_bilstm_combine(&left.h, &right.h)?;
        let r = self.res_conv.forward(backend, &h_sum)?;
        let y = backend.add(x, &r)?;
        Ok((
            y,
            DiagBiLstmCache {
                x: x.clone(),
                x_mirror,
                left,
                right,
                h_sum,
            },
        ))
    }

    /// Stores the gradients; returns the gradient w.r.t. the input.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: DiagBiLstmCache<B>,
        dy: &Tensor<B>,
        rec: Recurrence,
    ) -> Result<Tensor<B>> {
        Ok(self.backward_cond(backend, cache, dy, Cond::none(), rec)?.0)
    }

    /// Backward of [`DiagBiLstm::forward_cond`]: input gradient and `cond.map` gradient (the
    /// class tables' gradients are stored).
    pub fn backward_cond<'a>(
        &mut self,
        backend: &B,
        cache: DiagBiLstmCache<B>,
        dy: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
        let Cond { map: cond, labels } = cond.into();
        // The right direction's bias is position-independent: its table's gradient is the
        // unmirrored sum, as the left's.
        let dh = need(self.res_conv.backward(backend, &cache.h_sum, dy, true)?);
        let (d_is_l, d_ss_l) =
            backend.diag_lstm_backward(&cache.left, &self.left.ss_weight.value, &dh, rec)?;
        self.left.ss_weight.grad = d_ss_l;
        let dh_right = backend.diag_bilstm_combine_backward(&dh)?;
        let (d_is_r, d_ss_r) = backend.diag_lstm_backward(
            &cache.right,
            &self.right.ss_weight.value,
            &dh_right,
            rec,
        )?;
        self.right.ss_weight.grad = d_ss_r;
        let dx_l = need(
            self.left
                .is_conv
                .backward(backend, &cache.x, &d_is_l, true)?,
        );
        let dxm_r = need(
            self.right
                .is_conv
                .backward(backend, &cache.x_mirror, &d_is_r, true)?,
        );
        let dx_r = backend.mirror_width(&dxm_r)?;
        ClassBias::backward(&mut self.left.class_bias, backend, &d_is_l, labels)?;
        ClassBias::backward(&mut self.right.class_bias, backend, &d_is_r, labels)?;
        let dc_l = CondBias::backward(&mut self.left.cond, backend, &d_is_l, cond)?;
        let dc_r = match cond {
            Some(_) => {
                let d = backend.mirror_width(&d_is_r)?;
                CondBias::backward(&mut self.right.cond, backend, &d, cond)?
            }
            None => None,
        };
        let dcond = match (dc_l, dc_r) {
            (Some(a), Some(b)) => Some(backend.add(&a, &b)?),
            (a, b) => a.or(b),
        };
        Ok((backend.add(&backend.add(dy, &dx_l)?, &dx_r)?, dcond))
    }

    /// The layer's parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let DiagBiLstm {
            left,
            right,
            res_conv,
        } = self;
        let mut p: Vec<&mut Param<B>> = Vec::new();
        p.extend(left.is_conv.params_mut());
        p.push(&mut left.ss_weight);
        p.extend(right.is_conv.params_mut());
        p.push(&mut right.ss_weight);
        p.extend(res_conv.params_mut());
        p.extend(CondBias::params_mut(&mut left.cond));
        p.extend(CondBias::params_mut(&mut right.cond));
        p.extend(ClassBias::params_mut(&mut left.class_bias));
        p.extend(ClassBias::params_mut(&mut right.class_bias));
        p
    }
}
