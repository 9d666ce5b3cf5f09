//! `row_lstm_forward_at` and `diag_lstm_forward_at` on CUDA (incremental sampling): host side
//! of `row_lstm_fwd_at_v1` (`kernels/row_lstm.cu`) and `diag_lstm_fwd_at_v1`
//! (`kernels/diag_lstm.cu`), and of their tf32 / bf16 versions `<scan>_fwd_at_{tf32,bf16}_v1`
//! (the same body, the state-to-state operands rounded as loaded, fp32 FMA), chosen by the
//! backend's precision ([`at_kernel`]). CPU twin: `cpu/lstm_at.rs` (`forward_at_precision`).
//! One launch per position, one thread per (image, hidden unit), with the fused step's
//! arithmetic (the kernels share its device function), so sweeping every position in raster
//! order reproduces the full forward (at tf32 / bf16 the full forward is the tensor-core
//! steps', which add in another order: equal up to fp32 rounding, not bit for bit).

use super::launch_args::grid_stride;
use super::lstm::{scan_op, Dims};
use super::lstm_precision::{self, Path};
use super::{arg, CudaBackend, Executor};
use crate::backend::geometry::{Geometry, LstmGeom};
use crate::backend::{Backend, Precision};
use crate::error::Result;
use crate::tensor::Tensor;

type T<E> = Tensor<CudaBackend<E>>;

/// The one-position kernel of `geo`'s scan at `precision`: `<scan>_fwd_at_v1` at fp32,
/// `<scan>_fwd_at_<tf32|bf16>_v1` otherwise (v1 is the only version of each).
fn at_kernel(geo: &Geometry, precision: Precision) -> String {
    match precision {
        Precision::Fp32 => format!("{}_fwd_at_v1", scan_op(geo)),
        p => format!("{}_fwd_at_{p}_v1", scan_op(geo)),
    }
}

#[allow(clippy::too_many_arguments)]
fn forward_at<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    is: &T<E>,
    w_ss: &T<E>,
    h: &mut T<E>,
    c: &mut T<E>,
    diagonal: bool,
    i: usize,
    j: usize,
) -> Result<()> {
    let LstmGeom { n, geo } = LstmGeom::at(op, is, w_ss, h, c, diagonal, i, j)?;
    lstm_precision::check(op, Path::ForwardAt, be.precision())?;
    if n * geo.hidden == 0 {
        return Ok(());
    }
    let dims = Dims::new(op, n, &geo)?;
    // The maps are updated in place: copy them first if a clone shares them.
    be.make_unique(h)?;
    be.make_unique(c)?;
    let mut args = vec![arg(is), arg(w_ss), arg(h), arg(c)];
    // i < H and j < W, which Dims::new checked to fit in int.
    dims.push(&mut args, &[i as i32, j as i32]);
    be.launch(
        &at_kernel(&geo, be.precision()),
        &grid_stride(n * geo.hidden),
        &args,
    )
}

/// [`crate::backend::Backend::row_lstm_forward_at`] on CUDA.
pub fn row_forward_at<E: Executor>(
    be: &CudaBackend<E>,
    is: &T<E>,
    w_ss: &T<E>,
    h: &mut T<E>,
    c: &mut T<E>,
    i: usize,
    j: usize,
) -> Result<()> {
    forward_at(be, "row_lstm_forward_at", is, w_ss, h, c, false, i, j)
}

/// [`crate::backend::Backend::diag_lstm_forward_at`] on CUDA.
pub fn diag_forward_at<E: Executor>(
    be: &CudaBackend<E>,
    is: &T<E>,
    w_ss: &T<E>,
    h: &mut T<E>,
    c: &mut T<E>,
    i: usize,
    j: usize,
) -> Result<()> {
    forward_at(be, "diag_lstm_forward_at", is, w_ss, h, c, true, i, j)
}
