//! `.npz` archives: a zip of `.npy` members, opened with npyz's zip reader; each member is
//! read by [`super::read_npy`], which checks it as a `.npy` file.

use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use super::labels::read_npy_labels;
use super::read_npy;
use crate::data::{DataError, Dataset, Images};

/// Loads a `.npz`: arrays `train` and `test` (or `x_train` and `x_test`, as in Keras'
/// mnist.npz) when present, with their class labels when `train_labels` and `test_labels`
/// (or `y_train` and `y_test`) are there too (1-D integer arrays, one label per image), other
/// arrays ignored; else exactly one array, split as [`Dataset::split_single`] says. Each image
/// array as in [`load_npy`](super::load_npy).
pub fn load_npz(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let file = crate::input::open_regular(path).map_err(|e| DataError::io(path, e))?;
    read_npz(BufReader::new(file), &label)
}

/// [`load_npz`] from bytes in memory; `label` names them in errors.
pub fn load_npz_bytes(bytes: &[u8], label: &str) -> Result<Dataset, DataError> {
    read_npz(Cursor::new(bytes), label)
}

fn read_npz<R: Read + Seek>(reader: R, label: &str) -> Result<Dataset, DataError> {
    let mut zip = npyz::zip::ZipArchive::new(reader)
        .map_err(|e| DataError::format(label, format!("not a readable .npz (zip) archive: {e}")))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(npyz::npz::array_name_from_file_name)
        .map(str::to_string)
        .collect();
    let has = |n: &str| names.iter().any(|m| m == n);
    let pair = [("train", "test"), ("x_train", "x_test")]
        .into_iter()
        .find(|(a, b)| has(a) && has(b));
    if let Some((train_name, test_name)) = pair {
        let mut train = read_npz_array(&mut zip, train_name, label)?;
        let mut test = read_npz_array(&mut zip, test_name, label)?;
        let labels = [("train_labels", "test_labels"), ("y_train", "y_test")]
            .into_iter()
            .find(|(a, b)| has(a) && has(b));
        if let Some((a, b)) = labels {
            let named = |name: &str, images: Images, labels: Vec<u32>| {
                images
                    .with_labels(labels)
                    .map_err(|e| DataError::format(&format!("{label}[{name}]"), e.to_string()))
            };
            let la = read_member(&mut zip, a, label, |mut r, t, l| {
                read_npy_labels(&mut r, t, l)
            })?;
            train = named(a, train, la)?;
            let lb = read_member(&mut zip, b, label, |mut r, t, l| {
                read_npy_labels(&mut r, t, l)
            })?;
            test = named(b, test, lb)?;
        }
        return Dataset::new(label, train, test);
    }
    match names.as_slice() {
        [only] => {
            let images = read_npz_array(&mut zip, only, label)?;
            Dataset::split_single(label, images)
        }
        [] => Err(DataError::Empty {
            path: label.to_string(),
        }),
        _ => Err(DataError::format(
            label,
            format!(
                "expected arrays \"train\" and \"test\", or exactly one array; found {:?}",
                names
            ),
        )),
    }
}

fn read_npz_array<R: Read + Seek>(
    zip: &mut npyz::zip::ZipArchive<R>,
    name: &str,
    label: &str,
) -> Result<Images, DataError> {
    read_member(zip, name, label, |mut r, t, l| read_npy(&mut r, t, l))
}

/// Reads member `name` with `read` (a `.npy` reader of images or labels).
fn read_member<R: Read + Seek, T>(
    zip: &mut npyz::zip::ZipArchive<R>,
    name: &str,
    label: &str,
    read: impl FnOnce(&mut dyn Read, u64, &str) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let entry_label = format!("{label}[{name}]");
    let mut entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|e| DataError::format(&entry_label, format!("cannot read array: {e}")))?;
    let total = entry.size();
    let images = read(&mut entry, total, &entry_label)?;
    // The zip reader checks a member's CRC-32 only when a read reaches the member's end, and
    // read_npy stops at the last byte the header promises: read on to the end, so that a
    // corrupt member is refused as numpy refuses it instead of being read silently.
    let mut rest = Vec::new();
    entry.read_to_end(&mut rest).map_err(|e| {
        DataError::format(
            &entry_label,
            format!("corrupt archive member (CRC-32 check failed: {e})"),
        )
    })?;
    if !rest.is_empty() {
        return Err(DataError::format(
            &entry_label,
            format!("{} bytes after the array's data", rest.len()),
        ));
    }
    Ok(images)
}
