//! Class bias on CUDA: host side of `kernels/class_bias.cu` (`class_bias_fwd_v<N>`,
//! `class_bias_bwd_v<N>`; op `class_bias`). CPU twin: `cpu/class_bias.rs`.

use super::launch_args::{grid_stride, index, int};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::class_bias::{class_bias, class_bias_table};
use crate::error::Result;
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

/// `x + table[labels[b]]` at every position of image `b` (NaN where a label is not a class).
pub fn forward<E: Executor>(
    be: &CudaBackend<E>,
    x: &T<E>,
    table: &T<E>,
    labels: &T<E>,
) -> Result<T<E>> {
    const OP: &str = "class_bias_forward";
    let g = class_bias_table(OP, x, table, labels)?;
    let out = be.tensor_uninit(&x.shape)?;
    let total = out.numel();
    if total > 0 {
        let args = vec![
            arg(x),
            arg(table),
            arg(labels),
            arg(&out),
            Arg::I64(index(OP, total)?),
            Arg::I64(index(OP, g.positions * g.features)?),
            Arg::I32(int(OP, "F", g.features)?),
            Arg::I32(int(OP, "K", g.classes)?),
        ];
        be.launch(
            &be.kernel_name("class_bias", "fwd"),
            &grid_stride(total),
            &args,
        )?;
    }
    Ok(out)
}

/// `dtable[k] = sum over the images of class k and their positions of dy`, in a fixed order.
pub fn backward<E: Executor>(
    be: &CudaBackend<E>,
    dy: &T<E>,
    labels: &T<E>,
    classes: usize,
) -> Result<T<E>> {
    const OP: &str = "class_bias_backward";
    let g = class_bias(OP, dy, labels, classes)?;
    let out = be.tensor_uninit(&[classes, g.features])?;
    let total = out.numel();
    if total > 0 {
        let args = vec![
            arg(dy),
            arg(labels),
            arg(&out),
            Arg::I32(int(OP, "n", g.n)?),
            Arg::I64(index(OP, g.positions)?),
            Arg::I32(int(OP, "F", g.features)?),
            Arg::I32(int(OP, "K", classes)?),
        ];
        be.launch(
            &be.kernel_name("class_bias", "bwd"),
            &grid_stride(total),
            &args,
        )?;
    }
    Ok(out)
}
