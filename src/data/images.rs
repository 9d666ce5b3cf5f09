//! The [`Images`] type: uint8 images in NHWC layout, with their class labels when the source
//! has them.

use super::{DataError, BINARIZE_THRESHOLD};

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
    /// Class label of each image (`n` of them) when the source has labels
    /// ([`Images::with_labels`]); `None` for unlabelled data.
    pub labels: Option<Vec<u32>>,
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
            labels: None,
        })
    }

    /// These images with class `labels`, one per image: a [`DataError::InvalidImages`] when
    /// their number is not `n`.
    pub fn with_labels(self, labels: Vec<u32>) -> Result<Images, DataError> {
        if labels.len() != self.n {
            return Err(DataError::InvalidImages(format!(
                "{} labels for {} images: every image needs exactly one label",
                labels.len(),
                self.n
            )));
        }
        Ok(Images {
            labels: Some(labels),
            ..self
        })
    }

    /// The class label of image `i`, when the images are labelled.
    pub fn label(&self, i: usize) -> Option<u32> {
        self.labels.as_ref().map(|l| l[i])
    }

    /// Number of classes the labels name: the largest label + 1 (`None` when unlabelled).
    pub fn num_classes(&self) -> Option<usize> {
        self.labels
            .as_ref()
            .map(|l| l.iter().max().map_or(0, |&m| m as usize + 1))
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
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
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
            labels: self.labels.clone(),
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
            labels: self.labels.as_ref().map(|l| l[range.clone()].to_vec()),
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
            labels: None,
        }
    }

    /// Appends `other` (same format). Used to join CIFAR-10 batches. The result is labelled
    /// when both parts are.
    pub(crate) fn append(&mut self, other: Images) {
        debug_assert!(self.same_format(&other));
        self.n += other.n;
        self.pixels.extend_from_slice(&other.pixels);
        self.labels = match (self.labels.take(), other.labels) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
    }
}

/// `HxWxC`, followed by ` binary` for 0/1 data.
pub fn format_label(height: usize, width: usize, channels: usize, binary: bool) -> String {
    format!(
        "{height}x{width}x{channels}{}",
        if binary { " binary" } else { "" }
    )
}
