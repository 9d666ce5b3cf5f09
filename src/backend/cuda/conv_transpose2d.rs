//! `conv_transpose2d` on CUDA: host side of `kernels/conv_transpose2d.cu` (shapes checked by
//! `backend::geometry` as on the CPU, the kernels' limits, launch configuration, launch).
//!
//! One version per pass (`fwd`, `bwd_data`, `bwd_weight`, `bwd_bias`): the op upsamples the
//! Multi-Scale PixelRNN's small image once per batch, with `cin` the image's channel count.

use super::launch_args::{block_per_element, int, long};
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK, MAX_BLOCKS};
use crate::backend::geometry::TransposeGeom;
use crate::backend::ConvGrads;
use crate::error::Result;
use crate::tensor::Tensor;

/// The limits of the kernels' 32-bit index arithmetic on a call of geometry `g` (checked by
/// `backend::geometry`) with weight `w`: output rows and columns (`h*r`, `w*r`, plus a tap)
/// and weights.
fn kernel_limits<E: Executor>(
    op: &'static str,
    g: &TransposeGeom,
    w: &Tensor<CudaBackend<E>>,
) -> Result<()> {
    int(
        op,
        "output height",
        g.h.saturating_mul(g.r).saturating_add(g.k),
    )?;
    int(
        op,
        "output width",
        g.w.saturating_mul(g.r).saturating_add(g.k),
    )?;
    int(op, "weight elements", w.numel())?;
    Ok(())
}

/// The kernels' `n, height, width, cin, cout, k, r` arguments.
fn geom_args<'a, E: Executor>(op: &'static str, g: TransposeGeom) -> Result<Vec<Arg<'a, E>>> {
    Ok(vec![
        Arg::I32(int(op, "batch", g.n)?),
        Arg::I32(int(op, "height", g.h)?),
        Arg::I32(int(op, "width", g.w)?),
        Arg::I32(int(op, "input features", g.cin)?),
        Arg::I32(int(op, "output features", g.cout)?),
        Arg::I32(int(op, "kernel size", g.k)?),
        Arg::I32(int(op, "stride", g.r)?),
    ])
}

/// Forward (see [`crate::backend::Backend::conv_transpose2d_forward`]).
pub fn forward<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    w: &Tensor<CudaBackend<E>>,
    b: &Tensor<CudaBackend<E>>,
    stride: usize,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "conv_transpose2d_forward";
    let g = TransposeGeom::forward(NAME, x, w, b, stride)?;
    kernel_limits(NAME, &g, w)?;
    let y = be.tensor_uninit(&g.out_shape())?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let mut args = vec![arg(x), arg(w), arg(b), arg(&y)];
    args.extend(geom_args(NAME, g)?);
    be.launch(
        "conv_transpose2d_fwd_v1",
        &LaunchCfg::for_elements(y.numel(), BLOCK, MAX_BLOCKS).with_flops(g.pass_flops()),
        &args,
    )?;
    Ok(y)
}

/// Backward given `dy` `[n, h*r, w*r, cout]`: `dx` (when `need_dx`), `dw`, `db`.
pub fn backward<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    w: &Tensor<CudaBackend<E>>,
    dy: &Tensor<CudaBackend<E>>,
    stride: usize,
    need_dx: bool,
) -> Result<ConvGrads<CudaBackend<E>>> {
    const NAME: &str = "conv_transpose2d_backward";
    let g = TransposeGeom::backward(NAME, x, w, dy, stride)?;
    kernel_limits(NAME, &g, w)?;

    // cout > 0 (checked by the geometry).
    let db = be.tensor_uninit(&[g.cout])?;
    be.launch(
        "conv_transpose2d_bwd_bias_v1",
        &block_per_element(NAME, "output features", g.cout)?,
        &[
            arg(dy),
            arg(&db),
            Arg::I64(long(NAME, "output positions", g.out_positions())?),
            Arg::I32(int(NAME, "output features", g.cout)?),
        ],
    )?;

    let dw = be.tensor_uninit(&w.shape)?;
    if dw.numel() > 0 {
        let mut args = vec![arg(x), arg(dy), arg(&dw)];
        args.extend(geom_args(NAME, g)?);
        be.launch(
            "conv_transpose2d_bwd_weight_v1",
            &block_per_element(NAME, "weight elements", dw.numel())?.with_flops(g.pass_flops()),
            &args,
        )?;
    }

    let dx = if need_dx {
        let dx = be.tensor_uninit(&x.shape)?;
        if dx.numel() > 0 {
            let mut args = vec![arg(dy), arg(w), arg(&dx)];
            args.extend(geom_args(NAME, g)?);
            be.launch(
                "conv_transpose2d_bwd_data_v1",
                &LaunchCfg::for_elements(dx.numel(), BLOCK, MAX_BLOCKS).with_flops(g.pass_flops()),
                &args,
            )?;
        }
        Some(dx)
    } else {
        None
    };
    Ok(ConvGrads { dx, dw, db })
}
