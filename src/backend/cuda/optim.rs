//! `rmsprop_update` and `adam_update` on CUDA, one tensor per launch or all of them in one
//! (`*_update_all`, cuda/multi_tensor.rs): host side of `kernels/optim.cu` (CPU twins:
//! `cpu/optim.rs`, and the trait's per-tensor defaults for the `_all` forms). In place:
//! parameters and statistics shared with a clone are copied first.

use super::launch_args::{grid_stride, index};
use super::{arg, multi_tensor, Arg, CudaBackend, Executor, LaunchCfg, BLOCK};
use crate::backend::geometry::pointwise::{parameter_lists, same_shapes};
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

/// [`rmsprop_update`] of every parameter in one launch (`optim_rmsprop_multi_v<N>` over the
/// chunk table of cuda/multi_tensor.rs), gradients scaled by `grad_scale` first unless it is 1.
pub fn rmsprop_update_all<E: Executor>(
    be: &CudaBackend<E>,
    params: &mut [&mut Tensor<CudaBackend<E>>],
    grads: &mut [&mut Tensor<CudaBackend<E>>],
    ms: &mut [&mut Tensor<CudaBackend<E>>],
    grad_scale: f32,
    step: RmsPropStep,
) -> Result<()> {
    const OP: &str = "rmsprop_update_all";
    parameter_lists(OP, params, &[grads, ms])?;
    unique(be, params)?;
    unique(be, ms)?;
    if grad_scale != 1.0 {
        unique(be, grads)?;
    }
    let entries: Vec<_> = (0..params.len())
        .map(|k| [Some(&*params[k]), Some(&*grads[k]), Some(&*ms[k]), None])
        .collect();
    let Some(chunks) = multi_tensor::upload(be, OP, &entries)? else {
        return Ok(());
    };
    be.launch_touching(
        &be.kernel_name("optim", "rmsprop_multi"),
        &LaunchCfg::linear(chunks.rows, BLOCK),
        &[
            arg(&chunks.table),
            Arg::F32(step.lr),
            Arg::F32(step.decay),
            Arg::F32(step.eps),
            Arg::F32(grad_scale),
        ],
        &chunks.touched,
    )
}

/// [`adam_update`] of every parameter in one launch (`optim_adam_multi_v<N>`), gradients
/// scaled by `grad_scale` first unless it is 1.
pub fn adam_update_all<E: Executor>(
    be: &CudaBackend<E>,
    params: &mut [&mut Tensor<CudaBackend<E>>],
    grads: &mut [&mut Tensor<CudaBackend<E>>],
    m: &mut [&mut Tensor<CudaBackend<E>>],
    v: &mut [&mut Tensor<CudaBackend<E>>],
    grad_scale: f32,
    step: AdamStep,
) -> Result<()> {
    const OP: &str = "adam_update_all";
    parameter_lists(OP, params, &[grads, m, v])?;
    unique(be, params)?;
    unique(be, m)?;
    unique(be, v)?;
    if grad_scale != 1.0 {
        unique(be, grads)?;
    }
    let entries: Vec<_> = (0..params.len())
        .map(|k| {
            [
                Some(&*params[k]),
                Some(&*grads[k]),
                Some(&*m[k]),
                Some(&*v[k]),
            ]
        })
        .collect();
    let Some(chunks) = multi_tensor::upload(be, OP, &entries)? else {
        return Ok(());
    };
    be.launch_touching(
        &be.kernel_name("optim", "adam_multi"),
        &LaunchCfg::linear(chunks.rows, BLOCK),
        &[
            arg(&chunks.table),
            Arg::F32(step.lr),
            Arg::F32(step.beta1),
            Arg::F32(step.beta2),
            Arg::F32(step.eps),
            Arg::F32(step.bias_correction1),
            Arg::F32(step.bias_correction2),
            Arg::F32(grad_scale),
        ],
        &chunks.touched,
    )
}

/// Gives every tensor of `list` a buffer of its own (written in place by a kernel that sees
/// only addresses: one shared with a clone must be copied first).
fn unique<E: Executor>(
    be: &CudaBackend<E>,
    list: &mut [&mut Tensor<CudaBackend<E>>],
) -> Result<()> {
    for t in list.iter_mut() {
        be.make_unique(t)?;
    }
    Ok(())
}
