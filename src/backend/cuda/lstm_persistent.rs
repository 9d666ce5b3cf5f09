//! The persistent recurrence on CUDA (`Recurrence::Persistent`): the whole scan of a pass in
//! one launch, for both scans and both Diagonal LSTM layouts. Host side of the
//! `<scan>_persistent_{fwd,bwd}_v<N>` kernels (kernels/row_lstm.cu, kernels/diag_lstm.cu,
//! kernels/diag_lstm_skewed.cu for v1; kernels/lstm_persistent.cuh for v2,
//! kernels/lstm_persistent_v3.cuh for the v3 backward, kernels/lstm_persistent_fwd_v4.cuh and
//! lstm_persistent_v4.cuh for the v4 forward and backward, kernels/lstm_persistent_fwd_v5.cuh and
//! lstm_persistent_bwd_v5.cuh for the v5 to v7 forward and backward). CPU twin: `cpu/lstm.rs`.
//!
//! The version follows the scan's selection ([`super::RowLstm`], [`super::DiagLstm`]):
//! - v1: one block per image (one thread per (position, unit) of the widest step, at most
//!   1024), the state weight staged in dynamic shared memory when it fits in
//!   [`PERSISTENT_SHARED_CAP`], else read from global memory (`staged = 0`);
//! - v2: one thread-block cluster per image ([`persistent_v2_cfg`]): the
//!   blocks of a cluster split the units in tiles of 32 (and the step's positions in
//!   groups), each stages its units' slice of the state weight in dynamic shared memory once
//!   (opted in above 48 KiB: [`Executor::opt_in_shared`]) and runs the fused v2 tile bodies on
//!   it, the steps ordered by the cluster barrier. At h = 128 a block holds 192 KiB (Row LSTM,
//!   k = 3) or 128 KiB (Diagonal LSTM) of weights. Where the slice does not fit the
//!   device's 227 KiB (or h needs more than 8 unit tiles) v2 falls back to v1;
//! - v3 (the default; backward only, the forward is v2's): the v2 clusters over v3's
//!   register tiles ([`persistent_v3_cfg`], kernels/lstm_persistent_v3.cuh: 4 positions x 4
//!   units per thread, 32 positions x 32 units per 64-thread block, the same bits as v2);
//!   where its 16.1 KiB staging tile does not fit beside the slice it falls back to v2;
//! - v4 (selected by `RowLstm::V4` / `DiagLstm::V4`), forward and backward at 8 FLOPs per
//!   shared word on the v2 clusters. The backward: an 8 x 8 register tile with the K range
//!   split over the two halves of each warp and summed by shuffles ([`persistent_v4_cfg`],
//!   kernels/lstm_persistent_v4.cuh: 64 positions x 32 units per 64-thread block, another
//!   summation order than v3's); where its 16 KiB staging tile does not fit it falls back to
//!   v3, then v2, then v1. The forward: 8 positions x 2 units x 4 gates per thread
//!   ([`persistent_fwd_v4_cfg`], kernels/lstm_persistent_fwd_v4.cuh: 32 positions x 32 units
//!   per 64-thread block, v2's summation order); its 8 KiB staging tile is v2's, so it fits
//!   wherever v2 does (Row LSTM k = 3 up to h = 145, Diagonal h = 218) and falls back as v2
//!   does (to v1). At tf32 / bf16 the forward under v4 is its rounded twin
//!   (`<scan>_persistent_fwd_{tf32,bf16}_v4`, folded layout, v2's rounded kernel's bits).
//! - v5 (selected by `RowLstm::V5` / `DiagLstm::V5`), forward and backward at 8 FLOPs per
//!   shared word on the default's warps. The forward on v2's launch ([`persistent_fwd_v5_cfg`],
//!   kernels/lstm_persistent_fwd_v5.cuh: 16 positions x 32 units per 128-thread block, v4's
//!   8 x 2 x 4 thread tile with the K range split over 4 K-groups of each warp and summed by
//!   shuffles; another summation order); its shared memory is v2's, so it fits wherever v2
//!   does and falls back as v2 does (to v1). The backward on v3's launch
//!   ([`persistent_bwd_v5_cfg`], kernels/lstm_persistent_bwd_v5.cuh: 32 positions x 32 units
//!   per 64-thread block, v4's 8 x 8 thread tile with the K range split over 4 K-groups of each
//!   warp and summed by two shuffle levels; another summation order than v3's and v4's); its
//!   16 KiB staging tile fits where v3's does (Row LSTM k = 3 up to h = 140, Diagonal h = 210),
//!   past that it falls back to v4, v3, v2 (up to 145 / 218), then v1. Both have rounded twins
//!   at tf32 / bf16 in the folded layout.
//! - v6 (selected by `RowLstm::V6` / `DiagLstm::V6`): v5's thread tiles on 8 warps per block,
//!   the K range split between warp groups whose partials are summed through the staging tile
//!   (kernels/lstm_persistent_fwd_v5.cuh, lstm_persistent_bwd_v5.cuh, entry points in
//!   `*_persistent_v6.cu`). The forward on v5's launch with 256 threads
//!   ([`persistent_fwd_v6_cfg`]: two warp groups of 128), v5's shared memory, so it fits
//!   wherever v2 does; the backward on v2's launch (16-position tiles: at W = 32 twice v5's
//!   clusters' blocks) with 256 threads ([`persistent_bwd_v6_cfg`]: eight warp groups of one
//!   warp) and v5's 16 KiB staging tile, so it fits where v5 does. Each falls back to v5's
//!   chain. Why: at h = 128 one block fits an SM (the weight slice fills its shared memory), so
//!   the block's warps are the SM's; v5's 4 (forward) and 2 (backward) leave the SM
//!   latency-bound (docs/kernels.md, "Persistent v6").
//! - v7 (selected by `RowLstm::V7` / `DiagLstm::V7`, the default): v6's launches, tiles and
//!   exchanges with fewer waits (entry points in `*_persistent_v7.cu`, the bodies' v7 paths):
//!   each thread's staged elements loaded before any is stored, the forward's taps staged
//!   between one pair of barriers into dynamic shared memory with the exchange in a buffer of
//!   its own ([`persistent_fwd_v7_cfg`]), the backward's chunks of 512 gate rows in a 32 KiB
//!   static tile ([`persistent_bwd_v7_cfg`]). Each fits up to h = 129 for the Row LSTM at
//!   k = 3 (the Diagonal: 202 forward, 194 backward) and falls back to v6's chain past that.
//!   Why: the latency model fitted to the first device run puts v6's time at cifar-large in
//!   its barriers and load rounds (docs/kernels.md, "Persistent v7").
//!
//! Launches per layer and pass: v2 forward 1 (no pack: the kernel stages from the PyTorch
//! layout), backward 1 plus the weight gradient (v2: 2); v1 the same.
//!
//! Precision ([`Backend::precision`]): at tf32 / bf16 the v2 and v3 kernels run as
//! `<stem>_{tf32,bf16}_v<N>` (the same launches; the state weight rounded as it is staged, the
//! states or d_is as each chunk is staged, fp32 FMA: the CPU twin's arithmetic up to the order
//! of the fp32 additions). There is no rounded v1: at tf32 / bf16 a v1 selection runs v2 (as
//! the weight gradient runs its v2 GEMM there), and a shape for which no cluster fits (h past
//! 8 unit tiles, or a weight slice past the 227 KiB of a block) refuses with
//! [`Error::PrecisionUnsupported`] ([`check_precision`], before anything is launched) rather
//! than run fp32. Before all of this, at tf32 / bf16 the tensor-core cluster kernels run
//! where they fit (`cuda/lstm_persistent_mma.rs`; the refusal then needs neither to fit).

