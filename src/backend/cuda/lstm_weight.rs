//! The recurrences' state-to-state weight gradient on CUDA, `d_w_ss`, reduced once over every
//! position after the scan (why once: `cuda/lstm.rs`'s header): host side of
//! `<scan>_ss_bwd_weight_v1` (kernels/row_lstm.cu, kernels/diag_lstm.cu),
//! `lstm_ss_bwd_weight_v2` and `lstm_ss_bwd_weight_sum_v2` (kernels/lstm.cu),
//! `lstm_ss_bwd_weight_v3` and `_v4` (kernels/lstm_weight.cu) and the
//! tensor-core `lstm_ss_bwd_weight_{tf32,bf16}_v2` (kernels/lstm_mma_weight.cu). CPU twin:
//! `cpu/lstm.rs`'s weight gradient (and `cpu/lstm_precision.rs` at tf32 / bf16).

use super::launch_args::{grid_stride, int};
use super::lstm::{scan_op, Dims, T};
use super::lstm_steps::scan_version;
use super::{
    arg, Arg, CudaBackend, Executor, LaunchCfg, LstmWeight, LstmWeightFp32, BLOCK, MAX_BLOCKS,
};
use crate::backend::geometry::{Geometry, Scan};
use crate::backend::{Backend, Precision};
use crate::error::Result;

/// Positions summed by one block of the split GEMMs at least (a multiple of every version's
/// positions per shared chunk: 16 for v2 and the tensor-core v2, 8 for v3): below this a split
/// costs more in its partial tile's write and read than it saves.
const WEIGHT_GRAD_MIN_CHUNK: usize = 256;

/// Blocks of the split GEMMs the split over positions aims at: two per SM of an H200 (132
/// SMs; v3's 256 threads of about 128 registers each fit two per SM), so that the small
/// `M x N` tile grid of `d_w_ss` (48 64 x 64 tiles, or 12 of v3's 128 x 128, at h = 128,
/// k = 3) still fills the device.
const WEIGHT_GRAD_TARGET_BLOCKS: usize = 264;

/// The split of the weight gradient GEMM over `positions` for `tiles` output tiles:
/// `(splits, chunk)`, each split summing `chunk` consecutive positions (a multiple of 16),
/// the last one the rest. A function of the shapes only, so the result's bits are too.
pub(super) fn weight_grad_split(positions: usize, tiles: usize) -> (usize, usize) {
    let by_size = positions.div_ceil(WEIGHT_GRAD_MIN_CHUNK).max(1);
    let by_grid = WEIGHT_GRAD_TARGET_BLOCKS.div_ceil(tiles.max(1)).max(1);
    let want = by_size.min(by_grid).min(MAX_BLOCKS as usize);
    let chunk = positions.div_ceil(want).next_multiple_of(16).max(16);
    (positions.div_ceil(chunk).max(1), chunk)
}

