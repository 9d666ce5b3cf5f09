//! The output layer's ops: the 256-way softmax NLL, the Bernoulli NLL and the logistic mixture
//! NLL (each fused with its gradient), and the sampler's draw of one position of every image.

use super::super::case::{numel, random, values, HostTensor, OpCase, Output};
use super::super::BenchConfig;
use crate::backend::Backend;

/// Deterministic sub-pixel targets in 0..=255 for `len` sub-pixels.
fn targets(len: usize) -> Vec<f32> {
    values(len, 210, 1.0)
        .iter()
        .map(|v| ((v + 1.0) * 127.9).floor().clamp(0.0, 255.0))
        .collect()
}

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let (n, hh, ww, c) = (cfg.batch, cfg.height, cfg.width, cfg.channels);
    let logits = [n, hh, ww, 256 * c];
    let subpixels = [n, hh, ww, c];
    let (l, s) = (numel(&logits), numel(&subpixels));
    const MIXTURES: usize = crate::models::DEFAULT_MIXTURES;
    let mixture = [
        n,
        hh,
        ww,
        crate::models::Likelihood::mixture_params(MIXTURES, c),
    ];
    let m = numel(&mixture);
    vec![
        OpCase::new(
            "softmax_nll",
            "softmax_nll_fwd_bwd",
            format!("{logits:?}"),
            move || {
                Ok(vec![
                    random(&logits, 211, 3.0),
                    HostTensor {
                        shape: subpixels.to_vec(),
                        data: targets(s),
                    },
                ])
            },
            |be: &X, a| {
                let (nll, dl) = be.softmax_nll(&a.t[0], &a.t[1], 1e-3)?;
                Ok(vec![Output::T(nll), Output::T(dl)])
            },
        )
        // logits + targets + nll + dlogits
        .bytes(l + s + s + l),
        OpCase::new(
            "bernoulli_nll",
            "bernoulli_nll_fwd_bwd",
            format!("{subpixels:?}"),
            move || {
                let bits = targets(s)
                    .iter()
                    .map(|&t| (t >= 128.0) as u8 as f32)
                    .collect();
                Ok(vec![
                    random(&subpixels, 212, 3.0),
                    HostTensor {
                        shape: subpixels.to_vec(),
                        data: bits,
                    },
                ])
            },
            |be: &X, a| {
                let (nll, dl) = be.bernoulli_nll(&a.t[0], &a.t[1], 1e-3)?;
                Ok(vec![Output::T(nll), Output::T(dl)])
            },
        )
        // logits + targets + nll + dlogits
        .bytes(4 * s),
        // The logistic mixture of PixelCNN++'s K = 10 (docs/logistic-mixture.md).
        OpCase::new(
            "logistic_mixture_nll",
            "logistic_mixture_fwd_bwd",
            format!("{mixture:?}"),
            move || {
                Ok(vec![
                    random(&mixture, 215, 1.0),
                    HostTensor {
                        shape: subpixels.to_vec(),
                        data: targets(s),
                    },
                ])
            },
            |be: &X, a| {
                let (nll, d) = be.logistic_mixture_nll(&a.t[0], &a.t[1], MIXTURES, 1e-3)?;
                Ok(vec![Output::T(nll), Output::T(d)])
            },
        )
        // params + targets + nll + dparams
        .bytes(2 * m + 2 * s),
        // Sampling: one position of every image of the batch (what the cached sampler draws).
        OpCase::new(
            "sample_logits",
            "sample_logits_fwd",
            format!("[{n}, {}]", 256 * c),
            move || {
                let uniforms = values(n * c, 214, 1.0)
                    .iter()
                    .map(|v| (v + 1.0) * 0.5)
                    .collect();
                Ok(vec![
                    random(&[n, 256 * c], 213, 3.0),
                    HostTensor {
                        shape: vec![n, c],
                        data: uniforms,
                    },
                ])
            },
            |be: &X, a| Ok(vec![Output::T(be.sample_logits(&a.t[0], &a.t[1], false)?)]),
        )
        // logits + uniforms + samples
        .bytes(256 * n * c + n * c + n * c),
    ]
}
