//! `diag_bilstm_combine` on CUDA: host side of `kernels/diag_bilstm_combine.cu`
//! (`diag_bilstm_combine_fwd_v<N>`, `diag_bilstm_combine_bwd_v<N>`). CPU twin: the default
//! methods of the `Backend` trait (mirror, shift and add composed).

use super::launch_args::{grid_stride, index, int};
use super::{arg, Arg, CudaBackend, Executor};
use crate::backend::geometry::pointwise::map_pair;
use crate::error::Result;
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

const OP: &str = "diag_bilstm_combine";

/// `left + shift_down(mirror_width(right))` in one pass.
pub fn forward<E: Executor>(be: &CudaBackend<E>, left: &T<E>, right: &T<E>) -> Result<T<E>> {
    let [_, h, w, c] = map_pair(OP, left, right)?;
    let out = be.tensor_uninit(&left.shape)?;
    let total = out.numel();
    if total > 0 {
        let args = [
            arg(left),
            arg(right),
            arg(&out),
            Arg::I64(index(OP, total)?),
            Arg::I32(int(OP, "H", h)?),
            Arg::I32(int(OP, "W", w)?),
            Arg::I32(int(OP, "C", c)?),
        ];
        be.launch(&be.kernel_name(OP, "fwd"), &grid_stride(total), &args)?;
    }
    Ok(out)
}

/// The gradient w.r.t. `right`: `mirror_width(shift_up(dh))` in one pass.
pub fn backward<E: Executor>(be: &CudaBackend<E>, dh: &T<E>) -> Result<T<E>> {
    let [_, h, w, c] = dh.nhwc(OP)?;
    let out = be.tensor_uninit(&dh.shape)?;
    let total = out.numel();
    if total > 0 {
        let args = [
            arg(dh),
            arg(&out),
            Arg::I64(index(OP, total)?),
            Arg::I32(int(OP, "H", h)?),
            Arg::I32(int(OP, "W", w)?),
            Arg::I32(int(OP, "C", c)?),
        ];
        be.launch(&be.kernel_name(OP, "bwd"), &grid_stride(total), &args)?;
    }
    Ok(out)
}
