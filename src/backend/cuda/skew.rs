//! `skew` and `unskew` on CUDA: host side of `kernels/skew.cu` (`skew_fwd_v<N>`,
//! `skew_unskew_v<N>`; op `skew`). CPU twin: `cpu/skew.rs`. The Diagonal LSTM itself folds
//! the skew into its indexing; these materialise it.

use super::launch_args::{grid_stride, index, int};
use super::{arg, CudaBackend, Executor};
use crate::backend::geometry::SkewGeom;
use crate::error::Result;
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

/// Launches `skew_<pass>` over the `total` output elements with the map sizes.
fn launch<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    pass: &str,
    src: &T<E>,
    dst: &T<E>,
    g: SkewGeom,
) -> Result<()> {
    let total = dst.numel();
    if total == 0 {
        return Ok(());
    }
    let args = vec![
        arg(src),
        arg(dst),
        super::Arg::I64(index(op, total)?),
        super::Arg::I32(int(op, "H", g.h)?),
        super::Arg::I32(int(op, "W", g.w)?),
        super::Arg::I32(int(op, "skewed width", g.ws)?),
        super::Arg::I32(int(op, "C", g.c)?),
    ];
    be.launch(&be.kernel_name("skew", pass), &grid_stride(total), &args)
}

/// `[n, H, W, C]` -> `[n, H, Ws, C]`, `S[r, r + j] = x[r, j]`, zeros written in the padding.
pub fn skew<E: Executor>(be: &CudaBackend<E>, x: &T<E>) -> Result<T<E>> {
    const OP: &str = "skew";
    let g = SkewGeom::skew(OP, x)?;
    let out = be.tensor_uninit(&g.skewed_shape())?;
    launch(be, OP, "fwd", x, &out, g)?;
    Ok(out)
}

/// `[n, H, Ws, C]` -> `[n, H, W, C]`, `out[r, j] = S[r, r + j]`.
pub fn unskew<E: Executor>(be: &CudaBackend<E>, s: &T<E>) -> Result<T<E>> {
    const OP: &str = "unskew";
    let g = SkewGeom::unskew(OP, s)?;
    let out = be.tensor_uninit(&g.image_shape())?;
    launch(be, OP, "unskew", s, &out, g)?;
    Ok(out)
}
