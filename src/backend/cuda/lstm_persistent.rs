//! The persistent recurrence on CUDA (`Recurrence::Persistent`): the whole scan of a pass in
//! one launch, for both scans and both Diagonal LSTM layouts. Host side of the
//! `<scan>_persistent_{fwd,bwd}_v<N>` kernels (kernels/row_lstm.cu, kernels/diag_lstm.cu,
//! kernels/diag_lstm_skewed.cu for v1; kernels/lstm_persistent.cuh for v2). CPU twin:
//! `cpu/lstm.rs`.
//!
//! The version follows the scan's selection ([`super::RowLstm`], [`super::DiagLstm`]):
//! - v1: one block per image (one thread per (position, unit) of the widest step, at most
//!   1024), the state weight staged in dynamic shared memory when it fits in
//!   [`PERSISTENT_SHARED_CAP`], else read from global memory (`staged = 0`);
//! - v2 (the default): one thread-block cluster per image ([`persistent_v2_cfg`]): the
//!   blocks of a cluster split the units in tiles of 32 (and the step's positions in
//!   groups), each stages its units' slice of the state weight in dynamic shared memory once
//!   (opted in above 48 KiB: [`Executor::opt_in_shared`]) and runs the fused v2 tile bodies on
//!   it, the steps ordered by the cluster barrier. At h = 128 a block holds 192 KiB (Row LSTM,
//!   k = 3) or 128 KiB (Diagonal LSTM) of weights. Where the slice does not fit the
//!   device's 227 KiB (or h needs more than 8 unit tiles) v2 falls back to v1.
//!
//! Launches per layer and pass: v2 forward 1 (no pack: the kernel stages from the PyTorch
//! layout), backward 1 plus the weight gradient (v2: 2); v1 the same.

use super::executor::{DEFAULT_SHARED_BYTES, MAX_CLUSTER_BLOCKS, MAX_SHARED_BYTES};
use super::lstm::scan_version;
use super::{Arg, CudaBackend, Executor, LaunchCfg, MAX_BLOCKS};
use crate::backend::geometry::Geometry;
use crate::error::Result;

/// Dynamic shared memory a block may use without opting in to more: the persistent v1 kernels
/// stage the state weights only when they fit (`4h*h*k` floats for the Row LSTM, `8h*h` for
/// the Diagonal LSTM).
pub(super) const PERSISTENT_SHARED_CAP: usize = DEFAULT_SHARED_BYTES as usize;

/// Most threads per block of the persistent v1 kernels (their `__launch_bounds__`).
const PERSISTENT_MAX_THREADS: usize = 1024;

/// Units and positions of a v2 tile, and its threads (`LSTM_V2_UNITS`, `LSTM_V2_POS`,
/// `LSTM_V2_THREADS` in kernels/lstm_v2.cuh).
const TILE_UNITS: usize = 32;
const TILE_POSITIONS: usize = 16;
const TILE_THREADS: u32 = 128;

/// Static shared memory of the v2 tile bodies (their 16 x 128 float staging tile), which
/// counts against the device's per-block limit with the dynamic part.
const TILE_STATIC_SHARED: usize = TILE_POSITIONS * 128 * 4;

/// Launch configuration of a persistent v1 kernel for `n` images, and whether it stages the
/// state weights in shared memory (its `staged` flag).
fn persistent_v1_cfg(n: usize, geo: &Geometry) -> (LaunchCfg, bool) {
    let w_bytes = 4 * geo.hidden * geo.hidden * geo.taps() * std::mem::size_of::<f32>();
    let staged = w_bytes <= PERSISTENT_SHARED_CAP;
    // One thread per (position, unit) of the widest step (a row's W positions, an
    // anti-diagonal's min(H, W)), whole warps; wider steps loop.
    let threads = (geo.max_step_len() * geo.hidden)
        .next_multiple_of(32)
        .min(PERSISTENT_MAX_THREADS) as u32;
    // One block per image; past MAX_BLOCKS the blocks loop over the images. Both casts are
    // in range: n fits in int (Dims::new) and w_bytes is at most the 48 KiB cap when staged.
    let blocks = n.min(MAX_BLOCKS as usize) as u32;
    let shared = if staged { w_bytes as u32 } else { 0 };
    (
        LaunchCfg::linear(blocks, threads).with_shared(shared),
        staged,
    )
}

/// Launch configuration of a persistent v2 kernel for `n` images (kernels/lstm_persistent.cuh):
/// `ceil(h / 32)` unit tiles times as many position groups as fit in a portable cluster of 8
/// (no more than the widest step has position tiles), one cluster per image, 128 threads,
/// `32 * (4h * taps + 1)` floats of dynamic shared memory. `None` when the weight slice and
/// the static tile exceed the device's 227 KiB per block, or h needs more than 8 unit tiles.
pub(super) fn persistent_v2_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    let unit_tiles = geo.hidden.div_ceil(TILE_UNITS);
    let max_cluster = MAX_CLUSTER_BLOCKS as usize;
    let shared = TILE_UNITS * (4 * geo.hidden * geo.taps() + 1) * std::mem::size_of::<f32>();
    if unit_tiles > max_cluster || shared + TILE_STATIC_SHARED > MAX_SHARED_BYTES as usize {
        return None;
    }
    let groups = (max_cluster / unit_tiles)
        .min(geo.max_step_len().div_ceil(TILE_POSITIONS))
        .max(1);
    let cluster = unit_tiles * groups;
    // The grid's blocks fit in int, as the kernels compute blockIdx.x / C in int.
    let blocks = i32::try_from(n.checked_mul(cluster)?).ok()? as u32;
    Some(LaunchCfg {
        grid: [blocks, 1, 1],
        block: [TILE_THREADS, 1, 1],
        shared_bytes: shared as u32,
        cluster: [cluster as u32, 1, 1],
        flops: 0,
    })
}

/// Launches the persistent kernel `<stem>_v<N>` for `n` images of `geo` with `args` (its
/// buffers and sizes; v1 takes its `staged` flag after them), the version following the
/// scan's selection, v2 falling back to v1 where its weight slice does not fit.
pub(super) fn launch_persistent<E: Executor>(
    be: &CudaBackend<E>,
    stem: &str,
    n: usize,
    geo: &Geometry,
    mut args: Vec<Arg<'_, E>>,
) -> Result<()> {
    let flops = geo.ss_flops(n * geo.height * geo.width);
    if scan_version(be, geo) == 2 {
        if let Some(cfg) = persistent_v2_cfg(n, geo) {
            let kernel = format!("{stem}_v2");
            if cfg.shared_bytes > DEFAULT_SHARED_BYTES {
                be.opt_in_shared(&kernel, cfg.shared_bytes)?;
            }
            return be.launch(&kernel, &cfg.with_flops(flops), &args);
        }
    }
    let (cfg, staged) = persistent_v1_cfg(n, geo);
    args.push(Arg::I32(i32::from(staged)));
    be.launch(&format!("{stem}_v1"), &cfg.with_flops(flops), &args)
}
