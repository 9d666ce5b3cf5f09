//! `.npz` archives: a zip of `.npy` members, opened with npyz's zip reader; each member is
//! read by [`super::read_npy`], which checks it as a `.npy` file.

use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use super::read_npy;
use crate::data::{DataError, Dataset, Images};

/// Loads a `.npz`: arrays `train` and `test` (or `x_train` and `x_test`, as in Keras'
/// mnist.npz) when present, other arrays ignored; else exactly one array, split as
/// [`Dataset::split_single`] says. Each array as in [`load_npy`](super::load_npy).
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
        let train = read_npz_array(&mut zip, train_name, label)?;
        let test = read_npz_array(&mut zip, test_name, label)?;
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
    let entry_label = format!("{label}[{name}]");
    let mut entry = zip
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|e| DataError::format(&entry_label, format!("cannot read array: {e}")))?;
    let total = entry.size();
    let images = read_npy(&mut entry, total, &entry_label)?;
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