use super::executor::{DEFAULT_SHARED_BYTES, MAX_CLUSTER_BLOCKS, MAX_SHARED_BYTES};
use super::lstm::scan_op;
use super::lstm_persistent_mma;
use super::lstm_steps::{persistent_bwd_version, persistent_fwd_version};
use super::{Arg, CudaBackend, Executor, LaunchCfg, MAX_BLOCKS};
use crate::backend::geometry::Geometry;
use crate::backend::{Backend, Precision};
use crate::error::{Error, Result};

/// The refused path's name at tf32 / bf16 ([`Error::PrecisionUnsupported`]'s `variant`).
const V1_FALLBACK: &str =
    "persistent (v1 fallback: no cluster of the v2/v3 kernels fits this h in shared memory)";

/// Dynamic shared memory a block may use without opting in to more: the persistent v1 kernels
/// stage the state weights only when they fit (`4h*h*k` floats for the Row LSTM, `8h*h` for
/// the Diagonal LSTM).
pub(super) const PERSISTENT_SHARED_CAP: usize = DEFAULT_SHARED_BYTES as usize;

/// Most threads per block of the persistent v1 kernels (their `__launch_bounds__`).
const PERSISTENT_MAX_THREADS: usize = 1024;

/// Units of a block's weight slice in the v2 and v3 kernels (`LSTM_V2_UNITS` in
/// kernels/lstm_v2.cuh).
const TILE_UNITS: usize = 32;

