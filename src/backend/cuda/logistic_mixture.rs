//! `logistic_mixture` on CUDA: host side of `kernels/logistic_mixture.cu` (CPU twin:
//! `cpu/logistic_mixture.rs`; formulas: docs/logistic-mixture.md).
//!
//! An invalid target (not an integer in 0..=255, or NaN) is an error, as on the CPU: the kernel
//! gives NaN in that position's nll and dparams, and the `loss_targets` check launched beside
//! it returns [`Targets::invalid`] (the design and its cost: `cuda/loss_targets.rs`). Sampling
//! downloads `C` floats per image instead of the `P` parameters.

use super::launch_args::{index, int};
use super::loss_targets;
use super::softmax_nll::{warp_per_row, LossAndGrad};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::{MixtureGeom, Targets};
use crate::error::Result;
use crate::tensor::Tensor;

/// Fused mixture NLL and its gradient (`logistic_mixture_fwd_bwd_v<N>`).
pub fn logistic_mixture_nll<E: Executor>(
    be: &CudaBackend<E>,
    params: &Tensor<CudaBackend<E>>,
    targets: &Tensor<CudaBackend<E>>,
    mixtures: usize,
    grad_scale: f32,
) -> Result<LossAndGrad<E>> {
    const OP: &str = "logistic_mixture_nll";
    let g = MixtureGeom::loss(OP, params, targets, mixtures)?;
    loss_targets::start(be, OP, targets, Targets::Levels)?;
    let nll = be.tensor_uninit(&targets.shape)?;
    let dparams = be.tensor_uninit(&params.shape)?;
    if g.rows > 0 {
        be.launch(
            &be.kernel_name("logistic_mixture", "fwd_bwd"),
            &warp_per_row(OP, g.rows)?,
            &[
                arg(params),
                arg(targets),
                arg(&nll),
                arg(&dparams),
                Arg::I64(index(OP, g.rows)?),
                Arg::I32(int(OP, "channels", g.channels)?),
                Arg::I32(int(OP, "mixtures", mixtures)?),
                Arg::F32(grad_scale),
            ],
        )?;
    }
    Ok((nll, dparams))
}

/// Pixels drawn from the mixture (`logistic_mixture_sample_v<N>`); see
/// [`crate::backend::Backend::logistic_mixture_sample`].
pub fn logistic_mixture_sample<E: Executor>(
    be: &CudaBackend<E>,
    params: &Tensor<CudaBackend<E>>,
    uniforms: &Tensor<CudaBackend<E>>,
    mixtures: usize,
    temperature: f32,
) -> Result<Tensor<CudaBackend<E>>> {
    const OP: &str = "logistic_mixture_sample";
    let g = MixtureGeom::sample(OP, params, uniforms, mixtures)?;
    MixtureGeom::check_temperature(OP, temperature)?;
    let mut shape = uniforms.shape.clone();
    *shape.last_mut().expect("checked") = g.channels;
    let out = be.tensor_uninit(&shape)?;
    if g.rows == 0 {
        return Ok(out);
    }
    // 1 / temperature on the host, once, as the CPU twin computes it.
    let inv_t = if temperature > 0.0 {
        1.0 / temperature
    } else {
        0.0
    };
    be.launch(
        &be.kernel_name("logistic_mixture", "sample"),
        &warp_per_row(OP, g.rows)?,
        &[
            arg(params),
            arg(uniforms),
            arg(&out),
            Arg::I64(index(OP, g.rows)?),
            Arg::I32(int(OP, "channels", g.channels)?),
            Arg::I32(int(OP, "mixtures", mixtures)?),
            Arg::F32(temperature),
            Arg::F32(inv_t),
        ],
    )?;
    Ok(out)
}
