//! `gated` on CUDA: host side of `kernels/gated.cu` (CPU twin: `cpu/gated.rs`). Shapes are
//! checked by `geometry::GatedGeom`; the kernels have one version each.

use super::launch_args::{grid_stride, index, int};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::GatedGeom;
use crate::error::Result;
use crate::tensor::Tensor;

/// `tanh(f) * sigmoid(g)` (`gated_fwd_v1`).
pub fn forward<E: Executor>(
    be: &CudaBackend<E>,
    pre: &Tensor<CudaBackend<E>>,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "gated_forward";
    let g = GatedGeom::forward(NAME, pre)?;
    let y = be.tensor_uninit(&g.out_shape(pre))?;
    let n = g.outputs();
    if n > 0 {
        be.launch(
            &be.kernel_name("gated", "fwd"),
            &grid_stride(n),
            &[
                arg(pre),
                arg(&y),
                Arg::I64(index(NAME, n)?),
                Arg::I32(int(NAME, "features", g.features)?),
            ],
        )?;
    }
    Ok(y)
}

/// The pre-activation's gradient from the output gradient `dy` (`gated_bwd_v1`).
pub fn backward<E: Executor>(
    be: &CudaBackend<E>,
    pre: &Tensor<CudaBackend<E>>,
    dy: &Tensor<CudaBackend<E>>,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "gated_backward";
    let g = GatedGeom::backward(NAME, pre, dy)?;
    let dpre = be.tensor_uninit(&pre.shape)?;
    let n = g.outputs();
    if n > 0 {
        be.launch(
            &be.kernel_name("gated", "bwd"),
            &grid_stride(n),
            &[
                arg(pre),
                arg(dy),
                arg(&dpre),
                Arg::I64(index(NAME, n)?),
                Arg::I32(int(NAME, "features", g.features)?),
            ],
        )?;
    }
    Ok(dpre)
}
