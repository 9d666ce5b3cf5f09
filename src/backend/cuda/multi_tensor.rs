//! Multi-tensor launches: one kernel launch over every parameter tensor of a model (the
//! optimizer update, the global gradient norm) instead of one per tensor, in the manner of
//! apex's `multi_tensor_apply`.
//!
//! The kernel gets a chunk table in device memory: one row per block, [`ROW`] 8-byte words,
//! `[pointer 0, pointer 1, pointer 2, pointer 3, start, end]`, the row's tensors (up to four of
//! the same length: a parameter, its gradient, its moments) and one chunk `[start, end)` of at
//! most [`CHUNK`] of their elements. Chunks split big tensors over many blocks (a 128 x 128 x 3
//! x 3 weight is 9 rows) and give small ones (a bias) one block each. The table is built on the
//! host and uploaded before the launch: an upload, not a host synchronisation (the stream
//! orders it before the kernel), of 48 bytes per row (about 7 KB for the 150 rows of a PixelCNN
//! step at cifar-large).

use super::{CudaBackend, Executor};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Words per table row (kernels/common.cuh, `PIXELRNN_MULTI_ROW`).
pub const ROW: usize = 6;
/// Most elements per row (kernels/common.cuh, `PIXELRNN_MULTI_CHUNK`): 64 per thread of a
/// 256-thread block, enough work per block to hide its start.
pub const CHUNK: usize = 16384;

/// A chunk table on the device, ready to pass to a multi-tensor kernel.
pub(super) struct ChunkTable<'a, E: Executor> {
    /// `rows * ROW` words (as twice as many floats).
    pub table: Tensor<CudaBackend<E>>,
    /// Rows: the launch's grid.
    pub rows: u32,
    /// Every tensor the table points to, for [`CudaBackend::launch_touching`].
    pub touched: Vec<&'a Tensor<CudaBackend<E>>>,
}

/// The chunks `(entry, start, end)` of entries of lengths `lens`, in order: each entry cut into
/// pieces of at most [`CHUNK`] elements; empty entries have none.
pub fn chunks(lens: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (e, &len) in lens.iter().enumerate() {
        let mut start = 0;
        while start < len {
            let end = (start + CHUNK).min(len);
            out.push((e, start, end));
            start = end;
        }
    }
    out
}

/// Uploads the chunk table of `entries`: each up to four tensors of one length (the caller has
/// checked their shapes; unused slots are `None` and read as null). `None` when no entry has
/// elements (nothing to launch).
pub(super) fn upload<'a, E: Executor>(
    be: &CudaBackend<E>,
    op: &'static str,
    entries: &[[Option<&'a Tensor<CudaBackend<E>>>; 4]],
) -> Result<Option<ChunkTable<'a, E>>> {
    let lens: Vec<usize> = entries
        .iter()
        .map(|e| e[0].map_or(0, |t| t.numel()))
        .collect();
    let chunks = chunks(&lens);
    if chunks.is_empty() {
        return Ok(None);
    }
    let rows = u32::try_from(chunks.len())
        .ok()
        .filter(|&r| r <= i32::MAX as u32)
        .ok_or_else(|| Error::shape(op, format!("{} chunks exceed one grid", chunks.len())))?;
    let addresses: Vec<[u64; 4]> = entries
        .iter()
        .map(|e| e.map(|t| t.map_or(0, |t| be.executor().address(t.data.raw()))))
        .collect();
    let mut words: Vec<u64> = Vec::with_capacity(chunks.len() * ROW);
    for &(e, start, end) in &chunks {
        words.extend_from_slice(&addresses[e]);
        words.push(start as u64);
        words.push(end as u64);
    }
    let floats: &[f32] = bytemuck::cast_slice(&words);
    let table = Tensor::from_slice(be, &[floats.len()], floats)?;
    let touched = entries
        .iter()
        .flat_map(|e| e.iter().flatten().copied())
        .filter(|t| t.numel() > 0)
        .collect();
    Ok(Some(ChunkTable {
        table,
        rows,
        touched,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_element_once_in_order() {
        let lens = [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK - 7];
        let got = chunks(&lens);
        let mut next = vec![0usize; lens.len()];
        for &(e, start, end) in &got {
            assert_eq!(start, next[e], "entry {e} continues where it stopped");
            assert!(end > start && end - start <= CHUNK);
            next[e] = end;
        }
        assert_eq!(next, lens.to_vec());
        assert_eq!(got.len(), 1 + 1 + 2 + 3);
    }

    /// The host's constants are the kernels' (kernels/common.cuh).
    #[test]
    fn row_and_chunk_match_common_cuh() {
        let src = include_str!("../../../kernels/common.cuh");
        let define = |name: &str| -> usize {
            src.lines()
                .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("{name} in common.cuh"))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(define("PIXELRNN_MULTI_ROW"), ROW);
        assert_eq!(define("PIXELRNN_MULTI_CHUNK"), CHUNK);
    }
}