/// The block tile of a persistent v2 to v7 kernel: its positions, threads and static shared
/// memory (the staged step inputs, which count against the device's per-block limit with the
/// dynamic part), and the dynamic shared memory it needs beyond the weight slice (v7's forward
/// keeps its staging tiles and exchange buffer there): `per_tap` bytes per tap plus `extra`.
struct TileShape {
    positions: usize,
    threads: u32,
    static_shared: usize,
    dynamic: DynamicExtra,
}

/// Dynamic shared memory a tile needs after the weight slice ([`TileShape`]).
struct DynamicExtra {
    per_tap: usize,
    extra: usize,
}

/// No dynamic shared memory beyond the weight slice (v2 to v6, v7's backward).
const SLICE_ONLY: DynamicExtra = DynamicExtra {
    per_tap: 0,
    extra: 0,
};

/// v2: 16 positions x 32 units on 128 threads, a 16 x 128 float staging tile
/// (`LSTM_V2_POS`, `LSTM_V2_THREADS`, kernels/lstm_v2.cuh).
const TILE_V2: TileShape = TileShape {
    positions: 16,
    threads: 128,
    static_shared: 16 * 128 * 4,
    dynamic: SLICE_ONLY,
};

/// v3 (backward only): 32 positions x 32 units on 64 threads, 4 x 4 per thread, a 32 x 129
/// float staging tile (`LSTM_PERSISTENT_V3_POS`, `LSTM_PERSISTENT_V3_THREADS`,
/// kernels/lstm_persistent_v3.cuh).
const TILE_V3: TileShape = TileShape {
    positions: 32,
    threads: 64,
    static_shared: 32 * 129 * 4,
    dynamic: SLICE_ONLY,
};

/// v4 (backward only): 64 positions x 32 units on 64 threads (two warps of 32 positions),
/// 8 x 8 per thread over half the K range, a 64 x 64 float staging tile
/// (`LSTM_PERSISTENT_V4_POS`, `LSTM_PERSISTENT_V4_THREADS`, `LSTM_PERSISTENT_V4_CHUNK`,
/// kernels/lstm_persistent_v4.cuh). Its weight slice is 32 x 4h x taps floats: the dynamic
/// shared memory reserved is v2's (32 more floats), the same fallback bound.
const TILE_V4: TileShape = TileShape {
    positions: 64,
    threads: 64,
    static_shared: 64 * 64 * 4,
    dynamic: SLICE_ONLY,
};

/// The v4 forward: 32 positions x 32 units on 64 threads (two warps of 16 positions), 8
/// positions x 2 units x 4 gates per thread, a 64 x 32 float staging tile
/// (`LSTM_PERSISTENT_FWD_V4_POS`, `_THREADS`, `_CHUNK`, kernels/lstm_persistent_fwd_v4.cuh). Its
/// weight slice is 32 x 4h x taps floats: v2's reservation and static tile size, so v2's fits.
const TILE_FWD_V4: TileShape = TileShape {
    positions: 32,
    threads: 64,
    static_shared: 64 * 32 * 4,
    dynamic: SLICE_ONLY,
};

/// The v5 forward: v2's tile (16 positions x 32 units on 128 threads: four warps of 8
/// positions x 16 units, each 4 K-groups of 8 lanes with 8 positions x 2 units x 4 gates), a
/// 128 x 16 float staging tile (`LSTM_PERSISTENT_FWD_V5_POS`, `_THREADS`, `_CHUNK`,
/// kernels/lstm_persistent_fwd_v5.cuh): v2's launch and shared memory exactly, so v5 fits
/// wherever v2 does.
const TILE_FWD_V5: TileShape = TileShape {
    positions: 16,
    threads: 128,
    static_shared: 128 * 16 * 4,
    dynamic: SLICE_ONLY,
};

