//! CIFAR-10 binary batches (<https://www.cs.toronto.edu/~kriz/cifar.html>, "binary version").
//!
//! A batch file is a sequence of 3073-byte records: 1 label byte (the class, kept as the image's label), then 3072
//! pixel bytes, channel-planar: the 1024 red values of the 32 x 32 image (row-major), then
//! the 1024 green, then the 1024 blue. They are converted to HWC (R, G, B interleaved).

use std::path::{Path, PathBuf};

use super::{DataError, Dataset, Images};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
/// Bytes in one CIFAR-10 record: 1 label byte + 3 x 32 x 32 pixel bytes.
pub const CIFAR10_RECORD_BYTES: usize = 1 + 3 * PLANE;

const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST_BATCH: &str = "test_batch.bin";
const SUBFOLDER: &str = "cifar-10-batches-bin";

/// Loads one CIFAR-10 binary batch (e.g. `data_batch_1.bin`, 10 000 records) as
/// N x 32 x 32 x 3 images with their class labels (the record's first byte).
pub fn load_cifar10_batch(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let bytes = crate::input::read_regular(path).map_err(|e| DataError::io(path, e))?;
    parse_batch(&bytes, &label)
}

/// Loads the CIFAR-10 folder (the `cifar-10-batches-bin` folder of the archive, or the folder
/// holding it): `data_batch_1.bin` .. `data_batch_5.bin` are the train split (50 000 images),
/// `test_batch.bin` the test split (10 000).
pub fn load_cifar10_dir(dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    let label = dir.display().to_string();
    let root = find_cifar10_dir(dir).unwrap_or_else(|| dir.to_path_buf());
    let mut train: Option<Images> = None;
    for name in TRAIN_BATCHES {
        let batch = load_cifar10_batch(root.join(name))?;
        match train.as_mut() {
            Some(t) => t.append(batch),
            None => train = Some(batch),
        }
    }
    let test = load_cifar10_batch(root.join(TEST_BATCH))?;
    let train = train.expect("TRAIN_BATCHES is not empty");
    Dataset::new(label, train, test)
}

/// The folder holding the CIFAR-10 batches: `dir` itself or its `cifar-10-batches-bin`
/// subfolder, whichever holds `test_batch.bin` or `data_batch_1.bin`.
pub(crate) fn find_cifar10_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join(SUBFOLDER)]
        .into_iter()
        .find(|d| d.join(TEST_BATCH).is_file() || d.join(TRAIN_BATCHES[0]).is_file())
}

pub(crate) fn parse_batch(bytes: &[u8], label: &str) -> Result<Images, DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: label.to_string(),
        });
    }
    if !bytes.len().is_multiple_of(CIFAR10_RECORD_BYTES) {
        let whole = bytes.len() / CIFAR10_RECORD_BYTES;
        return Err(DataError::format(
            label,
            format!(
                "{} bytes is not a whole number of CIFAR-10 records (1 label byte + 3072 pixel \
                 bytes = {CIFAR10_RECORD_BYTES} each): {whole} records and {} bytes left over",
                bytes.len(),
                bytes.len() - whole * CIFAR10_RECORD_BYTES
            ),
        ));
    }
    let n = bytes.len() / CIFAR10_RECORD_BYTES;
    let mut pixels = vec![0u8; n * 3 * PLANE];
    for (record, out) in bytes
        .chunks_exact(CIFAR10_RECORD_BYTES)
        .zip(pixels.chunks_exact_mut(3 * PLANE))
    {
        planar_to_hwc(&record[1..], out);
    }
    let labels = bytes
        .chunks_exact(CIFAR10_RECORD_BYTES)
        .map(|r| u32::from(r[0]))
        .collect();
    Images::new(n, SIDE, SIDE, 3, false, pixels)?.with_labels(labels)
}

/// `planar`: R plane, G plane, B plane (each `PLANE` bytes, row-major) -> `out`: HWC.
fn planar_to_hwc(planar: &[u8], out: &mut [u8]) {
    debug_assert_eq!(planar.len(), 3 * PLANE);
    debug_assert_eq!(out.len(), 3 * PLANE);
    for p in 0..PLANE {
        for c in 0..3 {
            out[3 * p + c] = planar[c * PLANE + p];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_planar_to_hwc() {
        let mut rec = vec![7u8]; // label
        rec.extend((0..PLANE).map(|p| (p % 251) as u8)); // R
        rec.extend((0..PLANE).map(|p| (p % 13) as u8)); // G
        rec.extend((0..PLANE).map(|p| 255 - (p % 7) as u8)); // B
        let im = parse_batch(&rec, "t.bin").unwrap();
        assert_eq!((im.n, im.height, im.width, im.channels), (1, 32, 32, 3));
        // pixel (row 3, col 5): p = 101
        let p = 3 * 32 + 5;
        assert_eq!(
            &im.pixels[3 * p..3 * p + 3],
            &[101, 101 % 13, 255 - 101 % 7]
        );
    }

    #[test]
    fn wrong_sizes() {
        assert!(matches!(
            parse_batch(&[], "t"),
            Err(DataError::Empty { .. })
        ));
        assert!(matches!(
            parse_batch(&[0; 3074], "t"),
            Err(DataError::Format { .. })
        ));
        assert!(matches!(
            parse_batch(&[0; 3072], "t"),
            Err(DataError::Format { .. })
        ));
    }
}
