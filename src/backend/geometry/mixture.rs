//! The operands of the logistic mixture ops (`logistic_mixture_nll`, `logistic_mixture_sample`):
//! a position's `P = K (1 + 2C + C(C-1)/2)` head outputs against its `C` targets, or against
//! its `C + 1` uniforms (the component's, then one per channel).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::models::{Likelihood, MAX_MIXTURES};
use crate::tensor::Tensor;

/// Sizes of one call on the mixture head's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixtureGeom {
    /// Product of the leading dimensions (positions).
    pub rows: usize,
    /// Channels C (1 or 3).
    pub channels: usize,
    /// Components K (1..=32).
    pub mixtures: usize,
}

impl MixtureGeom {
    /// `params` `[.., P]` against `values` `[.., C + extra]`; `what` names the values.
    fn new<B: Backend>(
        op: &'static str,
        params: &Tensor<B>,
        values: &Tensor<B>,
        mixtures: usize,
        extra: usize,
        what: &str,
    ) -> Result<Self> {
        if mixtures == 0 || mixtures > MAX_MIXTURES {
            return Err(Error::shape(
                op,
                format!("mixtures must be in 1..={MAX_MIXTURES}, got {mixtures}"),
            ));
        }
        let last = *values.shape.last().unwrap_or(&0);
        let channels = last.saturating_sub(extra);
        let lead_ok = !values.shape.is_empty()
            && params.shape.len() == values.shape.len()
            && params.shape[..params.shape.len() - 1] == values.shape[..values.shape.len() - 1];
        if (channels != 1 && channels != 3)
            || !lead_ok
            || params.shape.last() != Some(&Likelihood::mixture_params(mixtures, channels))
        {
            return Err(Error::shape(
                op,
                format!(
                    "mixture parameters {:?} do not match {what} {:?} ({mixtures} components; 1 or 3 channels)",
                    params.shape, values.shape
                ),
            ));
        }
        Ok(MixtureGeom {
            rows: values.numel() / last,
            channels,
            mixtures,
        })
    }

    /// The loss: `params` `[.., P]`, `targets` `[.., C]`.
    pub fn loss<B: Backend>(
        op: &'static str,
        params: &Tensor<B>,
        targets: &Tensor<B>,
        mixtures: usize,
    ) -> Result<Self> {
        Self::new(op, params, targets, mixtures, 0, "targets")
    }

    /// The draw: `params` `[.., P]`, `uniforms` `[.., C + 1]`.
    pub fn sample<B: Backend>(
        op: &'static str,
        params: &Tensor<B>,
        uniforms: &Tensor<B>,
        mixtures: usize,
    ) -> Result<Self> {
        Self::new(op, params, uniforms, mixtures, 1, "uniforms")
    }

    /// A draw's temperature: finite and `>= 0` (0 is the most likely pixel).
    pub fn check_temperature(op: &'static str, temperature: f32) -> Result<()> {
        if temperature.is_finite() && temperature >= 0.0 {
            Ok(())
        } else {
            Err(Error::shape(
                op,
                format!("the temperature must be finite and >= 0, got {temperature}"),
            ))
        }
    }

    /// Head outputs per position.
    pub fn params(&self) -> usize {
        Likelihood::mixture_params(self.mixtures, self.channels)
    }
}
