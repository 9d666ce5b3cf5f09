//! `relu`, `add` and `scale` on CUDA: host side of `kernels/elementwise.cu` (CPU twin:
//! `cpu/elementwise.rs`).

use super::launch_args::{grid_stride, index};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::pointwise::same_shapes;
use crate::error::Result;
use crate::tensor::Tensor;

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
    let n = same_shapes("relu_backward", y, &[dy])?;
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
    let n = same_shapes("add", a, &[b])?;
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
