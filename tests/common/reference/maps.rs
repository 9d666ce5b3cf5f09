//! The maps that only move values (MODELS.md, "Diagonal BiLSTM layer"): skew, unskew,
//! mirror and the one-row shift.

use super::Dims;

/// Width of the skewed map: 2W - 1 as in MODELS.md, which has the paper's square images in
/// mind (H <= W). A taller image needs H + W - 1 columns to hold `S[r, r + j]` at all: the
/// reference takes the larger of the two (extra columns are padding and never read as state).
pub fn skew_width(d: Dims) -> usize {
    (2 * d.w - 1).max(d.h + d.w - 1)
}

/// MODELS.md: `S[r, r + j] = X[r, j]`, S is H x (2W - 1) (see [`skew_width`]), zero elsewhere.
pub fn skew(x: &[f64], d: Dims) -> Vec<f64> {
    let ds = Dims {
        w: skew_width(d),
        ..d
    };
    let mut s = vec![0.0; ds.len()];
    for b in 0..d.n {
        for r in 0..d.h {
            for j in 0..d.w {
                for f in 0..d.c {
                    s[ds.at(b, r, r + j) + f] = x[d.at(b, r, j) + f];
                }
            }
        }
    }
    s
}

/// MODELS.md: `out[r, j] = S_out[r, r + j]`; `d` are the image's dimensions.
pub fn unskew(s: &[f64], d: Dims) -> Vec<f64> {
    let ds = Dims {
        w: skew_width(d),
        ..d
    };
    let mut x = vec![0.0; d.len()];
    for b in 0..d.n {
        for r in 0..d.h {
            for j in 0..d.w {
                for f in 0..d.c {
                    x[d.at(b, r, j) + f] = s[ds.at(b, r, r + j) + f];
                }
            }
        }
    }
    x
}

/// `out[r, j] = x[r, W-1-j]`.
pub fn mirror(x: &[f64], d: Dims) -> Vec<f64> {
    let mut y = vec![0.0; d.len()];
    for b in 0..d.n {
        for r in 0..d.h {
            for j in 0..d.w {
                for f in 0..d.c {
                    y[d.at(b, r, j) + f] = x[d.at(b, r, d.w - 1 - j) + f];
                }
            }
        }
    }
    y
}

/// `out[r] = x[r - 1]`, row 0 zero.
pub fn shift_down(x: &[f64], d: Dims) -> Vec<f64> {
    let mut y = vec![0.0; d.len()];
    for b in 0..d.n {
        for r in 1..d.h {
            for j in 0..d.w {
                for f in 0..d.c {
                    y[d.at(b, r, j) + f] = x[d.at(b, r - 1, j) + f];
                }
            }
        }
    }
    y
}
