//! `masked_conv2d` on CUDA: host side of `kernels/masked_conv2d.cu` (shapes checked by
//! `backend::geometry` as on the CPU, the kernels' limits, launch configuration, version,
//! launch).
//!
//! Versions ([`super::MaskedConv2d`]): v1 (direct, one thread per output or input
//! element), v2 (implicit GEMM in 64x64 shared-memory tiles), v3 (implicit GEMM in 128x128
//! tiles from weights packed once per call: `pack_v<N>` ([`super::MaskedConv2dPack`]) for the
//! forward, `pack_transposed_v1` for the input gradient), v4 (v3 at two blocks per SM) and v5
//! (v4 with its tiles staged by cp.async) of the passes `fwd` and `bwd_data`. The weight
//! gradient has its own ([`super::MaskedConv2dWeight`]): v1 (one block per weight element,
//! with `bwd_bias_v1`), v2 (implicit GEMM over position chunks into partial tiles, the bias
//! fused in, then the fixed-order reduction `bwd_weight_reduce_v1`) and v3 (v2 through
//! cp.async: the same launch, partials and reduction).
//! The kernels receive the spec as the number of live raster taps plus the mask kind and the
//! channel-group parameters, and apply the centre tap's group rule themselves.
//!
//! Precision ([`crate::backend::Backend::set_precision`]): at fp32 the selections above run;
//! at tf32 or bf16 every pass runs on the tensor cores (kernels/masked_conv2d_mma.cu and
//! kernels/masked_conv2d_mma_weight.cu, version [`super::MaskedConv2dMma`]): `fwd_<p>` and
//! `bwd_data_<p>` from the same packed weights as v3, `bwd_weight_<p>` into split-K partials
//! (128 x 64 tiles, chunks of 16 positions) finished by `bwd_weight_reduce_v1`. Their CPU twin
//! is the CPU backend at the same precision (cpu/masked_conv2d_precision.rs).

use super::launch_args::{block_per_element, int, long};
use super::{arg, Arg, CudaBackend, Executor, LaunchCfg, MaskedConv2dWeight, BLOCK, MAX_BLOCKS};
use crate::backend::geometry::ConvGeom;
use crate::backend::{Backend, ConvGrads, ConvSpec, Mask, Precision};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The op's name: kernels `masked_conv2d_<pass>_v<N>`.
const OP: &str = "masked_conv2d";
/// Positions and features per block of the v2 kernels (`MASKED_CONV2D_TILE_M/N`).
const TILE: usize = 64;
/// Positions and features per block of the v3, v4 and v5 kernels (`MASKED_CONV2D_G3_M/N`).
const TILE_V3: usize = 128;
/// Output features and (tap, input feature) columns per block of `bwd_weight_v2`
/// (`WGRAD_M/N`, kernels/wgrad_gemm.cuh).
const WG_TILE: usize = 128;
/// Positions per shared chunk of `bwd_weight_v2` (`WGRAD_K`): every split but the
/// last is a multiple of it.
const WG_K: usize = 8;
/// Blocks `bwd_weight_v2` aims for: two waves' worth of the 132 SMs of an H200 at its two
/// resident blocks per SM (16 KiB of shared memory and about 128 registers per thread each),
/// so that a layer with a few tiles still fills the device through the position splits.
const WG_TARGET_BLOCKS: usize = 2 * 2 * 132;
/// Fewest positions per split: below this the partial tile each block writes (64 KiB) costs
/// more than a quarter of what the block reads.
const WG_MIN_CHUNK: usize = 256;
/// Rows (positions, or output features for the weight gradient) per block of the tensor-core
/// kernels (`MCM_M`, kernels/masked_conv2d_mma.cuh).
const MMA_TILE_M: usize = 128;
/// Columns (features, or (tap, input feature) pairs) per block of the tensor-core kernels
/// (`MCM_N`).
const MMA_TILE_N: usize = 64;
/// K chunk of the tensor-core kernels (`MCM_K`): the weight gradient's splits are multiples.
const MMA_K: usize = 16;
/// Side of the reduction's transpose tile (`MASKED_CONV2D_WR_TILE`).
const WR_TILE: usize = 32;
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

