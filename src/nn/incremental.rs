//! The layers one position at a time, for exact incremental sampling (src/sample/).
//!
//! Every layer of these models is causal: its output at `(i, j)` depends only on its input at
//! positions up to and including `(i, j)` in raster order (and, at `(i, j)` itself, only on
//! earlier or equal channel groups). Once the positions before `(i, j)` are final, the layer's
//! output at `(i, j)` can therefore be computed from cached maps of what came before: each
//! `*At` state below keeps the maps its layer reads at other positions, and its `step`
//! computes the output at one position for the whole batch with backend ops only (no pixel
//! loops here, like the rest of `nn/`).
//!
//! What is cached, per layer:
//! - residual block: the 3x3 convolution's input `relu(conv_in(relu(x)))`;
//! - Row LSTM: the layer input (its 1xk input-to-state convolution reads `(i, j-k/2 .. j)`)
//!   and the hidden and cell states (row `i - 1` feeds row `i`);
//! - Diagonal BiLSTM: the layer input, the left direction's states (pixel above, pixel to the
//!   left), and the right direction's states in mirrored coordinates. The right direction at
//!   row `r` reads the whole of row `r`, but it reaches the layer output only shifted down one
//!   row, so it is computed once row `r` is complete ([`DiagBiLstmAt::finish_row`]) and read
//!   from row `r + 1` on.
//!
//! A conditioned model (multi-scale stage 2) knows its small image before sampling starts, so
//! each layer's conditioning bias is computed once as a whole map ([`ResidualAt::cond`] and its
//! siblings) and read at one position per step.

use super::{DiagBiLstm, MaskedConv2d, OutputHead, ResidualBlock, RowLstm};
use crate::backend::{Backend, ConvSpec};
use crate::error::Result;
use crate::tensor::Tensor;

/// `pre + bias[i, j]` when there is a bias map.
fn add_at<B: Backend>(
    backend: &B,
    pre: Tensor<B>,
    bias: &Option<Tensor<B>>,
    i: usize,
    j: usize,
) -> Result<Tensor<B>> {
    match bias {
        Some(m) => backend.add(&pre, &backend.read_position(m, i, j)?),
        None => Ok(pre),
    }
}

/// A masked convolution ready to be evaluated at single positions (weights packed once).
pub struct ConvAt<B: Backend> {
    packed: Tensor<B>,
    bias: Tensor<B>,
    spec: ConvSpec,
    cin: usize,
}

impl<B: Backend> ConvAt<B> {
    /// Packs `conv`'s weights with [`Backend::masked_conv2d_pack`].
    pub fn new(backend: &B, conv: &MaskedConv2d<B>) -> Result<Self> {
        Ok(ConvAt {
            packed: backend.masked_conv2d_pack(&conv.weight.value, &conv.spec)?,
            bias: conv.bias.value.clone(),
            spec: conv.spec,
            cin: conv.weight.value.shape[1],
        })
    }

    /// Output `[n, cout]` at `(i, j)` of the convolution of map `x` `[n, H, W, cin]`.
    pub fn at(&self, backend: &B, x: &Tensor<B>, i: usize, j: usize) -> Result<Tensor<B>> {
        backend.masked_conv2d_forward_at(x, &self.packed, &self.bias, &self.spec, i, j)
    }

    /// A 1x1 convolution applied to one position's features `v` `[n, cin]` -> `[n, cout]`.
    pub fn point(&self, backend: &B, v: &Tensor<B>) -> Result<Tensor<B>> {
        let n = v.shape.first().copied().unwrap_or(0);
        let x = v.clone().reshape(&[n, 1, 1, self.cin])?;
        self.at(backend, &x, 0, 0)
    }
}

/// A residual block's incremental state.
pub struct ResidualAt<B: Backend> {
    conv_in: ConvAt<B>,
    conv_mid: ConvAt<B>,
    conv_out: ConvAt<B>,
    /// `relu(conv_in(relu(x)))`, `[n, H, W, h]`: what the 3x3 convolution reads.
    r_mid: Tensor<B>,
    /// Conditioning bias `[n, H, W, h]` added to the 3x3 convolution's output.
    pub cond: Option<Tensor<B>>,
}

