//! `relu`, `add` and `scale` on CUDA: host side of `kernels/elementwise.cu` (CPU twin:
//! `cpu/elementwise.rs`). Also the launch helpers shared by this backend's other
//! one-thread-per-element ops (bernoulli_nll, optim, position, sample_logits).

use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK, MAX_BLOCKS};
use crate::error::{Error, Result};
use crate::tensor::{same_shape, Tensor};

/// `n` as the kernels' `pixelrnn_index_t` (`long long`).
pub(super) fn index(op: &'static str, n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::shape(op, format!("{n} elements do not fit in 64 bits")))
}

/// `n` as a kernel's `int` parameter.
pub(super) fn int(op: &'static str, what: &str, n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| {
        Error::shape(
            op,
            format!("{what} = {n} is larger than the kernel's int range"),
        )
    })
}

/// The launch of a grid-stride kernel over `n` elements: `PIXELRNN_BLOCK` threads per block,
/// one thread per element up to `MAX_BLOCKS` blocks.
pub(super) fn grid_stride(n: usize) -> LaunchCfg {
    LaunchCfg::for_elements(n, BLOCK, MAX_BLOCKS)
}

/// `max(x, 0)` elementwise (`elementwise_relu_fwd_v<N>`).
pub fn relu_forward<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
) -> Result<Tensor<CudaBackend<E>>> {
    let n = x.numel();
    let y = be.tensor_uninit(&x.shape)?;
    if n > 0 {
        be.launch(
            &be.kernel_name("elementwise", "relu_fwd"),
            &grid_stride(n),
            &[arg(x), arg(&y), Arg::I64(index("relu_forward", n)?)],
        )?;
    }
    Ok(y)
}

/// `dy * (y > 0)` elementwise (`elementwise_relu_bwd_v<N>`).
pub fn relu_backward<E: Executor>(
    be: &CudaBackend<E>,
    y: &Tensor<CudaBackend<E>>,
    dy: &Tensor<CudaBackend<E>>,
) -> Result<Tensor<CudaBackend<E>>> {
    same_shape("relu_backward", y, dy)?;
    let n = y.numel();
    let dx = be.tensor_uninit(&y.shape)?;
    if n > 0 {
        be.launch(
            &be.kernel_name("elementwise", "relu_bwd"),
            &grid_stride(n),
            &[
                arg(y),
                arg(dy),
                arg(&dx),
                Arg::I64(index("relu_backward", n)?),
            ],
        )?;
    }
    Ok(dx)
}

/// `a + b` elementwise (`elementwise_add_fwd_v<N>`).
pub fn add<E: Executor>(
    be: &CudaBackend<E>,
    a: &Tensor<CudaBackend<E>>,
    b: &Tensor<CudaBackend<E>>,
) -> Result<Tensor<CudaBackend<E>>> {
    same_shape("add", a, b)?;
    let n = a.numel();
    let c = be.tensor_uninit(&a.shape)?;
    if n > 0 {
        be.launch(
            &be.kernel_name("elementwise", "add_fwd"),
            &grid_stride(n),
            &[arg(a), arg(b), arg(&c), Arg::I64(index("add", n)?)],
        )?;
    }
    Ok(c)
}

/// `x *= s` in place (`elementwise_scale_fwd_v<N>`); a buffer shared with a clone is copied first.
pub fn scale_inplace<E: Executor>(
    be: &CudaBackend<E>,
    x: &mut Tensor<CudaBackend<E>>,
    s: f32,
) -> Result<()> {
    let n = x.numel();
    if n == 0 {
        return Ok(());
    }
    be.make_unique(x)?;
    be.launch(
        &be.kernel_name("elementwise", "scale_fwd"),
        &grid_stride(n),
        &[arg(x), Arg::I64(index("scale_inplace", n)?), Arg::F32(s)],
    )
}
