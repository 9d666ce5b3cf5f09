//! `conv_transpose2d` on CUDA: host side of `kernels/conv_transpose2d.cu` (shapes checked as
//! the CPU twin checks them, launch configuration, launch).
//!
//! One version per pass (`fwd`, `bwd_data`, `bwd_weight`, `bwd_bias`): the op upsamples the
//! Multi-Scale PixelRNN's small image once per batch, with `cin` the image's channel count.

use super::masked_conv2d::{block_per_element, int, long};
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK, MAX_BLOCKS};
use crate::backend::ConvGrads;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Sizes of one call.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    r: usize,
}

impl Geom {
    /// Output positions `n * h*r * w*r`.
    fn out_positions(&self) -> usize {
        self.n * self.h * self.r * self.w * self.r
    }
}

/// The geometry of `x` `[n, h, w, cin]` under `w` `[cin, cout, k, k]` and `stride` (the CPU
/// twin's checks), plus the kernels' 32-bit limits.
fn geom<E: Executor>(
    op: &'static str,
    x: &Tensor<CudaBackend<E>>,
    w: &Tensor<CudaBackend<E>>,
    stride: usize,
) -> Result<Geom> {
    let [n, h, wd, cin] = x.nhwc(op)?;
    let g = match w.shape.as_slice() {
        &[wcin, cout, k, k2]
            if wcin == cin
                && k == k2
                && stride > 0
                && k >= stride
                && (k - stride).is_multiple_of(2)
                && cout > 0 =>
        {
            Geom {
                n,
                h,
                w: wd,
                cin,
                cout,
                k,
                r: stride,
            }
        }
        s => {
            return Err(Error::shape(
                op,
                format!(
                    "weight {s:?} should be [cin, cout, k, k] with cin = {cin} and k - stride a non-negative even number (input {:?}, stride {stride})",
                    x.shape
                ),
            ))
        }
    };
    // The kernels index output rows and columns (h*r, w*r, plus a tap) and weights in 32 bits.
    int(
        op,
        "output height",
        h.saturating_mul(stride).saturating_add(g.k),
    )?;
    int(
        op,
        "output width",
        wd.saturating_mul(stride).saturating_add(g.k),
    )?;
    int(op, "weight elements", w.numel())?;
    Ok(g)
}

/// The kernels' `n, height, width, cin, cout, k, r` arguments.
fn geom_args<'a, E: Executor>(op: &'static str, g: Geom) -> Result<Vec<Arg<'a, E>>> {
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
    let g = geom(NAME, x, w, stride)?;
    if b.shape != [g.cout] {
        return Err(Error::shape(
            NAME,
            format!("bias {:?} should be [{}]", b.shape, g.cout),
        ));
    }
    let y = be.tensor_uninit(&[g.n, g.h * g.r, g.w * g.r, g.cout])?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let mut args = vec![arg(x), arg(w), arg(b), arg(&y)];
    args.extend(geom_args(NAME, g)?);
    be.launch(
        "conv_transpose2d_fwd_v1",
        &LaunchCfg::for_elements(y.numel(), BLOCK, MAX_BLOCKS),
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
    let g = geom(NAME, x, w, stride)?;
    if dy.shape != [g.n, g.h * g.r, g.w * g.r, g.cout] {
        return Err(Error::shape(
            NAME,
            format!(
                "output gradient {:?} does not fit input {:?}",
                dy.shape, x.shape
            ),
        ));
    }

    // cout > 0 (checked by geom).
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
            &block_per_element(NAME, "weight elements", dw.numel())?,
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
                &LaunchCfg::for_elements(dx.numel(), BLOCK, MAX_BLOCKS),
                &args,
            )?;
        }
        Some(dx)
    } else {
        None
    };
    Ok(ConvGrads { dx, dw, db })
}