impl<B: Backend> ResidualBlock<B> {
    /// Incremental state for `n` images of `height x width`.
    pub fn incremental(
        &self,
        backend: &B,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<ResidualAt<B>> {
        let hidden = self.conv_in.weight.value.shape[0];
        Ok(ResidualAt {
            conv_in: ConvAt::new(backend, &self.conv_in)?,
            conv_mid: ConvAt::new(backend, &self.conv_mid)?,
            conv_out: ConvAt::new(backend, &self.conv_out)?,
            r_mid: Tensor::zeros(backend, &[n, height, width, hidden])?,
            cond: None,
        })
    }
}

impl<B: Backend> ResidualAt<B> {
    /// The block's output at `(i, j)` from its input there, `x` `[n, 2h]`.
    pub fn step(&mut self, backend: &B, x: &Tensor<B>, i: usize, j: usize) -> Result<Tensor<B>> {
        let a = self.conv_in.point(backend, &backend.relu_forward(x)?)?;
        backend.write_position(&mut self.r_mid, i, j, &backend.relu_forward(&a)?)?;
        let m = add_at(
            backend,
            self.conv_mid.at(backend, &self.r_mid, i, j)?,
            &self.cond,
            i,
            j,
        )?;
        let c = self.conv_out.point(backend, &backend.relu_forward(&m)?)?;
        backend.add(x, &c)
    }
}

/// A Row LSTM layer's incremental state.
pub struct RowLstmAt<B: Backend> {
    is_conv: ConvAt<B>,
    ss_weight: Tensor<B>,
    res_conv: ConvAt<B>,
    /// The layer input `[n, H, W, 2h]`.
    x: Tensor<B>,
    /// Hidden states `[n, H, W, h]`.
    h: Tensor<B>,
    /// Cell states `[n, H, W, h]`.
    c: Tensor<B>,
    /// Conditioning bias `[n, H, W, 4h]` added to the input-to-state map.
    pub cond: Option<Tensor<B>>,
}

impl<B: Backend> RowLstm<B> {
    /// Incremental state for `n` images of `height x width`.
    pub fn incremental(
        &self,
        backend: &B,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<RowLstmAt<B>> {
        let hidden = self.ss_weight.value.shape[1];
        Ok(RowLstmAt {
            is_conv: ConvAt::new(backend, &self.is_conv)?,
            ss_weight: self.ss_weight.value.clone(),
            res_conv: ConvAt::new(backend, &self.res_conv)?,
            x: Tensor::zeros(backend, &[n, height, width, 2 * hidden])?,
            h: Tensor::zeros(backend, &[n, height, width, hidden])?,
            c: Tensor::zeros(backend, &[n, height, width, hidden])?,
            cond: None,
        })
    }
}

impl<B: Backend> RowLstmAt<B> {
    /// The layer's output at `(i, j)` from its input there, `x` `[n, 2h]`.
    pub fn step(&mut self, backend: &B, x: &Tensor<B>, i: usize, j: usize) -> Result<Tensor<B>> {
        backend.write_position(&mut self.x, i, j, x)?;
        let is = add_at(
            backend,
            self.is_conv.at(backend, &self.x, i, j)?,
            &self.cond,
            i,
            j,
        )?;
        backend.row_lstm_forward_at(&is, &self.ss_weight, &mut self.h, &mut self.c, i, j)?;
        let h = backend.read_position(&self.h, i, j)?;
        backend.add(x, &self.res_conv.point(backend, &h)?)
    }
}

/// A Diagonal BiLSTM layer's incremental state.
pub struct DiagBiLstmAt<B: Backend> {
    left_is: ConvAt<B>,
    left_ss: Tensor<B>,
    right_is: ConvAt<B>,
    right_ss: Tensor<B>,
    res_conv: ConvAt<B>,
    width: usize,
    /// The layer input `[n, H, W, 2h]`.
    x: Tensor<B>,
    /// Left direction: hidden and cell states, image coordinates.
    h_left: Tensor<B>,
    c_left: Tensor<B>,
    /// Right direction: hidden and cell states in mirrored coordinates (`(r, W-1-j)` holds
    /// image position `(r, j)`), as the full forward computes them.
    h_right: Tensor<B>,
    c_right: Tensor<B>,
    /// Conditioning biases `[n, H, W, 4h]` of the left direction (image coordinates) and of
    /// the right direction (mirrored coordinates, like its states).
    pub cond: Option<(Tensor<B>, Tensor<B>)>,
}

impl<B: Backend> DiagBiLstm<B> {
    /// Incremental state for `n` images of `height x width`.
    pub fn incremental(
        &self,
        backend: &B,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<DiagBiLstmAt<B>> {
        let hidden = self.left.ss_weight.value.shape[1];
        let map = |f: usize| Tensor::zeros(backend, &[n, height, width, f]);
        Ok(DiagBiLstmAt {
            left_is: ConvAt::new(backend, &self.left.is_conv)?,
            left_ss: self.left.ss_weight.value.clone(),
            right_is: ConvAt::new(backend, &self.right.is_conv)?,
            right_ss: self.right.ss_weight.value.clone(),
            res_conv: ConvAt::new(backend, &self.res_conv)?,
            width,
            x: map(2 * hidden)?,
            h_left: map(hidden)?,
            c_left: map(hidden)?,
            h_right: map(hidden)?,
            c_right: map(hidden)?,
            cond: None,
        })
    }
}

impl<B: Backend> DiagBiLstmAt<B> {
    /// The layer's output at `(i, j)` from its input there, `x` `[n, 2h]`: the left direction
    /// at `(i, j)` plus the right direction's state of `(i - 1, j)` (the shift down), which
    /// [`DiagBiLstmAt::finish_row`] computed when row `i - 1` was complete.
    pub fn step(&mut self, backend: &B, x: &Tensor<B>, i: usize, j: usize) -> Result<Tensor<B>> {
        backend.write_position(&mut self.x, i, j, x)?;
        let mut is = self.left_is.point(backend, x)?;
        if let Some((left, _)) = &self.cond {
            is = backend.add(&is, &backend.read_position(left, i, j)?)?;
        }
        backend.diag_lstm_forward_at(
            &is,
            &self.left_ss,
            &mut self.h_left,
            &mut self.c_left,
            i,
            j,
        )?;
        let mut h = backend.read_position(&self.h_left, i, j)?;
        if i > 0 {
            let right = backend.read_position(&self.h_right, i - 1, self.width - 1 - j)?;
            h = backend.add(&h, &right)?;
        }
        backend.add(x, &self.res_conv.point(backend, &h)?)
    }

