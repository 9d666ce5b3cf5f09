//! `read_position` and `write_position` on CUDA: host side of `kernels/position.cu` (CPU
//! twin: `cpu/position.rs`).

use super::elementwise::{grid_stride, index};
use super::{arg, Arg, CudaBackend, Executor};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Checks `(i, j)` against an `h x w` map.
fn position_in(op: &'static str, h: usize, w: usize, i: usize, j: usize) -> Result<()> {
    if i < h && j < w {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("position ({i}, {j}) outside a {h}x{w} map"),
        ))
    }
}

/// The kernels' trailing arguments `n, h, w, f, i, j`.
fn geometry<'a, E: Executor>(op: &'static str, dims: [usize; 6]) -> Result<Vec<Arg<'a, E>>> {
    dims.iter().map(|&d| Ok(Arg::I64(index(op, d)?))).collect()
}

/// `x[:, i, j, :]` of an NHWC map: `[n, f]` (`position_read_v<N>`).
pub fn read_position<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    i: usize,
    j: usize,
) -> Result<Tensor<CudaBackend<E>>> {
    const OP: &str = "read_position";
    let [n, h, w, f] = x.nhwc(OP)?;
    position_in(OP, h, w, i, j)?;
    let out = be.tensor_uninit(&[n, f])?;
    if n * f > 0 {
        let mut args = vec![arg(x), arg(&out)];
        args.extend(geometry(OP, [n, h, w, f, i, j])?);
        be.launch(
            &be.kernel_name("position", "read"),
            &grid_stride(n * f),
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
    let [n, h, w, f] = x.nhwc(OP)?;
    position_in(OP, h, w, i, j)?;
    if v.shape != [n, f] {
        return Err(Error::shape(
            OP,
            format!("values {:?} do not fit map {:?}", v.shape, x.shape),
        ));
    }
    if n * f == 0 {
        return Ok(());
    }
    be.make_unique(x)?;
    let mut args = vec![arg(x), arg(v)];
    args.extend(geometry(OP, [n, h, w, f, i, j])?);
    be.launch(
        &be.kernel_name("position", "write"),
        &grid_stride(n * f),
        &args,
    )
}
