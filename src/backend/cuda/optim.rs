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
    update_all(
        be,
        "rmsprop_update_all",
        "rmsprop_multi",
        params,
        grads,
        ms,
        None,
        grad_scale,
        &[step.lr, step.decay, step.eps],
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
    update_all(
        be,
        "adam_update_all",
        "adam_multi",
        params,
        grads,
        m,
        Some(v),
        grad_scale,
        &[
            step.lr,
            step.beta1,
            step.beta2,
            step.eps,
            step.bias_correction1,
            step.bias_correction2,
        ],
    )
}

/// What the `_all` updates share: checks the lists against `params`, gives every tensor the
/// kernel writes a buffer of its own, and launches `optim_<part>_v<N>` once over the chunk
/// table of `[param, grad, stat, second stat]` per parameter, with the scalar arguments
/// `hyper` and then `grad_scale` (the kernels' parameter order, kernels/optim.cu).
#[allow(clippy::too_many_arguments)]
fn update_all<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    part: &str,
    params: &mut [&mut Tensor<CudaBackend<E>>],
    grads: &mut [&mut Tensor<CudaBackend<E>>],
    stat: &mut [&mut Tensor<CudaBackend<E>>],
    mut second: Option<&mut [&mut Tensor<CudaBackend<E>>]>,
    grad_scale: f32,
    hyper: &[f32],
) -> Result<()> {
    match second.as_deref() {
        Some(second) => parameter_lists(op, params, &[grads, stat, second])?,
        None => parameter_lists(op, params, &[grads, stat])?,
    }
    unique(be, params)?;
    unique(be, stat)?;
    if let Some(second) = second.as_deref_mut() {
        unique(be, second)?;
    }
    if grad_scale != 1.0 {
        // The kernel writes the scaled gradients back.
        unique(be, grads)?;
    }
    let entries: Vec<_> = (0..params.len())
        .map(|k| {
            [
                Some(&*params[k]),
                Some(&*grads[k]),
                Some(&*stat[k]),
                second.as_deref().map(|list| &*list[k]),
            ]
        })
        .collect();
    let Some(chunks) = multi_tensor::upload(be, op, &entries)? else {
        return Ok(());
    };
    let mut args = vec![arg(&chunks.table)];
    args.extend(hyper.iter().map(|&x| Arg::F32(x)));
    args.push(Arg::F32(grad_scale));
    be.launch_touching(
        &be.kernel_name("optim", part),
        &LaunchCfg::linear(chunks.rows, BLOCK),
        &args,
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
