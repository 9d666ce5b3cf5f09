//! `masked_conv2d` on CUDA: host side of `kernels/masked_conv2d.cu` (shapes checked by
//! `backend::geometry` as on the CPU, the kernels' limits, launch configuration, version,
//! launch).
//!
//! Versions ([`super::MaskedConv2d`]): v1 (direct, one thread per output or input
//! element) and v2 (implicit GEMM in 64x64 shared-memory tiles) of the passes `fwd` and
//! `bwd_data`; the reductions `bwd_weight` and `bwd_bias` have v1 only, used under either.
//! The kernels receive the spec as the number of live raster taps plus the mask kind and the
//! channel-group parameters, and apply the centre tap's group rule themselves.

use super::launch_args::{block_per_element, int, long};
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK, MAX_BLOCKS};
use crate::backend::geometry::ConvGeom;
use crate::backend::{ConvGrads, ConvSpec, Mask};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The op's name: kernels `masked_conv2d_<pass>_v<N>`.
const OP: &str = "masked_conv2d";
/// Positions and features per block of the v2 kernels (`MASKED_CONV2D_TILE_M/N`).
const TILE: usize = 64;
/// Largest map or kernel side: the v2 kernels mark tile rows past the end with a row index of
/// 2^29 (`MASKED_CONV2D_FAR`), which must stay outside the map under every tap.
const MAX_SIDE: usize = 1 << 28;

/// The limits of the kernels' index arithmetic on a call of geometry `g` (checked by
/// `backend::geometry`) with weight `w`.
fn kernel_limits<E: Executor>(
    op: &'static str,
    g: &ConvGeom,
    w: &Tensor<CudaBackend<E>>,
    spec: &ConvSpec,
) -> Result<()> {
    if [g.h, g.w, spec.kh, spec.kw].iter().any(|&s| s > MAX_SIDE) {
        return Err(Error::shape(
            op,
            format!(
                "map {}x{} or kernel {}x{} exceeds the kernels' limit of {MAX_SIDE}",
                g.h, g.w, spec.kh, spec.kw
            ),
        ));
    }
    // Per-element index arithmetic is 64-bit; the weight's index and the one-block-per-weight
    // grid are 32-bit.
    int(op, "weight elements", w.numel())?;
    Ok(())
}

/// The kernels' code of a mask kind (`MASKED_CONV2D_NONE/A/B`).
fn mask_code(mask: Mask) -> i32 {
    match mask {
        Mask::None => 0,
        Mask::A => 1,
        Mask::B => 2,
    }
}

/// The spec as the trailing kernel arguments
/// `kh, kw, taps, mask, groups, out_block, in_block` (`taps`: the live raster prefix).
pub(super) fn spec_args<'a, E: Executor>(
    op: &'static str,
    spec: &ConvSpec,
) -> Result<Vec<Arg<'a, E>>> {
    Ok(vec![
        Arg::I32(int(op, "kernel height", spec.kh)?),
        Arg::I32(int(op, "kernel width", spec.kw)?),
        Arg::I32(int(op, "live taps", spec.taps().len())?),
        Arg::I32(mask_code(spec.mask)),
        Arg::I32(int(op, "channel groups", spec.groups)?),
        Arg::I32(int(op, "output group block", spec.out_block)?),
        Arg::I32(int(op, "input group block", spec.in_block)?),
    ])
}

/// The kernels' `n, height, width, cin, cout` arguments.
fn geom_args<'a, E: Executor>(op: &'static str, g: ConvGeom) -> Result<Vec<Arg<'a, E>>> {
    Ok(vec![
        Arg::I32(int(op, "batch", g.n)?),
        Arg::I32(int(op, "height", g.h)?),
        Arg::I32(int(op, "width", g.w)?),
        Arg::I32(int(op, "input features", g.cin)?),
        Arg::I32(int(op, "output features", g.cout)?),
    ])
}

/// The selected version of the `fwd` / `bwd_data` kernels ([`super::Variants::masked_conv2d`]).
fn selected_version<E: Executor>(be: &CudaBackend<E>) -> u32 {
    be.variants().masked_conv2d.number()
}

