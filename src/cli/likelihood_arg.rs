//! `train --likelihood softmax|logistic-mixture --mixtures K` (docs/logistic-mixture.md).

use anyhow::bail;
use pixelrnn::models::{Likelihood, DEFAULT_MIXTURES};

/// `--likelihood`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum LikelihoodArg {
    /// 256-way softmax per sub-pixel (Bernoulli for binary data).
    Softmax,
    /// Discretized logistic mixture per pixel (PixelCNN++).
    LogisticMixture,
}

/// The likelihood that `--likelihood` and `--mixtures` ask for.
pub(super) fn likelihood_of(
    likelihood: Option<LikelihoodArg>,
    mixtures: Option<usize>,
) -> anyhow::Result<Likelihood> {
    match (likelihood, mixtures) {
        (None | Some(LikelihoodArg::Softmax), None) => Ok(Likelihood::Softmax),
        (None | Some(LikelihoodArg::Softmax), Some(_)) => {
            bail!("--mixtures is for --likelihood logistic-mixture")
        }
        (Some(LikelihoodArg::LogisticMixture), k) => Ok(Likelihood::LogisticMixture {
            mixtures: k.unwrap_or(DEFAULT_MIXTURES),
        }),
    }
}
