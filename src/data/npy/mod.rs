//! `.npy` and `.npz` images.
//!
//! Writing and the zip container go through npyz. The `.npy` header is parsed here, by a small
//! parser of the Python-literal dict (`{'descr': '|u1', 'fortran_order': False, 'shape': (..)}`)
//! so that every size is checked before anything is allocated: npyz multiplies the shape
//! without overflow checks (a panic in debug builds on a corrupt header) and allocates the
//! header length that the file claims.
//!
//! - this file: one `.npy` array (preamble, dtype and shape checks, Fortran order), and writing;
//! - [`header`]: the parser of the header's Python-literal dict;
//! - [`npz`]: `.npz` archives, whose members are `.npy` streams read here.

mod header;
mod labels;
mod npz;

use std::io::{BufReader, Read};
use std::path::Path;

use super::{image_dims, read_exact_or_truncated, DataError, Images};
use header::parse_header;
pub use npz::{load_npz, load_npz_bytes};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Longest header accepted when the stream length is unknown (numpy writes < 1 KiB).
const MAX_HEADER: u64 = 1 << 20;

/// Loads one uint8 array of shape N x H x W x C (C = 1 or 3) or N x H x W (C = 1).
/// Any other dtype or rank is a [`DataError::BadArray`] naming the file, dtype and shape.
/// Fortran-ordered arrays are accepted (reordered to C order).
pub fn load_npy(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let file = crate::input::open_regular(path).map_err(|e| DataError::io(path, e))?;
    let total = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    read_npy(&mut BufReader::new(file), total, &label)
}

/// Writes `images` as a uint8 `.npy` array of shape [n, height, width, channels] (the
/// `binary` flag is not stored: 0/1 values are written as they are).
pub fn save_npy_u8(path: impl AsRef<Path>, images: &Images) -> Result<(), DataError> {
    use npyz::WriterBuilder;
    let path = path.as_ref();
    let shape = [images.n, images.height, images.width, images.channels].map(|d| d as u64);
    let mut bytes = Vec::with_capacity(images.pixels.len() + 128);
    let mut writer = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut bytes)
        .begin_nd()
        .map_err(|e| DataError::io(path, e))?;
    writer
        .extend(images.pixels.iter().copied())
        .map_err(|e| DataError::io(path, e))?;
    writer.finish().map_err(|e| DataError::io(path, e))?;
    std::fs::write(path, &bytes).map_err(|e| DataError::io(path, e))
}

/// Reads a `.npy` stream of `total` bytes.
pub(crate) fn read_npy(
    reader: &mut impl Read,
    total: u64,
    label: &str,
) -> Result<Images, DataError> {
    let (header, offset) = read_header(reader, total, label)?;
    read_npy_data(reader, total, label, header, offset)
}

/// Reads the preamble and header of a `.npy` stream of `total` bytes: the header and the
/// offset of the data.
fn read_header(
    reader: &mut impl Read,
    total: u64,
    label: &str,
) -> Result<(header::Header, u64), DataError> {
    // Magic and version.
    let mut pre = Vec::with_capacity(8);
    reader
        .by_ref()
        .take(8)
        .read_to_end(&mut pre)
        .map_err(|e| io_err(label, e))?;
    let matched = pre.len().min(MAGIC.len());
    if pre[..matched] != MAGIC[..matched] || pre.is_empty() {
        return Err(DataError::BadMagic {
            path: label.to_string(),
            format: "a .npy file".to_string(),
            found: hex(&pre[..pre.len().min(6)]),
            expected: hex(MAGIC),
        });
    }
    let (major, minor) = if pre.len() == 8 {
        (pre[6], pre[7])
    } else {
        return Err(truncated(label, "the .npy preamble", 10, pre.len() as u64));
    };
    let len_bytes = match major {
        1 => 2,
        2 | 3 => 4,
        _ => {
            return Err(DataError::format(
                label,
                format!("unsupported .npy format version {major}.{minor}"),
            ))
        }
    };
    let mut len_buf = [0u8; 4];
    read_exact_or_truncated(
        reader,
        &mut len_buf[..len_bytes],
        label,
        "the .npy preamble",
        8 + len_bytes as u64,
        8,
    )?;
    let header_len = u64::from(u32::from_le_bytes(len_buf));
    let offset = 8 + len_bytes as u64 + header_len;
    if offset > total || header_len > MAX_HEADER.max(total) {
        return Err(truncated(label, "the .npy header", offset, total));
    }
    let mut text = vec![0u8; header_len as usize];
    read_exact_or_truncated(
        reader,
        &mut text,
        label,
        "the .npy header",
        offset,
        offset - header_len,
    )?;
    let header = parse_header(&text)
        .map_err(|m| DataError::format(label, format!("bad .npy header: {m}")))?;
    Ok((header, offset))
}