/// The kernels' code of a mask kind (`MASKED_CONV2D_NONE/A/B`). [`Mask::Vertical`] needs no
/// code of its own: its live taps are the raster prefix that ends with the centre row
/// (`spec.taps()`, passed as the count) and it has no channel-group rule, so to the kernels it
/// is an unmasked kernel cut short, which they already run (they visit taps `0..taps` only and
/// test the group rule only at the centre, never for `NONE`).
fn mask_code(mask: Mask) -> i32 {
    match mask {
        Mask::None | Mask::Vertical => 0,
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

/// The tensor-core kernel of `pass` (`fwd`, `bwd_data`, `bwd_weight`) at `precision`:
/// `masked_conv2d_<pass>_<tf32|bf16>_v<N>` with N from [`super::Variants::masked_conv2d_mma`];
/// `None` at fp32 (the fp32 selections apply).
fn mma_kernel<E: Executor>(
    be: &CudaBackend<E>,
    pass: &str,
    precision: Precision,
) -> Option<String> {
    (precision != Precision::Fp32).then(|| {
        format!(
            "{OP}_{pass}_{precision}_v{}",
            be.variants().masked_conv2d_mma.number()
        )
    })
}

/// Launch configuration of the tensor-core `fwd` / `bwd_data` kernels over `rows` positions and
/// `cols` features: position tiles on x, feature tiles on y.
fn mma_tiles(op: &'static str, rows: usize, cols: usize) -> Result<LaunchCfg> {
    let gx = int(op, "position tiles", rows.div_ceil(MMA_TILE_M))?;
    let gy = u16::try_from(cols.div_ceil(MMA_TILE_N)).map_err(|_| {
        Error::shape(
            op,
            format!("{cols} features exceed the tensor-core kernels' grid"),
        )
    })?;
    Ok(LaunchCfg {
        grid: [gx as u32, u32::from(gy), 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    })
}

/// Launch configuration of pass `fwd` or `bwd_data` over `rows` positions and `cols` features
/// (`elements` = rows * cols) for `version`.
fn tiled_or_direct(op: &'static str, version: u32, rows: usize, cols: usize) -> Result<LaunchCfg> {
    if version == 1 {
        return Ok(LaunchCfg::for_elements(rows * cols, BLOCK, MAX_BLOCKS));
    }
    // v2, v3: position tiles on x (up to 2^31 - 1 blocks), feature tiles on y (up to 65535).
    let tile = if version >= 3 { TILE_V3 } else { TILE };
    let gx = int(op, "position tiles", rows.div_ceil(tile))?;
    let gy = u16::try_from(cols.div_ceil(tile)).map_err(|_| {
        Error::shape(
            op,
            format!("{cols} features exceed the v{version} kernels' grid"),
        )
    })?;
    Ok(LaunchCfg {
        grid: [gx as u32, u32::from(gy), 1],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    })
}

/// The v3 kernels' trailing `kh, kw, taps` (the mask is in the packed weights).
fn gemm3_args<'a, E: Executor>(op: &'static str, spec: &ConvSpec) -> Result<Vec<Arg<'a, E>>> {
    Ok(vec![
        Arg::I32(int(op, "kernel height", spec.kh)?),
        Arg::I32(int(op, "kernel width", spec.kw)?),
        Arg::I32(int(op, "live taps", spec.taps().len())?),
    ])
}

/// `w` packed as `[taps * cout, cin]` (masked entries 0) for `bwd_data_v3`: row `t * cout + o`
/// holds `w[o, :, tap t]`. At least one element, so that a spec without live taps still passes
/// a buffer (the kernel reads none of it).
fn pack_transposed<E: Executor>(
    be: &CudaBackend<E>,
    w: &Tensor<CudaBackend<E>>,
    g: ConvGeom,
    spec: &ConvSpec,
) -> Result<Tensor<CudaBackend<E>>> {
    const NAME: &str = "masked_conv2d_backward";
    let len = spec.taps().len() * g.cout * g.cin;
    let packed = be.tensor_uninit(&[len.max(1)])?;
    if len > 0 {
        let mut args = vec![
            arg(w),
            arg(&packed),
            Arg::I32(int(NAME, "input features", g.cin)?),
            Arg::I32(int(NAME, "output features", g.cout)?),
        ];
        args.extend(spec_args(NAME, spec)?);
        // A 32 x 32 transpose tile per block: (cout * cin) rows x live taps.
        let cfg = LaunchCfg {
            grid: [
                int(NAME, "pack blocks", (g.cout * g.cin).div_ceil(WR_TILE))? as u32,
                u16::try_from(spec.taps().len().div_ceil(WR_TILE))
                    .map(u32::from)
                    .map_err(|_| Error::shape(NAME, "too many taps for the pack's grid"))?,
                1,
            ],
            block: [BLOCK, 1, 1],
            shared_bytes: 0,
            cluster: [1, 1, 1],
            flops: 0,
        };
        be.launch("masked_conv2d_pack_transposed_v1", &cfg, &args)?;
    }
    Ok(packed)
}

/// How a split-K weight-gradient kernel (`bwd_weight_v2`, the tensor-core
/// `bwd_weight_{tf32,bf16}_v1`) splits its work: the grid `(splits, tiles_n, tiles_m)` and the
/// positions per split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WeightSplit {
    /// Position chunks (K splits), one partial tile each.
    splits: usize,
    /// Positions per chunk, a multiple of the kernel's K chunk.
    chunk: usize,
    /// Column tiles: ceil(max(live taps x cin, 1) / tile_n).
    tiles_n: usize,
    /// Row tiles: ceil(cout / tile_m).
    tiles_m: usize,
    /// Output features per block tile.
    tile_m: usize,
    /// (tap, input feature) columns per block tile.
    tile_n: usize,
}

