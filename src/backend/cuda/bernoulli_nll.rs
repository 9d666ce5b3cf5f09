//! `bernoulli_nll` on CUDA: host side of `kernels/bernoulli_nll.cu` (CPU twin:
//! `cpu/bernoulli_nll.rs`).
//!
//! A target other than 0 or 1 is an error, as on the CPU: the kernel computes
//! `softplus(l) - t l` for any `t`, and the `loss_targets` check launched beside it reports
//! [`crate::backend::geometry::Targets::invalid`] (the design and its cost:
//! `cuda/loss_targets.rs`).

use super::launch_args::{grid_stride, int};
use super::loss_targets;
use super::softmax_nll::LossAndGrad;
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::{HeadGeom, Targets};
use crate::error::Result;
use crate::tensor::Tensor;

/// Fused Bernoulli NLL and its gradient (`bernoulli_nll_fwd_bwd_v<N>`).
pub fn bernoulli_nll<E: Executor>(
    be: &CudaBackend<E>,
    logits: &Tensor<CudaBackend<E>>,
    targets: &Tensor<CudaBackend<E>>,
    grad_scale: f32,
) -> Result<LossAndGrad<E>> {
    const OP: &str = "bernoulli_nll";
    HeadGeom::loss(OP, logits, targets, Targets::Binary)?;
    loss_targets::start(be, OP, targets, Targets::Binary)?;
    let n = targets.numel();
    let nll = be.tensor_uninit(&targets.shape)?;
    let dlogits = be.tensor_uninit(&logits.shape)?;
    if n > 0 {
        be.launch(
            &be.kernel_name(OP, "fwd_bwd"),
            &grid_stride(n),
            &[
                arg(logits),
                arg(targets),
                arg(&nll),
                arg(&dlogits),
                Arg::I32(int(OP, "elements", n)?),
                Arg::F32(grad_scale),
            ],
        )?;
    }
    Ok((nll, dlogits))
}
