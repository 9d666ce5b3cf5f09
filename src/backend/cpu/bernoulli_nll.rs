//! `bernoulli_nll` on the CPU: NLL of binary targets under logits, with its gradient.
//! CPU twin of `kernels/bernoulli_nll.cu` (`bernoulli_nll_fwd_bwd_v1`).

use rayon::prelude::*;

use crate::backend::geometry::Targets;

/// Fills `nll = softplus(l) - t * l` (computed stably) and `dlogits = (sigmoid(l) - t) * scale`.
/// Returns false if a target is not 0 or 1 ([`Targets::admits`]).
pub fn bernoulli_nll(
    logits: &[f32],
    targets: &[f32],
    grad_scale: f32,
    nll: &mut [f32],
    dlogits: &mut [f32],
) -> bool {
    let bad = std::sync::atomic::AtomicBool::new(false);
    logits
        .par_iter()
        .zip(targets.par_iter())
        .zip(nll.par_iter_mut().zip(dlogits.par_iter_mut()))
        .with_min_len(4096)
        .for_each(|((&l, &t), (out, dl))| {
            if !Targets::Binary.admits(t) {
                bad.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            *out = l.max(0.0) - t * l + (-l.abs()).exp().ln_1p();
            let sig = if l >= 0.0 {
                1.0 / (1.0 + (-l).exp())
            } else {
                let e = l.exp();
                e / (1.0 + e)
            };
            *dl = (sig - t) * grad_scale;
        });
    !bad.into_inner()
}
