//! `mirror_width`, `shift_down` and `shift_up` on CUDA: host side of `kernels/mirror_shift.cu`
//! (`mirror_shift_mirror_width_v<N>`, `mirror_shift_shift_down_v<N>`,
//! `mirror_shift_shift_up_v<N>`; op `mirror_shift`). CPU twin: `cpu/mirror_shift.rs`.

use super::launch_args::{grid_stride, index, int};
use super::{arg, Arg, CudaBackend, Executor};
use crate::error::Result;
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

/// `out[r, j] = x[r, W-1-j]`.
pub fn mirror_width<E: Executor>(be: &CudaBackend<E>, x: &T<E>) -> Result<T<E>> {
    const OP: &str = "mirror_width";
    let [_, _, w, c] = x.nhwc(OP)?;
    let out = be.tensor_uninit(&x.shape)?;
    let total = out.numel();
    if total > 0 {
        let args = vec![
            arg(x),
            arg(&out),
            Arg::I64(index(OP, total)?),
            Arg::I32(int(OP, "W", w)?),
            Arg::I32(int(OP, "C", c)?),
        ];
        be.launch(
            &be.kernel_name("mirror_shift", "mirror_width"),
            &grid_stride(total),
            &args,
        )?;
    }
    Ok(out)
}

/// Rows moved by one (`pass` `shift_down` or `shift_up`), the row shifted in zero.
fn shift<E: Executor>(be: &CudaBackend<E>, op: &'static str, pass: &str, x: &T<E>) -> Result<T<E>> {
    let [_, h, w, c] = x.nhwc(op)?;
    let out = be.tensor_uninit(&x.shape)?;
    let total = out.numel();
    if total > 0 {
        let args = vec![
            arg(x),
            arg(&out),
            Arg::I64(index(op, total)?),
            Arg::I32(int(op, "H", h)?),
            Arg::I64(index(op, w * c)?),
        ];
        be.launch(
            &be.kernel_name("mirror_shift", pass),
            &grid_stride(total),
            &args,
        )?;
    }
    Ok(out)
}

/// `out[r] = x[r-1]`, row 0 zero.
pub fn shift_down<E: Executor>(be: &CudaBackend<E>, x: &T<E>) -> Result<T<E>> {
    shift(be, "shift_down", "shift_down", x)
}

/// `out[r] = x[r+1]`, last row zero.
pub fn shift_up<E: Executor>(be: &CudaBackend<E>, x: &T<E>) -> Result<T<E>> {
    shift(be, "shift_up", "shift_up", x)
}
