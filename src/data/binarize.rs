//! Binarization: how grey levels 0..255 become the 0/1 pixels of a Bernoulli model
//! ([`Binarize`]), and the draws of the stochastic kinds.
//!
//! - `threshold`: `v >= 128 -> 1` ([`super::BINARIZE_THRESHOLD`]), fixed.
//! - `stochastic`: each pixel is 1 with probability `v / 255`, drawn once from a seed, as the
//!   standard binarized MNIST of Salakhutdinov & Murray (2008) was made (and the paper's
//!   binarized-MNIST numbers were measured on it).
//! - `dynamic`: the training images drawn afresh every epoch, the test images drawn once (the
//!   same draw as `stochastic` with that seed). A form of data augmentation that many
//!   reproductions use; it is known to score 1-2 nats/image better than a fixed draw, so its
//!   numbers are not those of the paper's fixed binarized MNIST.
//!
//! Every draw is a function of `(seed, stream, image index)` alone ([`draw_image`]): the test
//! split is stream 0, the training split in epoch `e` stream `1 + e` (so `stochastic` uses
//! the draw of `dynamic`'s first epoch). A resumed run, or one with any number of
//! data-parallel ranks, sees the same pixels.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::Images;

/// The seed of `--binarize stochastic|dynamic` and of `binarized-mnist-stochastic` when
/// `--binarize-seed` is not given. Recorded in the run's configuration either way.
pub const STOCHASTIC_SEED: u64 = 0;

/// How a dataset's values are read (saved in the run's `config.json` as `binarize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binarize {
    /// Values as they are; data whose values are all 0 or 1 is binary (a Bernoulli output).
    #[default]
    Auto,
    /// Values as they are, and 0/1 data too stays 256-level data (`--keep-levels`).
    KeepLevels,
    /// `v >= 128 -> 1`.
    Threshold,
    /// 1 with probability `v / 255`, drawn once from `seed`.
    Stochastic {
        /// Seed of the draw.
        seed: u64,
    },
    /// Training images drawn afresh every epoch, test images once, from `seed`.
    Dynamic {
        /// Seed of the draws.
        seed: u64,
    },
}

impl Binarize {
    /// The flag that asks for it (`--binarize stochastic`, ...), for messages.
    pub fn flag(self) -> String {
        match self {
            Binarize::Auto => "no --binarize".into(),
            Binarize::KeepLevels => "--keep-levels".into(),
            Binarize::Threshold => "--binarize threshold".into(),
            Binarize::Stochastic { seed } => {
                format!("--binarize stochastic --binarize-seed {seed}")
            }
            Binarize::Dynamic { seed } => format!("--binarize dynamic --binarize-seed {seed}"),
        }
    }

    /// What a model trained with `self` reads from data it is evaluated on or completes:
    /// a 256-level model never takes 0/1 data as binary, a binary model binarizes as it was
    /// trained.
    pub fn for_model(self, binary: bool) -> Binarize {
        match (binary, self) {
            (false, _) => Binarize::KeepLevels,
            (true, Binarize::KeepLevels) => Binarize::Auto,
            (true, b) => b,
        }
    }

    /// Whether it turns grey levels into 0/1 (threshold, stochastic or dynamic).
    pub fn binarizes(self) -> bool {
        matches!(
            self,
            Binarize::Threshold | Binarize::Stochastic { .. } | Binarize::Dynamic { .. }
        )
    }
}

/// Reads a run's saved `binarize`: a [`Binarize`], or the `true` / `false` of runs saved
/// before the binarization modes (`--binarize` thresholded; without it values were used as
/// they are, which [`Binarize::for_model`] keeps for the model they trained).
pub fn binarize_compat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Binarize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Saved {
        Old(bool),
        Mode(Binarize),
    }
    Ok(match Saved::deserialize(d)? {
        Saved::Old(true) => Binarize::Threshold,
        Saved::Old(false) => Binarize::Auto,
        Saved::Mode(b) => b,
    })
}

/// Stream of the test split's draw.
pub const TEST_STREAM: u64 = 0;

/// Stream of the training split's draw in epoch `epoch` (the only one for `stochastic`:
/// epoch 0).
pub fn train_stream(epoch: u64) -> u64 {
    1 + epoch
}

/// SplitMix64's finaliser: spreads `(seed, stream, index)` over the generator's seed space.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One image drawn: `out[k] = 1` with probability `grey[k] / 255` exactly (an integer `r`
/// uniform in `0..255` from PCG64 seeded by `(seed, stream, index)`, and `r < v`: so 0 is
/// always 0 and 255 always 1).
pub fn draw_image(grey: &[u8], seed: u64, stream: u64, index: u64, out: &mut Vec<u8>) {
    let mut rng = Pcg64::seed_from_u64(mix(mix(mix(seed) ^ stream) ^ index));
    out.extend(
        grey.iter()
            .map(|&v| u8::from(rng.random_range(0..255u32) < u32::from(v))),
    );
}

/// Every image of `grey` drawn with [`draw_image`] on `stream` (image `i` with index `i`).
pub fn draw_images(grey: &Images, seed: u64, stream: u64) -> Images {
    let mut pixels = Vec::with_capacity(grey.pixels.len());
    for i in 0..grey.n {
        draw_image(grey.image(i), seed, stream, i as u64, &mut pixels);
    }
    Images {
        n: grey.n,
        height: grey.height,
        width: grey.width,
        channels: grey.channels,
        binary: true,
        pixels,
        labels: grey.labels.clone(),
    }
}

/// The training images at `idx` for optimizer step `step` of batches of `batch` under dynamic
/// binarization: batch position `j` is in epoch `(step * batch + j) / n` (the epochs of
/// `train::BatchOrder`), and its image is drawn on that epoch's stream.
pub fn draw_batch(grey: &Images, seed: u64, step: u64, batch: usize, idx: &[usize]) -> Images {
    let mut pixels = Vec::with_capacity(idx.len() * grey.dims());
    for (j, &i) in idx.iter().enumerate() {
        let epoch = (step * batch as u64 + j as u64) / grey.n as u64;
        draw_image(
            grey.image(i),
            seed,
            train_stream(epoch),
            i as u64,
            &mut pixels,
        );
    }
    Images {
        n: idx.len(),
        height: grey.height,
        width: grey.width,
        channels: grey.channels,
        binary: true,
        pixels,
        labels: grey
            .labels
            .as_ref()
            .map(|l| idx.iter().map(|&i| l[i]).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_exact_at_the_ends_and_deterministic() {
        let grey = Images::new(
            3,
            2,
            4,
            1,
            false,
            (0..24).map(|i| [0, 255, 128][i % 3]).collect(),
        )
        .unwrap();
        let a = draw_images(&grey, 7, TEST_STREAM);
        assert_eq!(a, draw_images(&grey, 7, TEST_STREAM));
        assert!(a.binary);
        for (g, b) in grey.pixels.iter().zip(&a.pixels) {
            match g {
                0 => assert_eq!(*b, 0),
                255 => assert_eq!(*b, 1),
                _ => assert!(*b <= 1),
            }
        }
    }
}
