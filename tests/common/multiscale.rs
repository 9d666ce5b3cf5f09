//! What the Multi-Scale PixelRNN tests (tests/multiscale*.rs) share: the base kinds, a model
//! configuration of `n x n x c` images with or without conditioning, and parameter noise.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::models::{Model, ModelConfig, ModelKind, MultiScaleConfig};

use super::models::add_noise;

/// The base models a multi-scale model is built on.
pub const KINDS: [ModelKind; 3] = [
    ModelKind::PixelCnn,
    ModelKind::RowLstm,
    ModelKind::DiagBiLstm,
];

/// A model of `n x n x c` images: multi-scale with base `kind` (`multiscale`), or `kind`
/// conditioned on the `n/r x n/r` image (a stand-alone stage 2), or plain (`cond = None`).
pub fn config(
    kind: ModelKind,
    n: usize,
    c: usize,
    cond: Option<(ModelKind, usize)>,
) -> ModelConfig {
    ModelConfig {
        multiscale: cond.map(|(base, r)| MultiScaleConfig {
            base,
            scale: n / r,
            cond_features: 3,
        }),
        ..ModelConfig::plain(kind, (n, n, c), false, (2, 4, 8))
    }
}

/// Adds noise to every parameter (masked taps included) so nothing is zero by accident.
pub fn perturb(m: &mut Model<CpuBackend>, seed: u64) {
    add_noise(m.params_mut(), seed, 0.3);
}