/// Launch configuration of pass `fwd` or `bwd_data` over `rows` positions and `cols` features
/// (`elements` = rows * cols) for `version`.
fn tiled_or_direct(op: &'static str, version: u32, rows: usize, cols: usize) -> Result<LaunchCfg> {
    if version == 1 {
        return Ok(LaunchCfg::for_elements(rows * cols, BLOCK, MAX_BLOCKS));
    }
    // v2: position tiles on x (up to 2^31 - 1 blocks), feature tiles on y (up to 65535).
    let gx = int(op, "position tiles", rows.div_ceil(TILE))?;
    let gy = u16::try_from(cols.div_ceil(TILE))
        .map_err(|_| Error::shape(op, format!("{cols} features exceed the v2 kernels' grid")))?;
    Ok(LaunchCfg {
        grid: [gx as u32, u32::from(gy), 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        flops: 0,
    })
}

/// Forward: `y = conv(x, w) + b` (see [`crate::backend::Backend::masked_conv2d_forward`]).
pub fn forward<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    w: &Tensor<CudaBackend<E>>,
    b: &Tensor<CudaBackend<E>>,
    spec: &ConvSpec,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "masked_conv2d_forward";
    let g = ConvGeom::forward(NAME, x, w, b, spec)?;
    kernel_limits(NAME, &g, w, spec)?;
    let y = be.tensor_uninit(&g.out_shape())?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let version = selected_version(be);
    let cfg = tiled_or_direct(NAME, version, g.positions(), g.cout)?.with_flops(g.pass_flops(spec));
    let mut args = vec![arg(x), arg(w), arg(b), arg(&y)];
    args.extend(geom_args(NAME, g)?);
    args.extend(spec_args(NAME, spec)?);
    be.launch(&format!("{OP}_fwd_v{version}"), &cfg, &args)?;
    Ok(y)
}

/// Backward given `dy`: `dx` (when `need_dx`), `dw` (exactly 0 on masked weights) and `db`.
pub fn backward<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    w: &Tensor<CudaBackend<E>>,
    dy: &Tensor<CudaBackend<E>>,
    spec: &ConvSpec,
    need_dx: bool,
) -> Result<ConvGrads<CudaBackend<E>>> {
    const NAME: &str = "masked_conv2d_backward";
    let g = ConvGeom::backward(NAME, x, w, dy, spec)?;
    kernel_limits(NAME, &g, w, spec)?;
    let version = selected_version(be);

    let db = be.tensor_uninit(&[g.cout])?;
    if g.cout > 0 {
        be.launch(
            "masked_conv2d_bwd_bias_v1",
            &block_per_element(NAME, "output features", g.cout)?,
            &[
                arg(dy),
                arg(&db),
                Arg::I64(long(NAME, "positions", g.positions())?),
                Arg::I32(int(NAME, "output features", g.cout)?),
            ],
        )?;
    }

    let dw = be.tensor_uninit(&w.shape)?;
    if dw.numel() > 0 {
        let mut args = vec![arg(x), arg(dy), arg(&dw)];
        args.extend(geom_args(NAME, g)?);
        args.extend(spec_args(NAME, spec)?);
        be.launch(
            "masked_conv2d_bwd_weight_v1",
            &block_per_element(NAME, "weight elements", dw.numel())?.with_flops(g.pass_flops(spec)),
            &args,
        )?;
    }

    let dx = if need_dx {
        let dx = be.tensor_uninit(&x.shape)?;
        if dx.numel() > 0 {
            let cfg = tiled_or_direct(NAME, version, g.positions(), g.cin)?
                .with_flops(g.pass_flops(spec));
            let mut args = vec![arg(dy), arg(w), arg(&dx)];
            args.extend(geom_args(NAME, g)?);
            args.extend(spec_args(NAME, spec)?);
            be.launch(&format!("{OP}_bwd_data_v{version}"), &cfg, &args)?;
        }
        Some(dx)
    } else {
        None
    };
    Ok(ConvGrads { dx, dw, db })
}
