//! Optimizer updates on the CPU. CPU twins of `kernels/optim.cu`.

use rayon::prelude::*;

use crate::backend::{AdamStep, RmsPropStep};

const MIN_LEN: usize = 1 << 14;

/// `ms = decay ms + (1 - decay) g^2;  p -= lr g / sqrt(ms + eps)`.
pub fn rmsprop_update(p: &mut [f32], g: &[f32], ms: &mut [f32], s: RmsPropStep) {
    p.par_iter_mut()
        .zip(g.par_iter().zip(ms.par_iter_mut()))
        .with_min_len(MIN_LEN)
        .for_each(|(p, (&g, ms))| {
            *ms = s.decay * *ms + (1.0 - s.decay) * g * g;
            *p -= s.lr * g / (*ms + s.eps).sqrt();
        });
}

/// Adam with bias correction: `p -= lr m_hat / (sqrt(v_hat) + eps)`.
pub fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamStep) {
    p.par_iter_mut()
        .zip(g.par_iter())
        .zip(m.par_iter_mut().zip(v.par_iter_mut()))
        .with_min_len(MIN_LEN)
        .for_each(|((p, &g), (m, v))| {
            *m = s.beta1 * *m + (1.0 - s.beta1) * g;
            *v = s.beta2 * *v + (1.0 - s.beta2) * g * g;
            let m_hat = *m / s.bias_correction1;
            let v_hat = *v / s.bias_correction2;
            *p -= s.lr * m_hat / (v_hat.sqrt() + s.eps);
        });
}
