//! The Row LSTM layer (MODELS.md, "Row LSTM layer"): a 1xk mask-B input-to-state convolution
//! over the whole map, the row recurrence with a 1xk unmasked state-to-state convolution, and
//! a 1x1 mask-B residual projection h -> 2h added to the input.

use rand_pcg::Pcg64;

use super::{init, ClassBias, Cond, CondBias, MaskedConv2d, Param};
use crate::backend::{Backend, ConvSpec, LstmState, Mask, Recurrence};
use crate::error::Result;
use crate::tensor::Tensor;

/// One Row LSTM layer on a map of `2h` features.
pub struct RowLstm<B: Backend> {
    /// 1xk mask B, 2h -> 4h (gate blocks o, f, i, g; unit u of each block in group u mod C).
    pub is_conv: MaskedConv2d<B>,
    /// State-to-state weight `[4h, h, 1, k]`, unmasked, no bias.
    pub ss_weight: Param<B>,
    /// 1x1 mask B, h -> 2h.
    pub res_conv: MaskedConv2d<B>,
    /// Multi-scale conditioning: unmasked 1x1 F -> 4h, added to the input-to-state map.
    pub cond: Option<CondBias<B>>,
    /// Class conditioning: a `[classes, 4h]` table, added to the input-to-state map.
    pub class_bias: Option<ClassBias<B>>,
}

/// What the layer's backward needs: its input and the recurrence's states.
pub struct RowLstmCache<B: Backend> {
    x: Tensor<B>,
    state: LstmState<B>,
}

impl<B: Backend> RowLstm<B> {
    /// A layer with `hidden` units, kernel width `k`, `groups` channel groups.
    pub fn new(
        backend: &B,
        prefix: &str,
        hidden: usize,
        k: usize,
        groups: usize,
        rng: &mut Pcg64,
    ) -> Result<Self> {
        let (h2, g) = (2 * hidden, 4 * hidden);
        let is_spec = ConvSpec {
            out_block: hidden,
            ..ConvSpec::new(1, k, Mask::B, groups, h2, g)
        };
        let mut is_conv =
            MaskedConv2d::new(backend, &format!("{prefix}.is_conv"), h2, g, is_spec, rng)?;
        is_conv.bias.value = Tensor::from_slice(backend, &[g], &init::lstm_bias(hidden))?;
        let ss_spec = ConvSpec::new(1, k, Mask::None, groups, hidden, g);
        let ss = init::conv_weight(rng, hidden, g, &ss_spec);
        Ok(RowLstm {
            is_conv,
            ss_weight: Param::new(
                backend,
                format!("{prefix}.ss_conv.weight"),
                &[g, hidden, 1, k],
                &ss,
            )?,
            res_conv: MaskedConv2d::new(
                backend,
                &format!("{prefix}.res_conv"),
                hidden,
                h2,
                ConvSpec::new(1, 1, Mask::B, groups, hidden, h2),
                rng,
            )?,
            cond: None,
            class_bias: None,
        })
    }

    /// `x + res_conv(rowlstm(is_conv(x)))`.
    pub fn forward(
        &self,
        backend: &B,
        x: &Tensor<B>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, RowLstmCache<B>)> {
        self.forward_cond(backend, x, Cond::none(), rec)
    }

    /// [`RowLstm::forward`] with the conditioning bias (`cond.map`) and the class bias
    /// (`cond.labels`) added to the input-to-state map.
    pub fn forward_cond<'a>(
        &self,
        backend: &B,
        x: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, RowLstmCache<B>)> {
        let cond = cond.into();
        let is = CondBias::add(
            &self.cond,
            backend,
            self.is_conv.forward(backend, x)?,
            cond.map,
        )?;
        let is = ClassBias::add(&self.class_bias, backend, is, cond.labels)?;
        let state = backend.row_lstm_forward(&is, &self.ss_weight.value, rec)?;
        let r = self.res_conv.forward(backend, &state.h)?;
        let y = backend.add(x, &r)?;
        Ok((
            y,
            RowLstmCache {
                x: x.clone(),
                state,
            },
        ))
    }

    /// Stores the gradients; returns the gradient w.r.t. the input.
    pub fn backward(
        &mut self,
        backend: &B,
        cache: RowLstmCache<B>,
        dy: &Tensor<B>,
        rec: Recurrence,
    ) -> Result<Tensor<B>> {
        Ok(self.backward_cond(backend, cache, dy, Cond::none(), rec)?.0)
    }

    /// Backward of [`RowLstm::forward_cond`]: input gradient and `cond.map` gradient (the
    /// class table's gradient is stored).
    pub fn backward_cond<'a>(
        &mut self,
        backend: &B,
        cache: RowLstmCache<B>,
        dy: &Tensor<B>,
        cond: impl Into<Cond<'a, B>>,
        rec: Recurrence,
    ) -> Result<(Tensor<B>, Option<Tensor<B>>)> {
        let cond = cond.into();
        let dh =
            super::residual::need(self.res_conv.backward(backend, &cache.state.h, dy, true)?);
        let (d_is, d_ss) =
            backend.row_lstm_backward(&cache.state, &self.ss_weight.value, &dh, rec)?;
        self.ss_weight.grad = d_ss;
        let dcond = CondBias::backward(&mut self.cond, backend, &d_is, cond.map)?;
        ClassBias::backward(&mut self.class_bias, backend, &d_is, cond.labels)?;
        let dx = super::residual::need(self.is_conv.backward(backend, &cache.x, &d_is, true)?);
        Ok((backend.add(dy, &dx)?, dcond))
    }

    /// The layer's parameters.
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        let mut p: Vec<&mut Param<B>> = Vec::new();
        p.extend(self.is_conv.params_mut());
        p.push(&mut self.ss_weight);
        p.extend(self.res_conv.params_mut());
        p.extend(CondBias::params_mut(&mut self.cond));
        p.extend(ClassBias::params_mut(&mut self.class_bias));
        p
    }
}