/// `d_w_ss` of either scan from `h` and `d_is` (every dpre final): v1 one thread per weight
/// element (`<scan>_ss_bwd_weight_v1`), else the tiled GEMM over positions with its K split,
/// at fp32 [`LstmWeightFp32`]'s (`lstm_ss_bwd_weight_v3`, the default, `_v2` or `_v4`), and the
/// partials summed in split order (`lstm_ss_bwd_weight_sum_v2`); at tf32 / bf16 the same split
/// on the tensor cores
/// (`lstm_ss_bwd_weight_<p>_v2`, [`LstmWeight::V2`], the default) or v2's GEMM rounded
/// (`lstm_ss_bwd_weight_<p>_v1`). All are deterministic and write every element.
pub(super) fn weight_gradient<E: Executor>(
    be: &CudaBackend<E>,
    h: &T<E>,
    d_is: &T<E>,
    w_ss: &T<E>,
    n: usize,
    geo: &Geometry,
    dims: &Dims,
) -> Result<T<E>> {
    let dw = be.tensor_uninit(&w_ss.shape)?;
    let flops = geo.ss_flops(n * geo.height * geo.width);
    // v1 has no rounded twin: at tf32 / bf16 every version takes the GEMM below.
    if scan_version(be, geo) == 1 && be.precision() == Precision::Fp32 {
        let mut args = vec![arg(h), arg(d_is), arg(&dw)];
        dims.push(&mut args, &[]);
        be.launch(
            &format!("{}_ss_bwd_weight_v1", scan_op(geo)),
            &grid_stride(dw.numel()).with_flops(flops),
            &args,
        )?;
        return Ok(dw);
    }
    // At tf32 / bf16 the same split-K product with its operands rounded as they are staged
    // (the CPU twin's arithmetic), for the fused, unfused and persistent recurrences alike: by default
    // on the tensor cores (v2: 128 x 64 mma tiles of 256 threads), or v1's rounded SIMT GEMM
    // (64 x 64 tiles of 64 threads). Both write partials [splits, mpad, npad] for
    // lstm_ss_bwd_weight_sum_v2.
    let variants = be.variants();
    let version = variants.lstm_weight;
    // v3 and the tensor-core kernels put the splits in gridDim.x, the others in gridDim.z.
    let (kernel, tile_m, tile_n, threads, splits_in_x) =
        match (be.precision(), version, variants.lstm_weight_fp32) {
            (Precision::Fp32, _, LstmWeightFp32::V2) => {
                ("lstm_ss_bwd_weight_v2".to_string(), 64, 64, 64, false)
            }
            (Precision::Fp32, _, v @ (LstmWeightFp32::V3 | LstmWeightFp32::V4)) => (
                format!("lstm_ss_bwd_weight_v{}", v.number()),
                128,
                128,
                BLOCK,
                true,
            ),
            (p, LstmWeight::V1, _) => (format!("lstm_ss_bwd_weight_{p}_v1"), 64, 64, 64, false),
            (p, LstmWeight::V2, _) => (format!("lstm_ss_bwd_weight_{p}_v2"), 128, 64, BLOCK, true),
        };
    // The op named in a limit error: the GEMM's stem, whichever version runs.
    let op = "lstm_ss_bwd_weight";
    let (rows, cols) = (4 * geo.hidden, geo.taps() * geo.hidden);
    let (mt, nt) = (rows.div_ceil(tile_m), cols.div_ceil(tile_n));
    let positions = n * geo.height * geo.width;
    let (splits, chunk) = weight_grad_split(positions, mt * nt);
    let (mpad, npad) = (mt * tile_m, nt * tile_n);
    // Every element of the partials is written (zeros past the weight's rows and columns).
    let partial = be.tensor_uninit(&[splits, mpad, npad])?;
    let (mt32, nt32, s32) = (
        int(op, "tiles of 4h", mt)? as u32,
        int(op, "tiles of taps*h", nt)? as u32,
        int(op, "splits", splits)? as u32,
    );
    let grid = if splits_in_x {
        [s32, nt32, mt32]
    } else {
        [nt32, mt32, s32]
    };
    let cfg = LaunchCfg {
        grid,
        block: [threads, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops,
    };
    let diagonal = matches!(geo.scan, Scan::Diagonal);
    let taps = int(op, "taps", geo.taps())?;
    let mut args = vec![arg(h), arg(d_is), arg(&partial)];
    args.extend(
        [
            dims.n,
            dims.height,
            dims.width,
            dims.hidden,
            taps,
            i32::from(diagonal),
            int(op, "chunk", chunk)?,
        ]
        .map(Arg::I32),
    );
    // The partials' offsets are 64-bit in the kernels; their count must fit a buffer.
    int(op, "splits * 4h * taps*h tiles", splits * mpad * npad)?;
    be.launch(&kernel, &cfg, &args)?;
    let args = vec![
        arg(&partial),
        arg(&dw),
        Arg::I32(dims.hidden),
        Arg::I32(taps),
        Arg::I32(int(op, "splits", splits)?),
        Arg::I32(int(op, "mpad", mpad)?),
        Arg::I32(int(op, "npad", npad)?),
    ];
    be.launch("lstm_ss_bwd_weight_sum_v2", &grid_stride(dw.numel()), &args)?;
    Ok(dw)
}
