//! The draw of one value from its logits, and the seeded uniforms every method consumes in the
//! same order (see the module docs of [`super`]).

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

#[cfg(doc)]
use crate::backend::Backend;
#[cfg(doc)]
use crate::models::Model;

/// Network input for image value `v` (as [`Model::batch`]): `v / 127.5 - 1`, or `v` for
/// binary models.
#[inline]
pub fn input_value(v: u8, binary: bool) -> f32 {
    if binary {
        v as f32
    } else {
        v as f32 / 127.5 - 1.0
    }
}

/// Draws channel `channel`'s value from one position's logits (`[logits_per_position]`, the
/// logit of value `k` of channel `c` at `k * channels + c`; binary: one logit per channel)
/// with the uniform `u` in `[0, 1)`: the smallest value whose cumulative probability exceeds
/// `u`. Probabilities are computed in f64 from `logit / temperature` (max subtracted);
/// temperature 0 gives the first most likely value. The host reference of
/// [`Backend::sample_logits`] (which samples in f32 on the backend), and the sampler's draw at
/// temperature 0.
pub fn draw(
    logits: &[f32],
    channel: usize,
    channels: usize,
    binary: bool,
    temperature: f32,
    u: f64,
) -> u8 {
    let t = temperature as f64;
    if binary {
        let l = logits[channel] as f64;
        if t == 0.0 {
            return u8::from(l > 0.0);
        }
        let p = 1.0 / (1.0 + (-l / t).exp());
        return u8::from(u < p);
    }
    let value = |k: usize| logits[k * channels + channel] as f64;
    let (mut best, mut max) = (0usize, f64::NEG_INFINITY);
    for k in 0..256 {
        if value(k) > max {
            (best, max) = (k, value(k));
        }
    }
    if t == 0.0 || !max.is_finite() {
        return best as u8;
    }
    let mut weights = [0.0f64; 256];
    let mut total = 0.0;
    for (k, w) in weights.iter_mut().enumerate() {
        *w = ((value(k) - max) / t).exp();
        total += *w;
    }
    let target = u * total;
    let mut cum = 0.0;
    let mut last = best;
    for (k, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cum += w;
            last = k;
            if target < cum {
                return k as u8;
            }
        }
    }
    last as u8
}

/// The uniform draws for `steps` sampled sub-pixels of `n` images, step-major.
pub fn uniform_draws(seed: u64, steps: usize, n: usize) -> Vec<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..steps * n).map(|_| rng.random::<f64>()).collect()
}
