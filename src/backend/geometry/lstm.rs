//! The operands of the recurrence ops (`row_lstm_*`, `diag_lstm_*`): the input-to-state map
//! or the gates `[n, H, W, 4h]`, the state weight, the states and their gradient, and for the
//! one-position step of sampling the position. Each op's one check returns an [`LstmGeom`].

use super::position::position_in;
use super::scan::{scan_geometry, Geometry};
use crate::backend::{Backend, LstmState};
use crate::error::{Error, Result};
use crate::tensor::{same_shape, Tensor};

/// The batch and the scan of one recurrence call.
#[derive(Clone, Copy, Debug)]
pub struct LstmGeom {
    /// Images.
    pub n: usize,
    /// The scan over one image.
    pub geo: Geometry,
}

impl LstmGeom {
    /// `[n, H, W, h]`: the hidden and cell state maps.
    pub fn state_shape(&self) -> [usize; 4] {
        [self.n, self.geo.height, self.geo.width, self.geo.hidden]
    }

    /// `n * H * W`: the positions of the batch.
    pub fn positions(&self) -> usize {
        self.n * self.geo.height * self.geo.width
    }

    /// A forward recurrence (`diagonal`: the Diagonal LSTM's scan, else the Row LSTM's): the
    /// input-to-state pre-activations `is` `[n, H, W, 4h]` against the state weight `w_ss`.
    pub fn forward<B: Backend>(
        op: &'static str,
        is: &Tensor<B>,
        w_ss: &Tensor<B>,
        diagonal: bool,
    ) -> Result<Self> {
        let [n, height, width, g] = is.nhwc(op)?;
        if g == 0 || g % 4 != 0 {
            return Err(Error::shape(
                op,
                format!("pre-activations need 4h features, got {g}"),
            ));
        }
        let geo = scan_geometry(op, &w_ss.shape, diagonal, height, width, g / 4)?;
        Ok(LstmGeom { n, geo })
    }

    /// A backward recurrence: the forward's `state` against `w_ss` as in
    /// [`LstmGeom::forward`], and the hidden-state gradient `dh` of the states' shape.
    pub fn backward<B: Backend>(
        op: &'static str,
        state: &LstmState<B>,
        w_ss: &Tensor<B>,
        dh: &Tensor<B>,
        diagonal: bool,
    ) -> Result<Self> {
        let lg = Self::forward(op, &state.gates, w_ss, diagonal)?;
        same_shape(op, &state.h, dh)?;
        same_shape(op, &state.c, dh)?;
        if dh.shape != lg.state_shape() {
            return Err(Error::shape(
                op,
                format!(
                    "hidden-state gradient {:?} does not match the gates",
                    dh.shape
                ),
            ));
        }
        Ok(lg)
    }

    /// A one-position step (`row_lstm_forward_at`, `diag_lstm_forward_at`): states `h`, `c`
    /// `[n, H, W, h]`, pre-activation `is` `[n, 4h]`, the state weight, and `(i, j)` inside
    /// the map.
    #[allow(clippy::too_many_arguments)]
    pub fn at<B: Backend>(
        op: &'static str,
        is: &Tensor<B>,
        w_ss: &Tensor<B>,
        h: &Tensor<B>,
        c: &Tensor<B>,
        diagonal: bool,
        i: usize,
        j: usize,
    ) -> Result<Self> {
        let [n, height, width, hidden] = h.nhwc(op)?;
        same_shape(op, h, c)?;
        if is.shape != [n, 4 * hidden] {
            return Err(Error::shape(
                op,
                format!(
                    "pre-activations {:?} should be [{n}, {}] for states {:?}",
                    is.shape,
                    4 * hidden,
                    h.shape
                ),
            ));
        }
        let geo = scan_geometry(op, &w_ss.shape, diagonal, height, width, hidden)?;
        position_in(op, height, width, i, j)?;
        Ok(LstmGeom { n, geo })
    }
}
