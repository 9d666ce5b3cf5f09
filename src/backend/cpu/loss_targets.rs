//! `loss_targets` on the CPU: whether any of a loss's targets is invalid. CPU twin of
//! `kernels/loss_targets.cu` (`loss_targets_check_v1`), for its parity test; the CPU losses
//! themselves check each target inside their fused loops ([`Targets::admits`]) and need no
//! separate pass.

use rayon::prelude::*;

use crate::backend::geometry::Targets;

/// Whether some target is not admitted by `kind` (an integer in `0..=kind.max()`).
pub fn any_invalid(targets: &[f32], kind: Targets) -> bool {
    targets
        .par_iter()
        .with_min_len(4096)
        .any(|&t| !kind.admits(t))
}