impl WeightSplit {
    /// `bwd_weight_v2`'s split ([`WeightSplit::tiled`] with 128 x 128 tiles, chunks of 8).
    fn new(positions: usize, columns: usize, cin: usize, cout: usize) -> Self {
        Self::tiled(positions, columns, cin, cout, (WG_TILE, WG_TILE, WG_K))
    }

    /// The split of a weight gradient over `positions` positions with `columns` = live taps
    /// x cin, `cin` and `cout` features, for block tiles of `tile_m` x `tile_n` and position
    /// chunks of `k_step`: as many splits as fill the device ([`WG_TARGET_BLOCKS`]), but at
    /// least [`WG_MIN_CHUNK`] positions per split and no more partial bytes than the inputs'
    /// (x and dy, `positions * (cin + cout)` floats).
    fn tiled(
        positions: usize,
        columns: usize,
        cin: usize,
        cout: usize,
        (tile_m, tile_n, k_step): (usize, usize, usize),
    ) -> Self {
        let tiles_n = columns.max(1).div_ceil(tile_n);
        let tiles_m = cout.div_ceil(tile_m);
        let plane = tiles_m * tiles_n * tile_m * tile_n;
        let by_blocks = WG_TARGET_BLOCKS.div_ceil(tiles_m * tiles_n);
        let by_chunk = positions.div_ceil(WG_MIN_CHUNK);
        let by_bytes = positions * (cin + cout) / plane;
        let wanted = by_blocks.min(by_chunk).min(by_bytes).max(1);
        let chunk = positions
            .div_ceil(wanted)
            .next_multiple_of(k_step)
            .max(k_step);
        WeightSplit {
            splits: positions.div_ceil(chunk).max(1),
            chunk,
            tiles_n,
            tiles_m,
            tile_m,
            tile_n,
        }
    }

    /// Rows of a partial plane (`ld_m`).
    fn ld_m(&self) -> usize {
        self.tiles_m * self.tile_m
    }

    /// Columns of a partial plane (`ld_n`).
    fn ld_n(&self) -> usize {
        self.tiles_n * self.tile_n
    }
}

