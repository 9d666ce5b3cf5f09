//! `masked_conv2d_pack` and `masked_conv2d_forward_at` on CUDA (incremental sampling): host
//! side of the `pack` and `fwd_at` kernels of `kernels/masked_conv2d.cu`.
//!
//! Packed layout: `[taps * cin, cout]`, row `t * cin + i` holding `w[:, i, tap t]` over the
//! live raster taps with the centre tap's group mask applied (masked entries 0), the CPU
//! twin's layout: `fwd_at` runs one thread per (image, output feature), so neighbouring
//! threads read neighbouring words of each packed row. The pack is also what fwd v3 and the
//! tensor-core forward run from. Versions: `pack` v1 (one thread per packed element) and v2
//! (a 32 x 33 shared transpose tile, coalesced both ways), selected by
//! [`super::MaskedConv2dPack`]; `fwd_at` v1, selected by [`super::MaskedConv2dAt`].

use super::launch_args::int;
use super::masked_conv2d::spec_args;
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, MaskedConv2dPack, BLOCK, MAX_BLOCKS};
use crate::backend::geometry::{ConvGeom, PackGeom};
use crate::backend::ConvSpec;
use crate::error::{Error, Result};

/// Side of `pack_v2`'s transpose tile (`MASKED_CONV2D_WR_TILE`).
const PACK_TILE: usize = 32;
use crate::tensor::Tensor;

/// The selected version ([`super::Variants::masked_conv2d_at`]).
fn selected_version<E: Executor>(be: &CudaBackend<E>) -> u32 {
    be.variants().masked_conv2d_at.number()
}

/// Packs `w` `[cout, cin, kh, kw]` into `[taps * cin, cout]` for [`forward_at`].
pub fn pack<E: Executor>(
    be: &CudaBackend<E>,
    w: &Tensor<CudaBackend<E>>,
    spec: &ConvSpec,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "masked_conv2d_pack";
    let g = PackGeom::new(NAME, w, spec)?;
    int(NAME, "weight elements", w.numel())?;
    let version = be.variants().masked_conv2d_pack;
    let packed = be.tensor_uninit(&g.packed_shape())?;
    if packed.numel() == 0 {
        return Ok(packed);
    }
    let mut args = vec![
        arg(w),
        arg(&packed),
        Arg::I32(int(NAME, "input features", g.cin)?),
        Arg::I32(int(NAME, "output features", g.cout)?),
    ];
    args.extend(spec_args(NAME, spec)?);
    let cfg = match version {
        MaskedConv2dPack::V1 => LaunchCfg::for_elements(packed.numel(), BLOCK, MAX_BLOCKS),
        // One 32 x 32 tile per block: (cin * kh * kw) weight columns x cout rows.
        MaskedConv2dPack::V2 => LaunchCfg {
            grid: [
                int(
                    NAME,
                    "pack blocks",
                    (g.cin * spec.kh * spec.kw).div_ceil(PACK_TILE),
                )? as u32,
                u16::try_from(g.cout.div_ceil(PACK_TILE))
                    .map(u32::from)
                    .map_err(|_| {
                        Error::shape(NAME, "too many output features for the pack's grid")
                    })?,
                1,
            ],
            block: [BLOCK, 1, 1],
            shared_bytes: 0,
            cluster: [1, 1, 1],
            flops: 0,
        },
    };
    be.launch(
        &format!("masked_conv2d_pack_v{}", version.number()),
        &cfg,
        &args,
    )?;
    Ok(packed)
}

/// The output of the convolution at position `(i, j)` only: `[n, cout]`.
pub fn forward_at<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    packed: &Tensor<CudaBackend<E>>,
    b: &Tensor<CudaBackend<E>>,
    spec: &ConvSpec,
    i: usize,
    j: usize,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "masked_conv2d_forward_at";
    let ConvGeom { n, h, w, cin, cout } = ConvGeom::forward_at(NAME, x, packed, b, spec, i, j)?;
    let taps = spec.taps().len();
    let version = selected_version(be);
    let y = be.tensor_uninit(&[n, cout])?;
    if y.numel() == 0 {
        return Ok(y);
    }
    let args = [
        arg(x),
        arg(packed),
        arg(b),
        arg(&y),
        Arg::I32(int(NAME, "batch", n)?),
        Arg::I32(int(NAME, "height", h)?),
        Arg::I32(int(NAME, "width", w)?),
        Arg::I32(int(NAME, "input features", cin)?),
        Arg::I32(int(NAME, "output features", cout)?),
        Arg::I32(int(NAME, "kernel height", spec.kh)?),
        Arg::I32(int(NAME, "kernel width", spec.kw)?),
        Arg::I32(int(NAME, "live taps", taps)?),
        Arg::I32(int(NAME, "row", i)?),
        Arg::I32(int(NAME, "column", j)?),
    ];
    be.launch(
        &format!("masked_conv2d_fwd_at_v{version}"),
        &LaunchCfg::for_elements(y.numel(), BLOCK, MAX_BLOCKS),
        &args,
    )?;
    Ok(y)
}