    /// The right direction's states of row `r`, whose input is now final: the diagonal scan
    /// on the mirrored row, left to right in mirrored coordinates.
    pub fn finish_row(&mut self, backend: &B, r: usize) -> Result<()> {
        for jm in 0..self.width {
            let x = backend.read_position(&self.x, r, self.width - 1 - jm)?;
            let mut is = self.right_is.point(backend, &x)?;
            if let Some((_, right)) = &self.cond {
                is = backend.add(&is, &backend.read_position(right, r, jm)?)?;
            }
            backend.diag_lstm_forward_at(
                &is,
                &self.right_ss,
                &mut self.h_right,
                &mut self.c_right,
                r,
                jm,
            )?;
        }
        Ok(())
    }
}

/// The output head at one position.
pub struct HeadAt<B: Backend> {
    hidden: ConvAt<B>,
    logits: ConvAt<B>,
}

impl<B: Backend> OutputHead<B> {
    /// The head ready for single positions.
    pub fn incremental(&self, backend: &B) -> Result<HeadAt<B>> {
        Ok(HeadAt {
            hidden: ConvAt::new(backend, &self.hidden)?,
            logits: ConvAt::new(backend, &self.logits)?,
        })
    }
}

impl<B: Backend> HeadAt<B> {
    /// Logits `[n, logits_per_position]` from the last layer's features `x` `[n, 2h]`.
    pub fn logits(&self, backend: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let z = self.hidden.point(backend, &backend.relu_forward(x)?)?;
        self.logits.point(backend, &backend.relu_forward(&z)?)
    }
}
