//! Gated PixelCNN one position at a time, for cached sampling (see `nn::incremental`).
//!
//! The horizontal stack at `(i, j)` reads its input at `(i, j - k/2 .. j)` and the vertical
//! pre-activation of `(i - 1, j)`; the vertical stack at row `i` reads all of rows
//! `i - k/2 .. i` of its input. So [`GatedStackAt::step`] computes the horizontal stacks (and
//! the skip sum) at one position, and [`GatedStackAt::finish_row`] computes the vertical
//! stacks of a whole row once it is complete, storing each layer's pre-activation one row
//! down (the shift) where the next row's steps read it. Same ops and the same order of
//! additions as [`super::GatedStack::forward`], so the logits agree bit for bit. A
//! class-conditional stack keeps each layer's class bias as a whole map (the row of each
//! image's class at every position, made once) and adds it where the forward adds the row.

use super::gated::{GatedLayer, GatedRole};
use super::incremental::ConvAt;
use super::{ClassBias, GatedStack};
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::Tensor;

/// One layer's incremental state.
struct GatedLayerAt<B: Backend> {
    v_conv: ConvAt<B>,
    h_conv: ConvAt<B>,
    link: ConvAt<B>,
    res_conv: Option<ConvAt<B>>,
    skip_conv: ConvAt<B>,
    role: GatedRole,
    /// The horizontal input `[n, H, W, 2h]` (`None` in the first layer, which reads the
    /// network input map of the caller: a copy written in `step` would miss the last channel
    /// of each pixel, which the sampler sets after the pixel's last step).
    h_in: Option<Tensor<B>>,
    /// The vertical input `[n, H, W, 2h]` (`None` in the first layer: the network input).
    v_in: Option<Tensor<B>>,
    /// The vertical pre-activation shifted down one row, `[n, H, W, 4h]` (row 0 stays zero).
    v_shift: Tensor<B>,
    /// Class-conditional layers: the class bias map `[n, H, W, 4h]`.
    class: Option<Tensor<B>>,
}

/// A Gated PixelCNN's incremental state: every layer's cached maps.
pub struct GatedStackAt<B: Backend> {
    layers: Vec<GatedLayerAt<B>>,
    height: usize,
    width: usize,
}

impl<B: Backend> GatedLayer<B> {
    fn incremental(
        &self,
        backend: &B,
        n: usize,
        (height, width): (usize, usize),
        labels: Option<&Tensor<B>>,
    ) -> Result<GatedLayerAt<B>> {
        let cin = self.h_conv.weight.value.shape[1];
        let h4 = self.h_conv.weight.value.shape[0];
        let map = |f: usize| Tensor::zeros(backend, &[n, height, width, f]);
        Ok(GatedLayerAt {
            v_conv: ConvAt::new(backend, &self.v_conv)?,
            h_conv: ConvAt::new(backend, &self.h_conv)?,
            link: ConvAt::new(backend, &self.link)?,
            res_conv: self
                .res_conv
                .as_ref()
                .map(|r| ConvAt::new(backend, r))
                .transpose()?,
            skip_conv: ConvAt::new(backend, &self.skip_conv)?,
            role: self.role,
            h_in: if self.role.first {
                None
            } else {
                Some(map(cin)?)
            },
            v_in: if self.role.first {
                None
            } else {
                Some(map(cin)?)
            },
            v_shift: map(h4)?,
            class: ClassBias::map(&self.class_bias, backend, labels, (n, height, width))?,
        })
    }
}

