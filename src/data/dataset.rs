//! The [`Dataset`] type: a train split and a test split of one format.

use super::{draw_batch, draw_images, train_stream, Binarize, DataError, Images, TEST_STREAM};

/// A train split and a test split of images of one format.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub train: Images,
    pub test: Images,
    /// How the values were read ([`super::load_dataset_as`]): `Auto` when they are used as they are
    /// (0/1 data then binary), else the binarization applied, with its seed.
    pub binarize: Binarize,
    /// Dynamic binarization: the grey training images, drawn afresh for every batch by
    /// [`Dataset::training_batch`] (`train` holds the first epoch's draw).
    pub(super) grey_train: Option<Images>,
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
        // Labels on one split only are no labels: conditioning needs both.
        let (mut train, mut test) = (train, test);
        if train.labels.is_none() || test.labels.is_none() {
            train.labels = None;
            test.labels = None;
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

    /// Number of classes when both splits are labelled: the largest label of either + 1.
    pub fn num_classes(&self) -> Option<usize> {
        Some(self.train.num_classes()?.max(self.test.num_classes()?))
    }

    /// The number of classes for `--condition class`: a [`DataError::NoLabels`] naming the
    /// dataset when a split has no labels.
    pub fn require_labels(&self) -> Result<usize, DataError> {
        self.num_classes().ok_or_else(|| DataError::NoLabels {
            name: self.name.clone(),
        })
    }
}
