//! The kernels' integer arguments and the common launch shapes, shared by every host module
//! of this backend. Sizes become `int` or `long long` parameters here, or a shape error naming
//! the op when they do not fit: the kernels' own limits, which the device-neutral shape checks
//! (`backend::geometry`) know nothing of.

use super::{LaunchCfg, BLOCK, MAX_BLOCKS};
use crate::error::{Error, Result};

/// An `int` kernel argument from a size.
pub(super) fn int(op: &'static str, what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::shape(
            op,
            format!("{what} = {v} exceeds the kernels' 32-bit range"),
        )
    })
}

/// A `long long` kernel argument from a size.
pub(super) fn long(op: &'static str, what: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::shape(op, format!("{what} = {v} exceeds 64 bits")))
}

/// `n` elements as the kernels' `pixelrnn_index_t` (`long long`).
pub(super) fn index(op: &'static str, n: usize) -> Result<i64> {
    long(op, "elements", n)
}

/// The launch of a grid-stride kernel over `n` elements: `PIXELRNN_BLOCK` threads per block,
/// one thread per element up to `MAX_BLOCKS` blocks.
pub(super) fn grid_stride(n: usize) -> LaunchCfg {
    LaunchCfg::for_elements(n, BLOCK, MAX_BLOCKS)
}

/// A launch with one block per element of a `len`-element output (the reductions), or a shape
/// error when the grid would exceed CUDA's 2^31 - 1 blocks.
pub(super) fn block_per_element(op: &'static str, what: &str, len: usize) -> Result<LaunchCfg> {
    let blocks = int(op, what, len)?;
    Ok(LaunchCfg::linear(blocks as u32, BLOCK))
}