/// The v5 backward: v3's tile (32 positions x 32 units on 64 threads: two warps of 16
/// positions x 32 units, each 4 K-groups of 8 lanes with 8 x 8 per lane), a 32 x 128 float
/// staging tile (`LSTM_PERSISTENT_BWD_V5_POS`, `_THREADS`, `_CHUNK`,
/// kernels/lstm_persistent_bwd_v5.cuh): v3's launch, 128 bytes less static shared memory and
/// the same dynamic reservation, so v5 fits exactly where v3 does.
const TILE_BWD_V5: TileShape = TileShape {
    positions: 32,
    threads: 64,
    static_shared: 32 * 128 * 4,
    dynamic: SLICE_ONLY,
};

/// The v6 forward: v5's tile on two warp groups (256 threads), the same 128 x 16 float staging
/// tile, which also holds the groups' exchange (`LSTM_PERSISTENT_FWD_V6_THREADS`,
/// kernels/lstm_persistent_fwd_v5.cuh): v5's shared memory, so v6 fits wherever v2 does.
const TILE_FWD_V6: TileShape = TileShape {
    positions: 16,
    threads: 256,
    static_shared: 128 * 16 * 4,
    dynamic: SLICE_ONLY,
};

/// The v6 backward: 16 positions x 32 units on 256 threads (eight warp groups of one warp of
/// 16 positions x 32 units, 4 K-groups of 8 lanes with 8 x 8 per lane), a 16 x 256 float
/// staging tile holding the groups' exchange too (`LSTM_PERSISTENT_BWD_V6_POS`, `_THREADS`,
/// `_CHUNK`, kernels/lstm_persistent_bwd_v5.cuh): v2's position tiles, v5's shared memory, so v6
/// fits exactly where v5 does.
const TILE_BWD_V6: TileShape = TileShape {
    positions: 16,
    threads: 256,
    static_shared: 16 * 256 * 4,
    dynamic: SLICE_ONLY,
};

/// The v7 forward: v6's tile and threads, every tap's 16 x 128 float staging tile and the
/// 2048-float exchange buffer in dynamic shared memory after the weight slice (`LSTM_FWD7_TILE`,
/// kernels/lstm_persistent_fwd_v5.cuh), no static tile. Row LSTM k = 3 fits up to h = 129,
/// the Diagonal up to h = 202; past that v6's kernel runs.
const TILE_FWD_V7: TileShape = TileShape {
    positions: 16,
    threads: 256,
    static_shared: 0,
    dynamic: DynamicExtra {
        per_tap: 16 * 128 * 4,
        extra: 16 * 128 * 4,
    },
};

/// The v7 backward: v6's tile and threads, a 16 x 512 float staging tile holding the exchange
/// in its first half (`LSTM_PERSISTENT_BWD_V7_CHUNK`, kernels/lstm_persistent_bwd_v5.cuh). Row
/// LSTM k = 3 fits up to h = 129, the Diagonal up to h = 194; past that v6's kernel runs.
const TILE_BWD_V7: TileShape = TileShape {
    positions: 16,
    threads: 256,
    static_shared: 16 * 512 * 4,
    dynamic: SLICE_ONLY,
};

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
    persistent_tiled_cfg(n, geo, &TILE_V2)
}

/// As [`persistent_v2_cfg`] for the persistent v3 backward (kernels/lstm_persistent_v3.cuh):
/// 64 threads, position tiles of 32, 16.1 KiB of static staging tile.
pub(super) fn persistent_v3_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_V3)
}

/// As [`persistent_v3_cfg`] for the persistent v4 backward (kernels/lstm_persistent_v4.cuh):
/// 64 threads, position tiles of 64, 16 KiB of static staging tile.
pub(super) fn persistent_v4_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_V4)
}

/// As [`persistent_v2_cfg`] for the persistent v4 forward (kernels/lstm_persistent_fwd_v4.cuh):
/// 64 threads, position tiles of 32, 8 KiB of static staging tile.
pub(super) fn persistent_fwd_v4_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_FWD_V4)
}

