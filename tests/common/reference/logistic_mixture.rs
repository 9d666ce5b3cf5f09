//! Float64 reference of the discretized logistic mixture likelihood, written from PixelCNN++
//! (Salimans et al., 2017, section 2.1 and their released code), never from `src/`:
//!
//! `P(x | pi, mu, s) = sum_k pi_k prod_c [sigma((x_c + 1/255 - mu_kc) / s_kc) -
//! sigma((x_c - 1/255 - mu_kc) / s_kc)]`, with `x` scaled to [-1, 1], the lower edge of bin 0
//! at -infinity and the upper edge of bin 255 at +infinity, `pi = softmax(logits)`,
//! `log s = max(raw, -7)`, and the means of G and B shifted linearly by the coefficients
//! `tanh(raw)` times the pixel's earlier channels: `mu_G + c0 x_R`, `mu_B + c1 x_R + c2 x_G`.
//!
//! Computed with probabilities (not logs) and the CDF difference taken literally; only when
//! both edges are above the centre is it written `sigma(-lo) - sigma(-hi)` (the same number),
//! which keeps float64's precision in the upper tail. Parameter layout of one position, `P =
//! K (1 + 2C + C(C-1)/2)`: `[0, K)` logits, `K + cK + k` means, `K + CK + cK + k` raw
//! log-scales, `K + 2CK + jK + k` raw coefficients.

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The mass of bin `v` (0..=255) under the logistic of mean `mu` and log-scale `log_s`.
pub fn bin_mass(v: u8, mu: f64, log_s: f64) -> f64 {
    let x = v as f64 / 127.5 - 1.0;
    let s = log_s.exp();
    let hi = if v == 255 {
        f64::INFINITY
    } else {
        (x + 1.0 / 255.0 - mu) / s
    };
    let lo = if v == 0 {
        f64::NEG_INFINITY
    } else {
        (x - 1.0 / 255.0 - mu) / s
    };
    if lo > 0.0 {
        sigmoid(-lo) - sigmoid(-hi)
    } else {
        sigmoid(hi) - sigmoid(lo)
    }
}

/// Per-component factors of one position: `(pi_k, [P_k(x_c | x_<c) for each channel])`.
fn factors(p: &[f64], t: &[u8], k: usize) -> Vec<(f64, Vec<f64>)> {
    let c = t.len();
    let max = p[..k].iter().copied().fold(f64::MIN, f64::max);
    let z: f64 = p[..k].iter().map(|l| (l - max).exp()).sum();
    let x: Vec<f64> = t.iter().map(|&v| v as f64 / 127.5 - 1.0).collect();
    (0..k)
        .map(|j| {
            let pi = (p[j] - max).exp() / z;
            let coef = |q: usize| p[k + 2 * c * k + q * k + j].tanh();
            let masses = (0..c)
                .map(|ch| {
                    let mut mu = p[k + ch * k + j];
                    if ch == 1 {
                        mu += coef(0) * x[0];
                    }
                    if ch == 2 {
                        mu += coef(1) * x[0] + coef(2) * x[1];
                    }
                    let log_s = p[k + c * k + ch * k + j].max(-7.0);
                    bin_mass(t[ch], mu, log_s)
                })
                .collect();
            (pi, masses)
        })
        .collect()
}

/// The conditional NLLs of one position's channels, `-ln p(x_c | x_<c)` in nats (they sum to
/// the pixel's `-ln P(x)`).
pub fn position_nll(p: &[f64], t: &[u8], k: usize) -> Vec<f64> {
    let f = factors(p, t, k);
    // joint[c] = p(x_0 .. x_{c-1}) under the mixture; joint[0] = 1.
    let joint: Vec<f64> = (0..=t.len())
        .map(|c| {
            f.iter()
                .map(|(pi, m)| pi * m[..c].iter().product::<f64>())
                .sum()
        })
        .collect();
    (0..t.len())
        .map(|c| -(joint[c + 1] / joint[c]).ln())
        .collect()
}

/// [`position_nll`] of every position: `params` `[positions, P]`, `targets` `[positions, C]`.
pub fn nll(params: &[f64], targets: &[u8], c: usize, k: usize) -> Vec<f64> {
    let per = params.len() / (targets.len() / c);
    params
        .chunks(per)
        .zip(targets.chunks(c))
        .flat_map(|(p, t)| position_nll(p, t, k))
        .collect()
}
