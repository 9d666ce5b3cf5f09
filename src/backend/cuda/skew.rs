//! `skew` and `unskew` on CUDA: host side of `kernels/skew.cu` (`skew_fwd_v<N>`,
//! `skew_unskew_v<N>`; op `skew`). CPU twin: `cpu/skew.rs`. The Diagonal LSTM itself folds
//! the skew into its indexing; these materialise it.

use super::elementwise::{grid_stride, index, int};
use super::{arg, CudaBackend, Executor};
use crate::backend::{skewed_width, unskewed_width};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

/// Launches `skew_<pass>` over the `total` output elements with the map sizes.
#[allow(clippy::too_many_arguments)]
fn launch<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    pass: &str,
    src: &T<E>,
    dst: &T<E>,
    h: usize,
    w: usize,
    ws: usize,
    c: usize,
) -> Result<()> {
    let total = dst.numel();
    if total == 0 {
        return Ok(());
    }
    let args = vec![
        arg(src),
        arg(dst),
        super::Arg::I64(index(op, total)?),
        super::Arg::I32(int(op, "H", h)?),
        super::Arg::I32(int(op, "W", w)?),
        super::Arg::I32(int(op, "skewed width", ws)?),
        super::Arg::I32(int(op, "C", c)?),
    ];
    be.launch(&be.kernel_name("skew", pass), &grid_stride(total), &args)
}

/// `[n, H, W, C]` -> `[n, H, Ws, C]`, `S[r, r + j] = x[r, j]`, zeros written in the padding.
pub fn skew<E: Executor>(be: &CudaBackend<E>, x: &T<E>) -> Result<T<E>> {
    const OP: &str = "skew";
    let [n, h, w, c] = x.nhwc(OP)?;
    if w == 0 {
        return Err(Error::shape(OP, "width must be positive"));
    }
    let ws = skewed_width(h, w);
    let out = be.tensor_uninit(&[n, h, ws, c])?;
    launch(be, OP, "fwd", x, &out, h, w, ws, c)?;
    Ok(out)
}

/// `[n, H, Ws, C]` -> `[n, H, W, C]`, `out[r, j] = S[r, r + j]`.
pub fn unskew<E: Executor>(be: &CudaBackend<E>, s: &T<E>) -> Result<T<E>> {
    const OP: &str = "unskew";
    let [n, h, ws, c] = s.nhwc(OP)?;
    let w = unskewed_width(h, ws).ok_or_else(|| {
        Error::shape(
            OP,
            format!("no image of height {h} has a skewed map {ws} wide"),
        )
    })?;
    let out = be.tensor_uninit(&[n, h, w, c])?;
    launch(be, OP, "unskew", s, &out, h, w, ws, c)?;
    Ok(out)
}
