//! `sample_logits` on CUDA: host side of `kernels/sample_logits.cu` (CPU twin:
//! `cpu/sample_logits.rs`). Sampling then downloads `c` floats per image instead of the
//! `256 c` logits.

use super::launch_args::{grid_stride, index, int};
use super::softmax_nll::warp_per_row;
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::HeadGeom;
use crate::error::Result;
use crate::tensor::Tensor;

/// Values drawn from `logits` with `uniforms` (`sample_logits_fwd_v<N>`, or
/// `sample_logits_binary_v<N>` when `binary`); see [`crate::backend::Backend::sample_logits`].
pub fn sample_logits<E: Executor>(
    be: &CudaBackend<E>,
    logits: &Tensor<CudaBackend<E>>,
    uniforms: &Tensor<CudaBackend<E>>,
    binary: bool,
) -> Result<Tensor<CudaBackend<E>>> {
    const OP: &str = "sample_logits";
    let g = HeadGeom::sample(OP, logits, uniforms, binary)?;
    let (rows, channels) = (g.rows, g.channels);
    let out = be.tensor_uninit(&uniforms.shape)?;
    let n = g.values();
    if n == 0 {
        return Ok(out);
    }
    if binary {
        be.launch(
            &be.kernel_name(OP, "binary"),
            &grid_stride(n),
            &[
                arg(logits),
                arg(uniforms),
                arg(&out),
                Arg::I64(index(OP, n)?),
            ],
        )?;
    } else {
        be.launch(
            &be.kernel_name(OP, "fwd"),
            &warp_per_row(OP, n)?,
            &[
                arg(logits),
                arg(uniforms),
                arg(&out),
                Arg::I64(index(OP, rows)?),
                Arg::I32(int(OP, "channels", channels)?),
            ],
        )?;
    }
    Ok(out)
}