/// As [`persistent_v2_cfg`] for the persistent v5 forward (kernels/lstm_persistent_fwd_v5.cuh):
/// v2's launch (128 threads, position tiles of 16, 8 KiB of static staging tile).
pub(super) fn persistent_fwd_v5_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_FWD_V5)
}

/// As [`persistent_v3_cfg`] for the persistent v5 backward (kernels/lstm_persistent_bwd_v5.cuh):
/// v3's launch (64 threads, position tiles of 32, 16 KiB of static staging tile).
pub(super) fn persistent_bwd_v5_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_BWD_V5)
}

/// As [`persistent_fwd_v5_cfg`] for the persistent v6 forward: 256 threads.
pub(super) fn persistent_fwd_v6_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_FWD_V6)
}

/// As [`persistent_v2_cfg`] for the persistent v6 backward: 256 threads, position tiles of 16,
/// 16 KiB of static staging tile.
pub(super) fn persistent_bwd_v6_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_BWD_V6)
}

/// As [`persistent_fwd_v6_cfg`] for the persistent v7 forward: v6's launch with every tap's
/// staging tile and the exchange buffer in dynamic shared memory.
pub(super) fn persistent_fwd_v7_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_FWD_V7)
}

/// As [`persistent_bwd_v6_cfg`] for the persistent v7 backward: 32 KiB of static staging tile.
pub(super) fn persistent_bwd_v7_cfg(n: usize, geo: &Geometry) -> Option<LaunchCfg> {
    persistent_tiled_cfg(n, geo, &TILE_BWD_V7)
}

fn persistent_tiled_cfg(n: usize, geo: &Geometry, tile: &TileShape) -> Option<LaunchCfg> {
    let unit_tiles = geo.hidden.div_ceil(TILE_UNITS);
    let max_cluster = MAX_CLUSTER_BLOCKS as usize;
    let shared = TILE_UNITS * (4 * geo.hidden * geo.taps() + 1) * std::mem::size_of::<f32>()
        + tile.dynamic.per_tap * geo.taps()
        + tile.dynamic.extra;
    if unit_tiles > max_cluster || shared + tile.static_shared > MAX_SHARED_BYTES as usize {
        return None;
    }
    let groups = (max_cluster / unit_tiles)
        .min(geo.max_step_len().div_ceil(tile.positions))
        .max(1);
    let cluster = unit_tiles * groups;
    // The grid's blocks fit in int, as the kernels compute blockIdx.x / C in int.
    let blocks = i32::try_from(n.checked_mul(cluster)?).ok()? as u32;
    Some(LaunchCfg {
        grid: [blocks, 1, 1],
        block: [tile.threads, 1, 1],
        shared_bytes: shared as u32,
        cluster: [cluster as u32, 1, 1],
        flops: 0,
    })
}

/// The persistent kernel a call of `geo` for `n` images runs (`backward`: the backward
/// scan): its version and, for v2 to v7, its cluster launch (`None`: v1). The version follows
/// the scan's selection: the backward [`persistent_bwd_version`] (v7 runs
/// `<scan>_persistent_bwd_v7`, v6 `_v6`, v5 `_v5`, v4 `_v4`, v3 `_v3`), the forward
/// [`persistent_fwd_version`] (v7 runs `<scan>_persistent_fwd_v7`, v6 `_v6`, v5 `_v5`, v4
/// `_v4`, v3 is v2); at tf32 / bf16 at least v2 (no rounded v1; the rounded v4 to v7 kernels
/// are their templates at the precision). A version whose shared memory does not fit falls
/// back to the one below that exists (backward v7 to v6 to v5 to v4 to v3 to v2; forward v7
/// to v6 to v5 to v4 to v2; v2 to v1).
fn choose<E: Executor>(
    be: &CudaBackend<E>,
    n: usize,
    geo: &Geometry,
    backward: bool,
) -> (u32, Option<LaunchCfg>) {
    let selected = if backward {
        persistent_bwd_version(be, geo)
    } else {
        persistent_fwd_version(be, geo)
    };
    let version = if be.precision() == Precision::Fp32 {
        selected
    } else {
        selected.max(2)
    };
    let (v7, v6, v5, v4, v3) = if backward {
        (
            persistent_bwd_v7_cfg(n, geo),
            persistent_bwd_v6_cfg(n, geo),
            persistent_bwd_v5_cfg(n, geo),
            persistent_v4_cfg(n, geo),
            persistent_v3_cfg(n, geo),
        )
    } else {
        (
            persistent_fwd_v7_cfg(n, geo),
            persistent_fwd_v6_cfg(n, geo),
            persistent_fwd_v5_cfg(n, geo),
            persistent_fwd_v4_cfg(n, geo),
            None,
        )
    };
    [
        (7, v7),
        (6, v6),
        (5, v5),
        (4, v4),
        (3, v3),
        (2, persistent_v2_cfg(n, geo)),
    ]
    .into_iter()
    .find_map(|(v, cfg)| cfg.filter(|_| version >= v).map(|c| (v, Some(c))))
    .unwrap_or((1, None))
}

