//! Float64 references, each written from the spec (`../shared/spec/MODELS.md`), never from
//! the code under test: the masked convolution with its mask computed here (`conv`), the LSTM
//! cell and the Row and Diagonal scans, the latter on a materialised skew (`lstm`), skew,
//! unskew, mirror and shift (`maps`), and the Row LSTM and Diagonal BiLSTM layers built from
//! them (`layers`), and the discretized logistic mixture likelihood of PixelCNN++
//! (`logistic_mixture`).
//!
//! Their rounding error is that of float64, far below the fp32 error of the code under test,
//! so their central differences (error ~1e-9 with the tests' steps) serve as the reference
//! gradients.

pub mod conv;
pub mod layers;
pub mod logistic_mixture;
pub mod lstm;
pub mod maps;

/// NHWC dimensions of a map.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Dims {
    /// `n` images of `h x w` pixels with `c` features.
    pub fn new(n: usize, h: usize, w: usize, c: usize) -> Self {
        Dims { n, h, w, c }
    }
    /// Number of elements.
    pub fn len(self) -> usize {
        self.n * self.h * self.w * self.c
    }
    /// Offset of feature 0 of pixel `(r, j)` of image `b`.
    pub fn at(self, b: usize, r: usize, j: usize) -> usize {
        ((b * self.h + r) * self.w + j) * self.c
    }
    /// The same image with `c` features.
    pub fn with_c(self, c: usize) -> Self {
        Dims { c, ..self }
    }
    /// The tensor shape `[n, h, w, c]`.
    pub fn shape(self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }
}
