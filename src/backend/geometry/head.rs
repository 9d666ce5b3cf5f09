//! The operands of the ops on the output head's logits: the losses (`softmax_nll`,
//! `bernoulli_nll`: logits against targets) and `sample_logits` (logits against uniforms),
//! and what a loss's targets may hold.
//!
//! Logits are `[.., per_value * c]` for values `[.., c]` with the same leading dimensions:
//! 256 logits per value for a 256-way softmax (value `k` of channel `ch` at `k * c + ch`), one
//! for a binary head. The shape check is [`HeadGeom::new`]; the targets' values are checked by
//! [`Targets::admits`], on the host by the CPU backend's loss loops and on the device by the
//! CUDA backend's `loss_targets` kernel, and both report [`Targets::invalid`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Number of values a sub-pixel of a 256-level image can take (`SOFTMAX_NLL_VALUES` in
/// `kernels/softmax_nll.cu`).
pub const LEVELS: usize = 256;

/// What the targets of a loss may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Targets {
    /// `softmax_nll`: integers 0..=255.
    Levels,
    /// `bernoulli_nll`: 0 or 1.
    Binary,
}

impl Targets {
    /// The largest valid target (the smallest is 0, and every valid target is an integer).
    pub fn max(self) -> f32 {
        match self {
            Targets::Levels => (LEVELS - 1) as f32,
            Targets::Binary => 1.0,
        }
    }

    /// Logits per target.
    pub fn logits_per_target(self) -> usize {
        match self {
            Targets::Levels => LEVELS,
            Targets::Binary => 1,
        }
    }

    /// Whether `t` is a valid target: an integer in `0..=max` (NaN and infinities are not).
    /// The `loss_targets` kernel's test, `t >= 0 && t <= max && t == rintf(t)`, is the same.
    #[inline(always)]
    pub fn admits(self, t: f32) -> bool {
        (0.0..=self.max()).contains(&t) && t.fract() == 0.0
    }

    /// The error both backends return when a target of loss `op` is not valid.
    pub fn invalid(self, op: &'static str) -> Error {
        Error::shape(
            op,
            match self {
                Targets::Levels => "targets must be integers in 0..=255",
                Targets::Binary => "targets must be 0 or 1",
            },
        )
    }
}

/// Sizes of one call on the head's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadGeom {
    /// Product of the leading dimensions (positions).
    pub rows: usize,
    /// Values per row `c` (channels).
    pub channels: usize,
}

impl HeadGeom {
    /// `logits` `[.., per_value * c]` for `values` `[.., c]` (same leading dimensions, `c > 0`);
    /// `what` names the values in the error ("targets", "uniforms").
    pub fn new<B: Backend>(
        op: &'static str,
        logits: &Tensor<B>,
        values: &Tensor<B>,
        per_value: usize,
        what: &str,
    ) -> Result<Self> {
        let channels = *values.shape.last().unwrap_or(&0);
        let lead_ok = !values.shape.is_empty()
            && logits.shape.len() == values.shape.len()
            && logits.shape[..logits.shape.len() - 1] == values.shape[..values.shape.len() - 1];
        if channels == 0 || !lead_ok || logits.shape.last() != Some(&(per_value * channels)) {
            return Err(Error::shape(
                op,
                format!(
                    "logits {:?} do not match {what} {:?} ({per_value} logits per value)",
                    logits.shape, values.shape
                ),
            ));
        }
        Ok(HeadGeom {
            rows: values.numel() / channels,
            channels,
        })
    }

    /// A loss: `logits` against `targets` of kind `kind` (shapes only; the values are checked
    /// by the loss itself, see [`Targets::admits`]).
    pub fn loss<B: Backend>(
        op: &'static str,
        logits: &Tensor<B>,
        targets: &Tensor<B>,
        kind: Targets,
    ) -> Result<Self> {
        Self::new(op, logits, targets, kind.logits_per_target(), "targets")
    }

    /// `sample_logits`: `logits` against `uniforms` (256-way, or binary).
    pub fn sample<B: Backend>(
        op: &'static str,
        logits: &Tensor<B>,
        uniforms: &Tensor<B>,
        binary: bool,
    ) -> Result<Self> {
        let per_value = if binary { 1 } else { LEVELS };
        Self::new(op, logits, uniforms, per_value, "uniforms")
    }

    /// `rows * channels`: the values.
    pub fn values(&self) -> usize {
        self.rows * self.channels
    }
}
