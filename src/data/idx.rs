//! MNIST IDX image files (<http://yann.lecun.com/exdb/mnist/> format).
//!
//! An IDX file is a 4-byte big-endian magic `0x0000TTDD` (TT: element type, 0x08 = uint8;
//! DD: number of dimensions), DD big-endian u32 sizes, then the elements in C order. MNIST
//! images are `0x00000803`, N x 28 x 28; any H x W is accepted, and 4 dimensions
//! (N x H x W x C, C = 1 or 3) too. Compressed (`.gz`) files are not read: gunzip them first.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{image_dims, read_exact_or_truncated, DataError, Dataset, Images};

/// The file names of the MNIST images in a folder: (train, test). The dotted variants are the
/// names some mirrors use.
const PAIRS: [(&str, &str); 2] = [
    ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"),
    ("train-images.idx3-ubyte", "t10k-images.idx3-ubyte"),
];

/// Loads one IDX images file (magic 0x00000803: uint8 N x H x W; 0x00000804: N x H x W x C).
pub fn load_idx(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let file = crate::input::open_regular(path).map_err(|e| DataError::io(path, e))?;
    let total = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    read_idx(&mut BufReader::new(file), total, &label)
}

/// Loads a folder holding `train-images-idx3-ubyte` (train split) and
/// `t10k-images-idx3-ubyte` (test split), uncompressed.
pub fn load_mnist_idx_dir(dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    let label = dir.display().to_string();
    let Some((train, test)) = find_mnist_idx_pair(dir) else {
        let gz = dir.join("train-images-idx3-ubyte.gz").exists();
        return Err(DataError::format(
            &label,
            if gz {
                "holds train-images-idx3-ubyte.gz: decompress the .gz files first (gunzip)"
            } else {
                "expected train-images-idx3-ubyte and t10k-images-idx3-ubyte in this folder"
            },
        ));
    };
    Dataset::new(label, load_idx_labelled(&train)?, load_idx_labelled(&test)?)
}

/// [`load_idx`] with the class labels of the MNIST labels file beside the images file when
/// there is one (`train-labels-idx1-ubyte` beside `train-images-idx3-ubyte`: the name with
/// `images-idx3` replaced by `labels-idx1`).
pub fn load_idx_labelled(path: &Path) -> Result<Images, DataError> {
    let images = load_idx(path)?;
    match labels_beside(path) {
        Some(lp) => {
            let labels = load_idx_labels(&lp)?;
            images.with_labels(labels).map_err(|e| {
                DataError::format(
                    &lp.display().to_string(),
                    format!("does not match {}: {e}", path.display()),
                )
            })
        }
        None => Ok(images),
    }
}

/// The MNIST labels file that belongs to images file `path`, when it exists.
pub(crate) fn labels_beside(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let swapped = [
        ("images-idx3", "labels-idx1"),
        ("images.idx3", "labels.idx1"),
    ]
    .into_iter()
    .find(|(a, _)| name.contains(a))
    .map(|(a, b)| name.replacen(a, b, 1))?;
    let p = path.with_file_name(swapped);
    p.is_file().then_some(p)
}

/// Loads an MNIST IDX labels file (magic 0x00000801: N uint8 labels).
pub fn load_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u32>, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let bytes = crate::input::read_regular(path).map_err(|e| DataError::io(path, e))?;
    if bytes.len() < 8 {
        return Err(DataError::Truncated {
            path: label,
            what: "the IDX labels header".to_string(),
            expected: 8,
            found: bytes.len() as u64,
        });
    }
    if bytes[..4] != [0, 0, 0x08, 0x01] {
        return Err(DataError::BadMagic {
            path: label,
            format: "an IDX labels file".to_string(),
            found: format!(
                "0x{:08x}",
                u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
            ),
            expected: "0x00000801".to_string(),
        });
    }
    let n = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as u64;
    let found = bytes.len() as u64 - 8;
    if found != n {
        return Err(DataError::format(
            &label,
            format!("the header promises {n} labels, the file holds {found} bytes of them"),
        ));
    }
    Ok(bytes[8..].iter().map(|&v| u32::from(v)).collect())
}

/// The (train, test) image files of an MNIST folder, when both are there.
pub(crate) fn find_mnist_idx_pair(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    PAIRS
        .iter()
        .map(|(a, b)| (dir.join(a), dir.join(b)))
        .find(|(a, b)| a.is_file() && b.is_file())
}