fn read_npy_data(
    reader: &mut impl Read,
    total: u64,
    label: &str,
    header: header::Header,
    offset: u64,
) -> Result<Images, DataError> {
    // dtype and shape.
    let bad = |hint: &str| DataError::BadArray {
        path: label.to_string(),
        dtype: header.dtype_name(),
        shape: header.shape.clone(),
        hint: hint.to_string(),
    };
    if !header.is_uint8() {
        return Err(bad(""));
    }
    let (n, h, w, c) = image_dims(&header.shape, label, &bad)?;
    let too_big = || bad(" (too large)");
    let bytes = n
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(c))
        .ok_or_else(too_big)?;
    let available = total - offset;
    if bytes > available {
        return Err(truncated(
            label,
            &format!("uint8 data of shape {:?}", header.shape),
            offset + bytes,
            total,
        ));
    }
    if bytes < available {
        return Err(DataError::format(
            label,
            format!(
                "{} unexpected bytes after the array data",
                available - bytes
            ),
        ));
    }
    let size = usize::try_from(bytes).map_err(|_| too_big())?;
    let (n, h, w, c) = (n as usize, h as usize, w as usize, c as usize);
    let mut data = vec![0u8; size];
    read_exact_or_truncated(
        reader,
        &mut data,
        label,
        "the array data",
        offset + bytes,
        offset,
    )?;
    if header.fortran_order {
        data = fortran_to_c(&data, n, h, w, c);
    }
    Images::new(n, h, w, c, false, data)
}

/// Reorders N x H x W x C data stored in Fortran order (first index fastest) to C order.
fn fortran_to_c(data: &[u8], n: usize, h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for k in 0..c {
                    out.push(data[i + n * (y + h * (x + w * k))]);
                }
            }
        }
    }
    out
}

fn io_err(label: &str, source: std::io::Error) -> DataError {
    DataError::Io {
        path: label.to_string(),
        source,
    }
}

fn truncated(label: &str, what: &str, expected: u64, found: u64) -> DataError {
    DataError::Truncated {
        path: label.to_string(),
        what: what.to_string(),
        expected,
        found,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    if bytes.is_empty() {
        s = "(empty file)".to_string();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut text = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn read(bytes: &[u8]) -> Result<Images, DataError> {
        read_npy(&mut Cursor::new(bytes), bytes.len() as u64, "t.npy")
    }

    #[test]
    fn reads_uint8_c_and_fortran_order() {
        let data: Vec<u8> = (0..12).collect();
        let im = read(&npy("|u1", false, "(2, 3, 2)", &data)).unwrap();
        assert_eq!((im.n, im.height, im.width, im.channels), (2, 3, 2, 1));
        assert_eq!(im.pixels, data);
        // Fortran order: element (i, y, x) is stored at i + 2 * (y + 3 * x).
        let im = read(&npy("|u1", true, "(2, 3, 2)", &data)).unwrap();
        assert_eq!(im.image(0), &[0, 6, 2, 8, 4, 10]);
        assert_eq!(im.image(1), &[1, 7, 3, 9, 5, 11]);
    }

    #[test]
    fn rejects_overflowing_shape_without_panicking() {
        let bytes = npy("|u1", false, "(18446744073709551615, 4294967296, 2)", &[]);
        let err = read(&bytes).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
        let bytes = npy("|u1", false, "(1000000, 28, 28)", &[0; 10]);
        let total = bytes.len() as u64;
        let err = read(&bytes).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { expected, found, .. }
            if expected == total - 10 + 784_000_000 && found == total),
            "{err}"
        );
        assert!(read(&npy("|u1", false, "(1, 2, 2)", &[0; 5])).is_err());
        assert!(matches!(
            read(&npy("|u1", false, "(0, 2, 2)", &[])),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn rejects_bad_magic_version_and_short_header() {
        assert!(matches!(
            read(b"PK\x03\x04abcdef"),
            Err(DataError::BadMagic { .. })
        ));
        assert!(matches!(read(b""), Err(DataError::BadMagic { .. })));
        assert!(matches!(read(b"\x93NUM"), Err(DataError::Truncated { .. })));
        assert!(read(b"\x93NUMPY\x09\x00\x10\x00").is_err());
        assert!(matches!(
            read(b"\x93NUMPY\x01\x00\xff\x00{}"),
            Err(DataError::Truncated { .. })
        ));
        assert!(matches!(
            read(b"\x93NUMPY\x02\x00\xff\xff\xff\xff"),
            Err(DataError::Truncated { .. })
        ));
    }
}
