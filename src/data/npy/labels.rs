//! Class labels in `.npy` streams (members of a `.npz`): one integer array of shape `(N,)`, any
//! integer dtype, every value in `0..2^31`.

use std::io::Read;

use super::{read_exact_or_truncated, read_header, truncated};
use crate::data::DataError;

/// Reads a `.npy` stream of `total` bytes holding labels.
pub(crate) fn read_npy_labels(
    reader: &mut impl Read,
    total: u64,
    label: &str,
) -> Result<Vec<u32>, DataError> {
    let (header, offset) = read_header(reader, total, label)?;
    let bad = |why: String| {
        DataError::format(
            label,
            format!(
                "expected class labels, a 1-D integer array, found {} {:?}{why}",
                header.dtype_name(),
                header.shape
            ),
        )
    };
    let Some((signed, size, big)) = header.integer() else {
        return Err(bad(String::new()));
    };
    let [n] = header.shape[..] else {
        return Err(bad(String::new()));
    };
    let bytes = n
        .checked_mul(size as u64)
        .ok_or_else(|| bad(" (too large)".into()))?;
    if offset + bytes > total {
        return Err(truncated(label, "the labels", offset + bytes, total));
    }
    if offset + bytes < total {
        return Err(DataError::format(
            label,
            format!(
                "{} unexpected bytes after the labels",
                total - offset - bytes
            ),
        ));
    }
    let mut data = vec![0u8; bytes as usize];
    read_exact_or_truncated(reader, &mut data, label, "the labels", total, offset)?;
    data.chunks_exact(size)
        .enumerate()
        .map(|(i, b)| {
            let mut w = [0u8; 8];
            if big {
                w[8 - size..].copy_from_slice(b);
                w.reverse();
            } else {
                w[..size].copy_from_slice(b);
            }
            let sign_bit = signed && w[size - 1] & 0x80 != 0;
            let v = u64::from_le_bytes(w);
            if sign_bit || v > i32::MAX as u64 {
                let shown = if sign_bit {
                    "a negative value".to_string()
                } else {
                    v.to_string()
                };
                return Err(DataError::format(
                    label,
                    format!("label {i} is {shown}: class labels must be in 0..2^31"),
                ));
            }
            Ok(v as u32)
        })
        .collect()
}