impl<B: Backend> GatedStack<B> {
    /// Incremental state for `n` images of `height x width`: every cached map zero.
    pub fn incremental(
        &self,
        backend: &B,
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<GatedStackAt<B>> {
        self.incremental_with(backend, n, height, width, None)
    }

    /// [`GatedStack::incremental`] given each image's class `labels` `[n]` (a
    /// class-conditional stack; `None` for an unconditional one).
    pub fn incremental_with(
        &self,
        backend: &B,
        n: usize,
        height: usize,
        width: usize,
        labels: Option<&Tensor<B>>,
    ) -> Result<GatedStackAt<B>> {
        Ok(GatedStackAt {
            layers: self
                .layers
                .iter()
                .map(|l| l.incremental(backend, n, (height, width), labels))
                .collect::<Result<Vec<_>>>()?,
            height,
            width,
        })
    }
}

impl<B: Backend> GatedStackAt<B> {
    /// The skip sum at `(i, j)` (what the head reads), `[n, 2h]`: every layer's horizontal
    /// stack at `(i, j)`, the first reading the network input map `x` `[n, H, W, C]` (final
    /// at every earlier position, set at `(i, j)` up to the channel being drawn). Rows before
    /// `i` must be finished ([`GatedStackAt::finish_row`]).
    pub fn step(&mut self, backend: &B, x: &Tensor<B>, i: usize, j: usize) -> Result<Tensor<B>> {
        let mut input: Option<Tensor<B>> = None;
        let mut skip: Option<Tensor<B>> = None;
        for layer in &mut self.layers {
            let h_in = match (layer.h_in.as_mut(), input.as_ref()) {
                (Some(map), Some(v)) => {
                    backend.write_position(map, i, j, v)?;
                    &*map
                }
                _ => x,
            };
            let link = layer
                .link
                .point(backend, &backend.read_position(&layer.v_shift, i, j)?)?;
            let h_pre = add_class(
                backend,
                backend.add(&layer.h_conv.at(backend, h_in, i, j)?, &link)?,
                &layer.class,
                i,
                j,
            )?;
            let gate = backend.gated_forward(&h_pre)?;
            let s = layer.skip_conv.point(backend, &gate)?;
            skip = Some(match skip {
                None => s,
                Some(acc) => backend.add(&acc, &s)?,
            });
            if let Some(res) = &layer.res_conv {
                let r = res.point(backend, &gate)?;
                input = Some(match (layer.role.first, input) {
                    (false, Some(prev)) => backend.add(&prev, &r)?,
                    _ => r,
                });
            }
        }
        Ok(skip.expect("a stack has at least one layer"))
    }

    /// Row `r` of the network input `x` `[n, H, W, C]` is final: computes every layer's
    /// vertical stack on row `r`, layer by layer (a layer's vertical convolution reads the
    /// whole row of the previous layer's vertical output; the first layer's reads `x`), and
    /// stores the pre-activations at row `r + 1` of the shifted maps.
    pub fn finish_row(&mut self, backend: &B, x: &Tensor<B>, r: usize) -> Result<()> {
        for l in 0..self.layers.len() {
            let mut outs = Vec::with_capacity(self.width);
            {
                let layer = &mut self.layers[l];
                let v_in = layer.v_in.as_ref().unwrap_or(x);
                for j in 0..self.width {
                    let v_pre = add_class(
                        backend,
                        layer.v_conv.at(backend, v_in, r, j)?,
                        &layer.class,
                        r,
                        j,
                    )?;
                    if !layer.role.last {
                        outs.push(backend.gated_forward(&v_pre)?);
                    }
                    if r + 1 < self.height {
                        backend.write_position(&mut layer.v_shift, r + 1, j, &v_pre)?;
                    }
                }
            }
            if let Some(next) = self.layers.get_mut(l + 1) {
                let v_in = next
                    .v_in
                    .as_mut()
                    .expect("later layers keep their vertical input");
                for (j, v) in outs.iter().enumerate() {
                    backend.write_position(v_in, r, j, v)?;
                }
            }
        }
        Ok(())
    }
}

/// `pre + class[:, i, j, :]` when the layer has a class bias map, else `pre` (the forward's
/// `ClassBias::add`, at one position).
fn add_class<B: Backend>(
    backend: &B,
    pre: Tensor<B>,
    class: &Option<Tensor<B>>,
    i: usize,
    j: usize,
) -> Result<Tensor<B>> {
    match class {
        Some(m) => backend.add(&pre, &backend.read_position(m, i, j)?),
        None => Ok(pre),
    }
}
