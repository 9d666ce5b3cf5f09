//! `bernoulli_nll` on CUDA: host side of `kernels/bernoulli_nll.cu` (CPU twin:
//! `cpu/bernoulli_nll.rs`).
//!
//! Unlike the CPU backend, the targets are not checked on the host (that would mean a
//! download every step): the kernel computes `softplus(l) - t l` for any `t`.

use super::elementwise::{grid_stride, int};
use super::softmax_nll::{head_shapes, LossAndGrad};
use super::{arg, Arg, CudaBackend, Executor};
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
    head_shapes(OP, logits, targets, 1, "targets")?;
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