pub(crate) fn read_idx(
    reader: &mut impl Read,
    total: u64,
    label: &str,
) -> Result<Images, DataError> {
    let mut magic = [0u8; 4];
    let mut got = Vec::with_capacity(4);
    reader
        .by_ref()
        .take(4)
        .read_to_end(&mut got)
        .map_err(|e| io_err(label, e))?;
    magic[..got.len()].copy_from_slice(&got);
    if got.len() >= 2 && got[..2] == [0x1f, 0x8b] {
        return Err(DataError::format(
            label,
            "gzip-compressed: decompress it first (gunzip), then pass the uncompressed file",
        ));
    }
    if got.len() < 4 {
        return Err(DataError::Truncated {
            path: label.to_string(),
            what: "the IDX magic".to_string(),
            expected: 4,
            found: got.len() as u64,
        });
    }
    let bad_magic = || DataError::BadMagic {
        path: label.to_string(),
        format: "an IDX images file".to_string(),
        found: format!("0x{:08x}", u32::from_be_bytes(magic)),
        expected: "0x00000803".to_string(),
    };
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad_magic());
    }
    let type_name = match magic[2] {
        0x08 => "uint8",
        0x09 => "int8",
        0x0b => "int16",
        0x0c => "int32",
        0x0d => "float32",
        0x0e => "float64",
        _ => return Err(bad_magic()),
    };
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(bad_magic());
    }
    let header = 4 + 4 * ndim as u64;
    let mut dims_bytes = vec![0u8; 4 * ndim];
    read_exact_or_truncated(reader, &mut dims_bytes, label, "the IDX header", header, 4)?;
    let shape: Vec<u64> = dims_bytes
        .chunks_exact(4)
        .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    let bad = |hint: &str| DataError::BadArray {
        path: label.to_string(),
        dtype: type_name.to_string(),
        shape: shape.clone(),
        hint: hint.to_string(),
    };
    if magic[2] != 0x08 {
        return Err(bad(""));
    }
    if ndim == 1 {
        return Err(bad(" (an IDX labels file, magic 0x00000801, not images)"));
    }
    let (n, h, w, c) = image_dims(&shape, label, &bad)?;
    // Each factor < 2^32 and there are 4: the product can overflow u64, so check.
    let bytes = n
        .checked_mul(h)
        .and_then(|v| v.checked_mul(w))
        .and_then(|v| v.checked_mul(c))
        .ok_or_else(|| bad(" (too large)"))?;
    let available = total.saturating_sub(header);
    if bytes > available {
        return Err(DataError::Truncated {
            path: label.to_string(),
            what: format!("uint8 images of shape {shape:?}"),
            expected: header + bytes,
            found: total,
        });
    }
    if bytes < available {
        return Err(DataError::format(
            label,
            format!(
                "{} unexpected bytes after {} images of {h} x {w} x {c}",
                available - bytes,
                n
            ),
        ));
    }
    let size = usize::try_from(bytes).map_err(|_| bad(" (too large)"))?;
    let mut pixels = vec![0u8; size];
    read_exact_or_truncated(
        reader,
        &mut pixels,
        label,
        "the IDX images",
        header + bytes,
        header,
    )?;
    Images::new(
        n as usize, h as usize, w as usize, c as usize, false, pixels,
    )
}

fn io_err(label: &str, source: std::io::Error) -> DataError {
    DataError::Io {
        path: label.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn read(bytes: &[u8]) -> Result<Images, DataError> {
        read_idx(&mut Cursor::new(bytes), bytes.len() as u64, "t-idx")
    }

    #[test]
    fn parses_uint8_images() {
        let data: Vec<u8> = (0..12).map(|v| v * 20).collect();
        let im = read(&idx(0x803, &[2, 2, 3], &data)).unwrap();
        assert_eq!(
            (im.n, im.height, im.width, im.channels, im.binary),
            (2, 2, 3, 1, false)
        );
        assert_eq!(im.pixels, data);
        let im = read(&idx(0x804, &[1, 1, 2, 3], &data[..6])).unwrap();
        assert_eq!(im.channels, 3);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            read(&idx(0x801, &[3], &[1, 2, 3])),
            Err(DataError::BadArray { .. })
        ));
        assert!(matches!(
            read(&idx(0x0d03, &[1, 1, 1], &[0; 4])),
            Err(DataError::BadArray { .. })
        ));
        assert!(matches!(
            read(&idx(0x1003, &[1, 1, 1], &[0])),
            Err(DataError::BadMagic { .. })
        ));
        assert!(matches!(
            read(&idx(0x803, &[2, 2], &[])),
            Err(DataError::Truncated { .. })
        ));
        assert!(matches!(
            read(&idx(0x803, &[2, 2, 2], &[0; 7])),
            Err(DataError::Truncated { .. })
        ));
        assert!(matches!(
            read(&idx(0x803, &[2, 2, 2], &[0; 9])),
            Err(DataError::Format { .. })
        ));
        assert!(matches!(
            read(&idx(0x803, &[0, 2, 2], &[])),
            Err(DataError::Empty { .. })
        ));
        assert!(read(&idx(0x804, &[u32::MAX; 4], &[])).is_err());
        assert!(matches!(
            read(&[0x1f, 0x8b, 8, 0]),
            Err(DataError::Format { .. })
        ));
        assert!(matches!(read(&[0, 0]), Err(DataError::Truncated { .. })));
    }
}
