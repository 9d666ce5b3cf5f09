//! The data spec (`--data mnist|binarized-mnist|...|PATH`): built-in names and the file or
//! folder loaders behind a path.

use std::path::Path;

use super::{
    cifar, embedded_mnist, idx, load_cifar10_batch, load_cifar10_dir, load_mnist_idx_dir, load_npy,
    load_npz, Binarize, DataError, Dataset, BINARIZED_MNIST, BINARIZED_MNIST_STOCHASTIC, MNIST,
    STOCHASTIC_SEED,
};

/// Loads a dataset: [`load_dataset_as`] with [`Binarize::Threshold`] when `binarize`, else
/// [`Binarize::Auto`] (values as they are; 0/1 data is binary).
pub fn load_dataset(spec: &str, binarize: bool) -> Result<Dataset, DataError> {
    let how = if binarize {
        Binarize::Threshold
    } else {
        Binarize::Auto
    };
    load_dataset_as(spec, how)
}

/// Loads a dataset and reads its values as `how` says ([`Dataset::read_as`]).
///
/// `spec` is `"mnist"` (embedded, 256 grey levels), `"binarized-mnist"` (embedded,
/// thresholded at [`BINARIZE_THRESHOLD`]: `how` may be `Auto`, `Threshold` or `KeepLevels`,
/// which is for 0/1 files and does not apply), `"binarized-mnist-stochastic"` (embedded,
/// [`Binarize::Stochastic`] with seed [`STOCHASTIC_SEED`]; `how` may be `Auto`, `KeepLevels`
/// or `Stochastic` with another seed), or a path (write `./mnist` for a file of that name):
/// - `.npy`: one uint8 array N x H x W x C (C = 1 or 3) or N x H x W (C = 1);
/// - `.npz`: arrays `train` and `test` (or `x_train` and `x_test`) when present, else
///   exactly one array;
/// - an MNIST IDX images file (magic 0x00000803, uncompressed, e.g. `train-images-idx3-ubyte`);
/// - a CIFAR-10 binary batch (`.bin`, records of 1 label byte + 3072 pixel bytes);
/// - a folder holding `train-images-idx3-ubyte` and `t10k-images-idx3-ubyte` (MNIST), or
///   `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin` (CIFAR-10, also inside a
///   `cifar-10-batches-bin` subfolder).
///
/// A source with a single set of images (one .npy, one array in a .npz, one IDX file, one
/// CIFAR batch) is split deterministically: the last `max(1, N / 10)` images are the test
/// split, the first ones the train split (it needs N >= 2).
///
/// The returned [`Dataset::binarize`] says what was applied, the seed included, so that a run
/// can record it; its name is the spec (`binarized-mnist-dynamic` for `mnist` read
/// dynamically, `binarized-mnist-stochastic` for `mnist` read stochastically).
pub fn load_dataset_as(spec: &str, how: Binarize) -> Result<Dataset, DataError> {
    let named = |name: &str, data: Dataset| Dataset {
        name: name.to_string(),
        ..data
    };
    let rebinarized = |what: &str| DataError::Rebinarized {
        spec: spec.to_string(),
        what: what.to_string(),
        flag: how.flag(),
    };
    match spec {
        MNIST => {
            let data = embedded_mnist().read_as(how);
            return Ok(match data.binarize {
                Binarize::Threshold => named(BINARIZED_MNIST, data),
                Binarize::Stochastic { .. } => named(BINARIZED_MNIST_STOCHASTIC, data),
                Binarize::Dynamic { .. } => named("binarized-mnist-dynamic", data),
                _ => data,
            });
        }
        BINARIZED_MNIST => {
            return match how {
                Binarize::Auto | Binarize::Threshold | Binarize::KeepLevels => Ok(named(
                    BINARIZED_MNIST,
                    embedded_mnist().read_as(Binarize::Threshold),
                )),
                _ => Err(rebinarized("thresholded at 128")),
            }
        }
        BINARIZED_MNIST_STOCHASTIC => {
            let seed = match how {
                Binarize::Auto | Binarize::KeepLevels => STOCHASTIC_SEED,
                Binarize::Stochastic { seed } => seed,
                _ => return Err(rebinarized("stochastically")),
            };
            return Ok(named(
                BINARIZED_MNIST_STOCHASTIC,
                embedded_mnist().read_as(Binarize::Stochastic { seed }),
            ));
        }
        _ => {}
    }
    let path = Path::new(spec);
    if !path.exists() {
        return Err(DataError::UnknownDataset {
            spec: spec.to_string(),
        });
    }
    Ok(load_path(path)?.read_as(how))
}

/// Loads a dataset from a file or folder (any of the path sources of [`load_dataset`]),
/// without binarizing.
pub fn load_path(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let label = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        if idx::find_mnist_idx_pair(path).is_some() {
            return load_mnist_idx_dir(path);
        }
        if cifar::find_cifar10_dir(path).is_some() {
            return load_cifar10_dir(path);
        }
        return Err(DataError::format(
            &label,
            "folder holds no dataset: expected train-images-idx3-ubyte and \
             t10k-images-idx3-ubyte (MNIST), or data_batch_1.bin .. data_batch_5.bin and \
             test_batch.bin (CIFAR-10)",
        ));
    }
    // The .npy and .npz readers (npy.rs) open the file themselves: refuse a device, pipe or
    // socket here, before any of them reads it.
    drop(crate::input::open_regular(path).map_err(|e| DataError::io(path, e))?);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "npy" => return Dataset::split_single(label, load_npy(path)?),
        "npz" => return load_npz(path),
        "bin" => return Dataset::split_single(label, load_cifar10_batch(path)?),
        "gz" => {
            return Err(DataError::format(
                &label,
                "gzip-compressed: decompress it first (gunzip), then pass the uncompressed file",
            ))
        }
        _ => {}
    }
    // No known extension: look at the first bytes.
    let head = read_head(path, 8)?;
    if head.starts_with(b"\x93NUMPY") {
        Dataset::split_single(label, load_npy(path)?)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        load_npz(path)
    } else if head.len() >= 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 {
        Dataset::split_single(label, idx::load_idx_labelled(path)?)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Err(DataError::format(
            &label,
            "gzip-compressed: decompress it first (gunzip), then pass the uncompressed file",
        ))
    } else {
        Err(DataError::format(
            &label,
            "not a recognized dataset file: expected .npy, .npz, an MNIST IDX images file \
             or a CIFAR-10 .bin batch",
        ))
    }
}

fn read_head(path: &Path, n: usize) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let file = crate::input::open_regular(path).map_err(|e| DataError::io(path, e))?;
    let mut head = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    Ok(head)
}