/// `dw` and `db` by a split-K weight-gradient kernel and its reduction: `bwd_weight_v2` or
/// `_v3` (`version`) at fp32, `bwd_weight_{tf32,bf16}_v<N>` ([`super::MaskedConv2dMma`]) at the
/// other precisions.
fn weight_grad_split<E: Executor>(
    be: &CudaBackend<E>,
    (x, dy): (&Tensor<CudaBackend<E>>, &Tensor<CudaBackend<E>>),
    (dw, db): (&Tensor<CudaBackend<E>>, &Tensor<CudaBackend<E>>),
    g: ConvGeom,
    spec: &ConvSpec,
    precision: Precision,
    version: MaskedConv2dWeight,
) -> Result<()> {
    const NAME: &str = "masked_conv2d_backward";
    let taps = spec.taps().len();
    let (kernel, split) = match mma_kernel(be, "bwd_weight", precision) {
        // v2 and v3 share the launch, the split and the partials.
        None => (
            format!("masked_conv2d_bwd_weight_v{}", version.number()),
            WeightSplit::new(g.positions(), taps * g.cin, g.cin, g.cout),
        ),
        Some(name) => (
            name,
            WeightSplit::tiled(
                g.positions(),
                taps * g.cin,
                g.cin,
                g.cout,
                (MMA_TILE_M, MMA_TILE_N, MMA_K),
            ),
        ),
    };
    let grid_dim = |what: &str, v: usize| {
        u16::try_from(v).map(u32::from).map_err(|_| {
            Error::shape(
                NAME,
                format!("{v} {what} exceed the weight-gradient kernels' grid"),
            )
        })
    };
    let (ld_m, ld_n) = (split.ld_m(), split.ld_n());
    let part = be.tensor_uninit(&[split.splits, ld_m, ld_n])?;
    let part_db = be.tensor_uninit(&[split.splits, ld_m])?;
    let cfg = LaunchCfg {
        grid: [
            int(NAME, "position splits", split.splits)? as u32,
            grid_dim("column tiles", split.tiles_n)?,
            grid_dim("output feature tiles", split.tiles_m)?,
        ],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: g.pass_flops(spec),
    };
    let mut args = vec![arg(x), arg(dy), arg(&part), arg(&part_db)];
    args.extend(geom_args(NAME, g)?);
    args.extend([
        Arg::I32(int(NAME, "kernel height", spec.kh)?),
        Arg::I32(int(NAME, "kernel width", spec.kw)?),
        Arg::I32(int(NAME, "live taps", taps)?),
        Arg::I64(long(NAME, "positions per split", split.chunk)?),
    ]);
    be.launch(&kernel, &cfg, &args)?;

    let reduce = LaunchCfg {
        grid: [
            int(
                NAME,
                "reduction blocks",
                g.cout * g.cin.div_ceil(WR_TILE).max(1),
            )? as u32,
            grid_dim("tap chunks", (spec.kh * spec.kw).div_ceil(WR_TILE))?,
            1,
        ],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        // Additions only, memory-bound: not GEMM work (LaunchCfg::flops).
        flops: 0,
    };
    let mut args = vec![
        arg(&part),
        arg(&part_db),
        arg(dw),
        arg(db),
        Arg::I32(int(NAME, "position splits", split.splits)?),
        Arg::I32(int(NAME, "partial rows", ld_m)?),
        Arg::I32(int(NAME, "partial columns", ld_n)?),
        Arg::I32(int(NAME, "input features", g.cin)?),
    ];
    args.extend(spec_args(NAME, spec)?);
    be.launch("masked_conv2d_bwd_weight_reduce_v1", &reduce, &args)
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
    if let Some(kernel) = mma_kernel(be, "fwd", be.precision()) {
        let cfg = mma_tiles(NAME, g.positions(), g.cout)?.with_flops(g.pass_flops(spec));
        let packed = super::masked_conv2d_at::pack(be, w, spec)?;
        let mut args = vec![arg(x), arg(&packed), arg(b), arg(&y)];
        args.extend(geom_args(NAME, g)?);
        args.extend(gemm3_args(NAME, spec)?);
        be.launch(&kernel, &cfg, &args)?;
        return Ok(y);
    }
    let version = selected_version(be);
    let cfg = tiled_or_direct(NAME, version, g.positions(), g.cout)?.with_flops(g.pass_flops(spec));
    if version >= 3 {
        // [taps * cin, cout], masked entries 0: the layout of incremental sampling's pack.
        // v4 is v3's kernel held to two blocks per SM, v5 the same GEMM through cp.async
        // (kernels/masked_conv2d_packed.cu).
        let packed = super::masked_conv2d_at::pack(be, w, spec)?;
        let mut args = vec![arg(x), arg(&packed), arg(b), arg(&y)];
        args.extend(geom_args(NAME, g)?);
        args.extend(gemm3_args(NAME, spec)?);
        be.launch(&format!("{OP}_fwd_v{version}"), &cfg, &args)?;
        return Ok(y);
    }
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
    let dw = be.tensor_uninit(&w.shape)?;
    let precision = be.precision();
    // The tensor-core precisions always take the split-K path (their kernels are its GEMM).
    let weight_version = if precision == Precision::Fp32 {
        be.variants().masked_conv2d_weight
    } else {
        MaskedConv2dWeight::V2
    };
    let split = weight_version != MaskedConv2dWeight::V1;
    if split && g.cout > 0 {
        // dw.numel() == 0 with cout > 0 means cin == 0: the GEMM has no columns, and the
        // reduction writes db alone.
        weight_grad_split(be, (x, dy), (&dw, &db), g, spec, precision, weight_version)?;
    } else if g.cout > 0 {
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

    if weight_version == MaskedConv2dWeight::V1 && dw.numel() > 0 {
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
        if let (Some(kernel), true) = (mma_kernel(be, "bwd_data", precision), dx.numel() > 0) {
            let cfg = mma_tiles(NAME, g.positions(), g.cin)?.with_flops(g.pass_flops(spec));
            let packed = pack_transposed(be, w, g, spec)?;
            let mut args = vec![arg(dy), arg(&packed), arg(&dx)];
            args.extend(geom_args(NAME, g)?);
            args.extend(gemm3_args(NAME, spec)?);
            be.launch(&kernel, &cfg, &args)?;
        } else if dx.numel() > 0 {
            let cfg = tiled_or_direct(NAME, version, g.positions(), g.cin)?
                .with_flops(g.pass_flops(spec));
            if version >= 3 {
                let packed = pack_transposed(be, w, g, spec)?;
                let mut args = vec![arg(dy), arg(&packed), arg(&dx)];
                args.extend(geom_args(NAME, g)?);
                args.extend(gemm3_args(NAME, spec)?);
                be.launch(&format!("{OP}_bwd_data_v{version}"), &cfg, &args)?;
            } else {
                let mut args = vec![arg(dy), arg(w), arg(&dx)];
                args.extend(geom_args(NAME, g)?);
                args.extend(spec_args(NAME, spec)?);
                be.launch(&format!("{OP}_bwd_data_v{version}"), &cfg, &args)?;
            }
        }
        Some(dx)
    } else {
        None
    };
    Ok(ConvGrads { dx, dw, db })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_splits_cover_every_position_once_in_chunks_of_eight() {
        // (positions, columns, cin, cout): the layer shapes of the models and the parity
        // tests, an empty batch and a map smaller than one chunk.
        let shapes = [
            (2048, 640, 128, 128),
            (16384, 640, 128, 128),
            (16384, 72, 3, 256),
            (899, 150, 30, 130),
            (1150, 30, 6, 26),
            (84, 35, 7, 67),
            (0, 640, 128, 128),
            (5, 0, 3, 4),
        ];
        for (p, cols, cin, cout) in shapes {
            let s = WeightSplit::new(p, cols, cin, cout);
            assert_eq!(s.chunk % WG_K, 0, "{s:?}");
            assert!(s.splits >= 1);
            // Every position in exactly one split, no split empty (but for no positions).
            assert!(s.splits * s.chunk >= p, "{s:?} misses positions of {p}");
            assert!(
                p == 0 || (s.splits - 1) * s.chunk < p,
                "{s:?}: an empty split"
            );
            assert_eq!(s.tiles_n, cols.max(1).div_ceil(WG_TILE));
            assert_eq!(s.tiles_m, cout.div_ceil(WG_TILE));
            // The partials never outweigh the inputs (beyond one split).
            let partial = s.splits * s.ld_m() * s.ld_n();
            assert!(s.splits == 1 || partial <= p * (cin + cout), "{s:?}");
        }
        // The tensor-core kernels' split: 128 x 64 tiles, chunks of 16 positions.
        for (p, cols, cin, cout) in shapes {
            let s = WeightSplit::tiled(p, cols, cin, cout, (MMA_TILE_M, MMA_TILE_N, MMA_K));
            assert_eq!(s.chunk % MMA_K, 0, "{s:?}");
            assert!(s.splits * s.chunk >= p && (p == 0 || (s.splits - 1) * s.chunk < p));
            assert_eq!(s.ld_n(), cols.max(1).div_ceil(MMA_TILE_N) * MMA_TILE_N);
            assert_eq!(s.ld_m(), cout.div_ceil(MMA_TILE_M) * MMA_TILE_M);
        }
        // The PixelCNN body at batch 16: enough blocks for the device, chunks of >= 256.
        let s = WeightSplit::new(16384, 640, 128, 128);
        assert!(s.splits * s.tiles_n * s.tiles_m >= 132, "{s:?}");
        assert!(s.chunk >= WG_MIN_CHUNK, "{s:?}");
    }
}
