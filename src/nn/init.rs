//! Weight initialisation (documented in docs/ARCHITECTURE.md, "Initialisation").
//!
//! Every convolution weight is uniform in `[-a, a]` with `a = sqrt(3 / fan_in)` (variance
//! `1 / fan_in`, LeCun), where `fan_in` counts only the taps and input features the mask leaves
//! for that output feature: masked weights are exactly zero from the start and never receive a
//! gradient. Biases start at zero (LSTM forget gates: +1, set by the recurrent layers).

use rand::Rng;
use rand_pcg::Pcg64;

use crate::backend::ConvSpec;

/// Initial `[cout, cin, kh, kw]` weights for a convolution under `spec`.
pub fn conv_weight(rng: &mut Pcg64, cin: usize, cout: usize, spec: &ConvSpec) -> Vec<f32> {
    let taps = spec.kh * spec.kw;
    let mut w = vec![0.0f32; cout * cin * taps];
    for o in 0..cout {
        let fan_in = (0..cin)
            .flat_map(|i| (0..taps).map(move |t| (i, t)))
            .filter(|&(i, t)| spec.allows(o, i, t / spec.kw, t % spec.kw))
            .count();
        if fan_in == 0 {
            continue;
        }
        let a = (3.0 / fan_in as f32).sqrt();
        for i in 0..cin {
            for t in 0..taps {
                if spec.allows(o, i, t / spec.kw, t % spec.kw) {
                    w[(o * cin + i) * taps + t] = rng.random_range(-a..a);
                }
            }
        }
    }
    w
}

/// Initial input-to-state bias of an LSTM with `hidden` units: zero, except +1 on the forget
/// gate (block 1 of `[o, f, i, g]`) so that cells start by remembering.
pub fn lstm_bias(hidden: usize) -> Vec<f32> {
    let mut b = vec![0.0f32; 4 * hidden];
    b[hidden..2 * hidden].fill(1.0);
    b
}
