//! `rmsprop_update` and `adam_update` on CUDA: host side of `kernels/optim.cu` (CPU twins:
//! `cpu/optim.rs`). In place: parameters and statistics shared with a clone are copied first.

use super::launch_args::{grid_stride, index};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::pointwise::same_shapes;
use crate::backend::{AdamStep, RmsPropStep};
use crate::error::Result;
use crate::tensor::Tensor;

/// One RMSProp update of `param` from `grad` with running mean square `ms`
/// (`optim_rmsprop_v<N>`).
pub fn rmsprop_update<E: Executor>(
    be: &CudaBackend<E>,
    param: &mut Tensor<CudaBackend<E>>,
    grad: &Tensor<CudaBackend<E>>,
    ms: &mut Tensor<CudaBackend<E>>,
    step: RmsPropStep,
) -> Result<()> {
    const OP: &str = "rmsprop_update";
    let n = same_shapes(OP, param, &[grad, ms])?;
    if n == 0 {
        return Ok(());
    }
    be.make_unique(param)?;
    be.make_unique(ms)?;
    be.launch(
        &be.kernel_name("optim", "rmsprop"),
        &grid_stride(n),
        &[
            arg(param),
            arg(grad),
            arg(ms),
            Arg::I64(index(OP, n)?),
            Arg::F32(step.lr),
            Arg::F32(step.decay),
            Arg::F32(step.eps),
        ],
    )
}

/// One Adam update of `param` from `grad` with moments `m`, `v` (`optim_adam_v<N>`).
pub fn adam_update<E: Executor>(
    be: &CudaBackend<E>,
    param: &mut Tensor<CudaBackend<E>>,
    grad: &Tensor<CudaBackend<E>>,
    m: &mut Tensor<CudaBackend<E>>,
    v: &mut Tensor<CudaBackend<E>>,
    step: AdamStep,
) -> Result<()> {
    const OP: &str = "adam_update";
    let n = same_shapes(OP, param, &[grad, m, v])?;
    if n == 0 {
        return Ok(());
    }
    be.make_unique(param)?;
    be.make_unique(m)?;
    be.make_unique(v)?;
    be.launch(
        &be.kernel_name("optim", "adam"),
        &grid_stride(n),
        &[
            arg(param),
            arg(grad),
            arg(m),
            arg(v),
            Arg::I64(index(OP, n)?),
            Arg::F32(step.lr),
            Arg::F32(step.beta1),
            Arg::F32(step.beta2),
            Arg::F32(step.eps),
            Arg::F32(step.bias_correction1),
            Arg::F32(step.bias_correction2),
        ],
    )
}
