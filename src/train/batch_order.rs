//! Which images each step trains on. The order depends only on `(seed, step)`, so a resumed
//! run (or one with any number of data-parallel ranks) visits the same batches.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64;

/// The order in which training images are visited: a fresh seeded permutation per epoch.
pub struct BatchOrder {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl BatchOrder {
    /// An order over `n` images in batches of `batch`.
    pub fn new(n: usize, batch: usize, seed: u64) -> Self {
        BatchOrder {
            n,
            batch,
            seed,
            epoch: None,
        }
    }

    /// Indices of the images of `step`'s batch.
    pub fn indices(&mut self, step: u64) -> Vec<usize> {
        (0..self.batch as u64)
            .map(|j| {
                let pos = step * self.batch as u64 + j;
                let epoch = pos / self.n as u64;
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    let mut perm: Vec<usize> = (0..self.n).collect();
                    let mut rng = Pcg64::seed_from_u64(
                        self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xBA7C,
                    );
                    perm.shuffle(&mut rng);
                    self.epoch = Some((epoch, perm));
                }
                self.epoch.as_ref().expect("set above").1[(pos % self.n as u64) as usize]
            })
            .collect()
    }
}
