//! `read_position` and `write_position` on CUDA: host side of `kernels/position.cu` (CPU
//! twin: `cpu/position.rs`).

use super::launch_args::{grid_stride, index};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::PositionGeom;
use crate::error::Result;
use crate::tensor::Tensor;

/// The kernels' trailing arguments `n, h, w, f, i, j`.
fn geometry<'a, E: Executor>(op: &'static str, g: PositionGeom) -> Result<Vec<Arg<'a, E>>> {
    [g.n, g.h, g.w, g.f, g.i, g.j]
        .iter()
        .map(|&d| Ok(Arg::I64(index(op, d)?)))
        .collect()
}

/// `x[:, i, j, :]` of an NHWC map: `[n, f]` (`position_read_v<N>`).
pub fn read_position<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    i: usize,
    j: usize,
) -> Result<Tensor<CudaBackend<E>>> {
    const OP: &str = "read_position";
    let g = PositionGeom::read(OP, x, i, j)?;
    let out = be.tensor_uninit(&g.values_shape())?;
    if out.numel() > 0 {
        let mut args = vec![arg(x), arg(&out)];
        args.extend(geometry(OP, g)?);
        be.launch(
            &be.kernel_name("position", "read"),
            &grid_stride(out.numel()),
            &args,
        )?;
    }
    Ok(out)
}

/// `x[:, i, j, :] = v` (`v` `[n, f]`), in place (`position_write_v<N>`).
pub fn write_position<E: Executor>(
    be: &CudaBackend<E>,
    x: &mut Tensor<CudaBackend<E>>,
    i: usize,
    j: usize,
    v: &Tensor<CudaBackend<E>>,
) -> Result<()> {
    const OP: &str = "write_position";
    let g = PositionGeom::write(OP, x, i, j, v)?;
    if v.numel() == 0 {
        return Ok(());
    }
    be.make_unique(x)?;
    let mut args = vec![arg(x), arg(v)];
    args.extend(geometry(OP, g)?);
    be.launch(
        &be.kernel_name("position", "write"),
        &grid_stride(v.numel()),
        &args,
    )
}
