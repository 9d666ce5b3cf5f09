//! The persistent recurrence's state-to-state product on the tensor cores at tf32 / bf16:
//! launch configuration, shared memory and fit check of the
//! `<scan>_persistent_mma_{fwd,bwd}_{tf32,bf16}_v{1,2}` kernels
//! (kernels/row_lstm_persistent_mma.cu, kernels/diag_lstm_persistent_mma.cu, bodies in
//! kernels/lstm_persistent_mma.cuh), for both scans in the folded layout. CPU twin: the CPU
//! recurrences at the same precision (`cpu/lstm.rs`). v1 and v2 have the same launch and
//! shared memory (v2 only reorders the global traffic), so one configuration serves both.
//!
//! They run, in place of the rounded SIMT cluster kernels of `cuda/lstm_persistent.rs`, where
//! the selection is a tensor-core product ([`super::LstmPersistentProduct::MmaV2`], the
//! default, or [`super::LstmPersistentProduct::MmaV1`]), the precision tf32 or bf16 and their
//! cluster fits
//! ([`mma_cfg`]), forward and backward.
//! Elsewhere `lstm_persistent.rs` decides as before: the SIMT kernels, or the refusal where no
//! cluster fits at all. The backward's weight gradient stays `lstm_ss_bwd_weight_<p>_v2`
//! (launched by `cuda/lstm.rs` after the scan).

use super::executor::{MAX_CLUSTER_BLOCKS, MAX_SHARED_BYTES};
use super::lstm::scan_op;
use super::{CudaBackend, Executor, LaunchCfg};
use crate::backend::geometry::Geometry;
use crate::backend::{Backend, Precision};

/// Units of a block's weight slice (`LSTM_PMMA_UNITS`), threads (`LSTM_PMMA_THREADS`, 4 warps).
const UNITS: usize = 32;
const THREADS: u32 = 128;

/// The kernels' K chunk (`MCM_K`): K is zero-padded to a multiple of it, as the fused
/// tensor-core step's.
const K_CHUNK: usize = 16;

/// The backward's K chunk of staged d_is, in elements (`LSTM_PMMA_BWD_KC`).
const BWD_K_CHUNK: usize = 128;

/// A pass's block tile: the weight slice's rows, the positions of a tile (the rows of the
/// staged state tile) and the features per tap (K = taps x features).
struct Tile {
    slice_rows: usize,
    positions: usize,
}

/// Forward: 128 slice rows (32 units x 4 gates), 16 positions, K = taps x h.
const FWD: Tile = Tile {
    slice_rows: 4 * UNITS,
    positions: 16,
};

/// Backward: 32 slice rows (units), 64 positions, K = taps x 4h in chunks of 128.
const BWD: Tile = Tile {
    slice_rows: UNITS,
    positions: 64,
};

/// Words per element count `k` of a staged row at `precision`: one per element at tf32, two
/// elements per word at bf16 (packed along K).
fn words(k: usize, precision: Precision) -> usize {
    if precision == Precision::Bf16 {
        k / 2
    } else {
        k
    }
}

/// Bytes of dynamic shared memory of a block (kernels/lstm_persistent_mma.cuh): the weight
/// slice (rows of KW + 4 words, KW the words of Kp = K rounded up to 16) and the state tile
/// (forward: 16 rows of KW + 4 words; backward: 64 rows of one K chunk, 128 elements, + 4
/// words). The + 4 makes the fragment reads conflict-free.
pub(super) fn shared_bytes(geo: &Geometry, precision: Precision, backward: bool) -> usize {
    let (tile, feat) = if backward {
        (&BWD, 4 * geo.hidden)
    } else {
        (&FWD, geo.hidden)
    };
    let pitch = words((geo.taps() * feat).next_multiple_of(K_CHUNK), precision) + 4;
    let tile_pitch = if backward {
        words(BWD_K_CHUNK, precision) + 4
    } else {
        pitch
    };
    (tile.slice_rows * pitch + tile.positions * tile_pitch) * std::mem::size_of::<u32>()
}

/// Launch configuration for `n` images: `ceil(h / 32)` unit tiles times as many position
/// groups as fit in a cluster of 8 (no more than the widest step has position tiles), one
/// cluster per image, 128 threads, [`shared_bytes`]. `None` where it does not fit: more than
/// 8 unit tiles, or the shared memory past the device's 227 KiB per block.
pub(super) fn mma_cfg(
    n: usize,
    geo: &Geometry,
    precision: Precision,
    backward: bool,
) -> Option<LaunchCfg> {
    let unit_tiles = geo.hidden.div_ceil(UNITS);
    let max_cluster = MAX_CLUSTER_BLOCKS as usize;
    let shared = shared_bytes(geo, precision, backward);
    if unit_tiles > max_cluster || shared > MAX_SHARED_BYTES as usize {
        return None;
    }
    let positions = if backward {
        BWD.positions
    } else {
        FWD.positions
    };
    let groups = (max_cluster / unit_tiles)
        .min(geo.max_step_len().div_ceil(positions))
        .max(1);
    let cluster = unit_tiles * groups;
    // The grid's blocks fit in int, as the kernels compute blockIdx.x / C in int.
    let blocks = i32::try_from(n.checked_mul(cluster)?).ok()? as u32;
    Some(LaunchCfg {
        grid: [blocks, 1, 1],
        block: [THREADS, 1, 1],
        shared_bytes: shared as u32,
        cluster: [cluster as u32, 1, 1],
        flops: 0,
    })
}

/// The tensor-core persistent kernel that replaces `stem`'s (`<scan>_persistent_{fwd,bwd}`,
/// the folded layout) for `n` images of `geo`, and its launch: `Some` at tf32 / bf16 with a
/// tensor-core [`super::LstmPersistentProduct`] (its version `_v<N>`) where [`mma_cfg`] fits; `None`
/// otherwise (the SIMT kernels' decision applies: module comment).
pub(super) fn choose<E: Executor>(
    be: &CudaBackend<E>,
    stem: &str,
    n: usize,
    geo: &Geometry,
) -> Option<(String, LaunchCfg)> {
    let precision = be.precision();
    if precision == Precision::Fp32 {
        return None;
    }
    let version = be.variants().lstm_persistent_product.mma_version()?;
    let scan = scan_op(geo);
    let pass = ["fwd", "bwd"]
        .into_iter()
        .find(|pass| stem == format!("{scan}_persistent_{pass}"))?;
    let cfg = mma_cfg(n, geo, precision, pass == "bwd")?;
    Some((
        format!("{scan}_persistent_mma_{pass}_{precision}_v{version}"),
        cfg,
    ))
}
