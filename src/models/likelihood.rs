//! The output distribution of a 256-level model: the paper's 256-way softmax per sub-pixel, or
//! the discretized logistic mixture of PixelCNN++ (Salimans et al., 2017) per pixel
//! (docs/logistic-mixture.md). Binary data always has one Bernoulli logit per sub-pixel.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest number of mixture components: the CUDA kernels give each component one lane of
/// a warp (kernels/logistic_mixture.cu).
pub const MAX_MIXTURES: usize = 32;

/// PixelCNN++'s number of components, the default of `--mixtures`.
pub const DEFAULT_MIXTURES: usize = 10;

/// How a model scores a 256-level pixel.
///
/// Saved in the model configuration as `"likelihood": {"logistic-mixture": {"mixtures": K}}`;
/// the softmax (the paper's head, and the default) is not written, so configurations saved
/// before the key existed load as softmax and softmax configurations are unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Likelihood {
    /// 256-way softmax per sub-pixel (the paper's; Bernoulli for binary data).
    #[default]
    #[serde(rename = "softmax")]
    Softmax,
    /// Discretized logistic mixture of `mixtures` components per pixel (PixelCNN++). The head
    /// predicts whole pixels, so the model has one channel group.
    #[serde(rename = "logistic-mixture")]
    LogisticMixture {
        /// K, the number of components.
        mixtures: usize,
    },
}

impl Likelihood {
    /// Whether this is the default softmax (not serialised).
    pub fn is_softmax(&self) -> bool {
        *self == Likelihood::Softmax
    }

    /// K for the mixture, `None` for the softmax.
    pub fn mixtures(&self) -> Option<usize> {
        match *self {
            Likelihood::Softmax => None,
            Likelihood::LogisticMixture { mixtures } => Some(mixtures),
        }
    }

    /// The name on the command line (`softmax`, `logistic-mixture`).
    pub fn name(&self) -> &'static str {
        match self {
            Likelihood::Softmax => "softmax",
            Likelihood::LogisticMixture { .. } => "logistic-mixture",
        }
    }

    /// Checks K and that the data can have this likelihood.
    pub fn validate(&self, binary: bool) -> Result<()> {
        let Some(k) = self.mixtures() else {
            return Ok(());
        };
        if binary {
            return Err(Error::Config(
                "--likelihood logistic-mixture is for 256-level data, but this data is binary (0/1): use the default softmax (a Bernoulli head), or --keep-levels to keep 0/1 data as 256 levels".into(),
            ));
        }
        if k == 0 || k > MAX_MIXTURES {
            return Err(Error::Config(format!(
                "--mixtures must be in 1..={MAX_MIXTURES}, got {k}"
            )));
        }
        Ok(())
    }

    /// Head outputs per position for `channels`-channel images (mixture only): K logits, then
    /// for each channel K means and K log-scales, then for C = 3 the 3K coefficients:
    /// `K (1 + 2C + C(C-1)/2)`, 3K for C = 1 and 10K for C = 3.
    pub fn mixture_params(k: usize, channels: usize) -> usize {
        k * (1 + 2 * channels + channels * (channels - 1) / 2)
    }
}
