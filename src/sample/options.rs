//! What [`super::sample`] is asked to draw: the method, the options and the rows given for
//! completion, checked against the model before anything is drawn.

use crate::data::Images;
use crate::error::{Error, Result};

/// How images are drawn (the same images either way).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum Method {
    /// Recompute one position per layer after each draw (fast).
    #[default]
    #[serde(rename = "cached")]
    #[value(name = "cached")]
    Cached,
    /// A full forward pass per sub-pixel (the reference).
    #[serde(rename = "naive")]
    #[value(name = "naive")]
    Naive,
}

impl Method {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Cached => "cached",
            Method::Naive => "naive",
        }
    }
}

/// Given rows to complete: image `b` starts from `images.image(b % images.n)`, of which the
/// first `rows` rows are kept.
#[derive(Clone, Debug)]
pub struct Prefix {
    /// Images of the model's shape (binary models: 0/1 values).
    pub images: Images,
    /// Rows kept, `0..=height`.
    pub rows: usize,
}

/// What to draw.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Number of images.
    pub n: usize,
    /// Logits are divided by this (`0`: the most likely value).
    pub temperature: f32,
    /// Seed of the uniform draws.
    pub seed: u64,
    /// Naive or cached.
    pub method: Method,
    /// Rows to keep from given images.
    pub prefix: Option<Prefix>,
    /// Images per batch [default: cached, the images split over the threads (at most 64 per
    /// chunk); naive, up to 64 per chunk].
    pub chunk: Option<usize>,
    /// Class-conditional models: the class of each of the `n` images (`None` for an
    /// unconditional model).
    pub classes: Option<Vec<usize>>,
}

impl SampleOptions {
    /// `n` images with the cached method, temperature 1.
    pub fn new(n: usize, seed: u64) -> Self {
        SampleOptions {
            n,
            temperature: 1.0,
            seed,
            method: Method::Cached,
            prefix: None,
            chunk: None,
            classes: None,
        }
    }

    /// Checks the options against the model's configuration.
    pub fn validate(&self, model: &crate::models::ModelConfig) -> Result<()> {
        if self.n == 0 {
            return Err(Error::Config("--n must be at least 1".into()));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Config(format!(
                "--temperature must be a finite number >= 0, got {}",
                self.temperature
            )));
        }
        match (model.classes, &self.classes) {
            (Some(k), None) => {
                return Err(Error::Config(format!(
                    "the checkpoint is class-conditional ({k} classes): give --class K or --classes all"
                )))
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "--class and --classes need a class-conditional checkpoint (trained with --condition class)".into(),
                ))
            }
            (Some(k), Some(c)) => {
                if c.len() != self.n {
                    return Err(Error::Config(format!(
                        "{} classes given for {} images",
                        c.len(),
                        self.n
                    )));
                }
                if let Some(&bad) = c.iter().find(|&&c| c >= k) {
                    return Err(Error::Config(format!(
                        "--class {bad} is out of range: the checkpoint has {k} classes (0..{})",
                        k - 1
                    )));
                }
            }
            (None, None) => {}
        }
        if self.chunk == Some(0) {
            return Err(Error::Config("the chunk size must be positive".into()));
        }
        // The images drawn (one byte a sub-pixel), before the first is allocated.
        let bytes =
            self.n as u128 * model.height as u128 * model.width as u128 * model.channels as u128;
        crate::memory::check_fits(
            || format!("sampling --n {} images of {}", self.n, model.format_label()),
            bytes,
        )?;
        if let Some(p) = &self.prefix {
            let i = &p.images;
            if p.rows > model.height {
                return Err(Error::Config(format!(
                    "--rows {} is larger than the image height {}",
                    p.rows, model.height
                )));
            }
            if i.n == 0 {
                return Err(Error::Config("the --prefix file holds no images".into()));
            }
            if (i.height, i.width, i.channels) != (model.height, model.width, model.channels) {
                return Err(Error::Config(format!(
                    "--prefix images are {}x{}x{}, the model draws {}",
                    i.height,
                    i.width,
                    i.channels,
                    model.format_label()
                )));
            }
            if model.binary && !i.is_zero_one() {
                return Err(Error::Config(format!(
                    "the model is binary but the --prefix images hold values other than 0 and 1 (binarize them: v >= {} -> 1)",
                    crate::data::BINARIZE_THRESHOLD
                )));
            }
        }
        Ok(())
    }
}