/// The persistent recurrence's precision decision for `op` on `geo` and `n` images
/// (`backward`: the backward scan): `Ok` at fp32 and wherever a v2 / v3 cluster fits, else
/// the refusal (module comment). Called before anything of the op is launched.
pub(super) fn check_precision<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    n: usize,
    geo: &Geometry,
    backward: bool,
) -> Result<()> {
    let precision = be.precision();
    let stem = format!(
        "{}_persistent_{}",
        scan_op(geo),
        if backward { "bwd" } else { "fwd" }
    );
    if precision != Precision::Fp32
        && choose(be, n, geo, backward).1.is_none()
        && lstm_persistent_mma::choose(be, &stem, n, geo).is_none()
    {
        return Err(Error::PrecisionUnsupported {
            op,
            variant: V1_FALLBACK,
            precision,
        });
    }
    Ok(())
}

/// Launches the persistent kernel of `stem` (`<scan>_persistent_{fwd,bwd}`) for `n` images of
/// `geo` with `args` (its buffers and sizes; v1 takes its `staged` flag after them): the
/// version [`choose`] picks, `<stem>_v<N>` at fp32 and `<stem>_{tf32,bf16}_v<N>` at the
/// rounded precisions (v1 refuses there: [`check_precision`]).
pub(super) fn launch_persistent<E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    stem: &str,
    n: usize,
    geo: &Geometry,
    mut args: Vec<Arg<'_, E>>,
) -> Result<()> {
    let flops = geo.ss_flops(n * geo.height * geo.width);
    let backward = stem.ends_with("_bwd");
    check_precision(be, op, n, geo, backward)?;
    if let Some((kernel, cfg)) = lstm_persistent_mma::choose(be, stem, n, geo) {
        // The tensor-core kernels first (cuda/lstm_persistent_mma.rs says where they run).
        opt_in(be, &kernel, &cfg)?;
        return be.launch(&kernel, &cfg.with_flops(flops), &args);
    }
    let (version, cfg) = choose(be, n, geo, backward);
    let Some(cfg) = cfg else {
        let (cfg, staged) = persistent_v1_cfg(n, geo);
        args.push(Arg::I32(i32::from(staged)));
        return be.launch(&format!("{stem}_v1"), &cfg.with_flops(flops), &args);
    };
    let kernel = match be.precision() {
        Precision::Fp32 => format!("{stem}_v{version}"),
        p => format!("{stem}_{p}_v{version}"),
    };
    opt_in(be, &kernel, &cfg)?;
    be.launch(&kernel, &cfg.with_flops(flops), &args)
}

/// Opts `kernel` in to the dynamic shared memory of `cfg`, whatever its size: without the
/// opt-in, static and dynamic together get 48 KiB, and the v3 to v5 backward's 16 KiB staging
/// tile plus a Diagonal h = 32 weight slice (32.1 KiB) is just over (the launch failed on the
/// first device run, docs/benchmarks.md). Static plus dynamic fit the 227 KiB: the configs
/// check it ([`persistent_tiled_cfg`]).
fn opt_in<E: Executor>(be: &CudaBackend<E>, kernel: &str, cfg: &LaunchCfg) -> Result<()> {
    if cfg.shared_bytes > 0 {
        be.opt_in_shared(kernel, cfg.shared_bytes)?;
    }
    Ok(())
}
