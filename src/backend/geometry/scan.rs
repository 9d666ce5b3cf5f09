//! The scans of the LSTM recurrences: which earlier positions each position's state-to-state
//! taps read, which position its cell state continues, and the steps (rows, or anti-diagonals)
//! in which a backend may run the positions of a whole batch at once. Both backends walk the
//! same [`Geometry`]: the CPU's sweeps (`cpu/lstm.rs`) and the CUDA host side's launches
//! (`cuda/lstm.rs`, one per step).

use crate::error::{Error, Result};

/// The dependency pattern of a recurrence over an `height x width` image.
#[derive(Clone, Copy, Debug)]
pub enum Scan {
    /// Row LSTM: taps `(i-1, j + t - k/2)` for `t < k`, cell from `(i-1, j)`; steps are rows.
    Row { k: usize },
    /// Diagonal LSTM: taps `(r-1, j)` and `(r, j-1)`, cell from `(r, j-1)`; steps are the
    /// anti-diagonals `r + j = t` (the columns of the skewed map).
    Diagonal,
}

/// A scan on a concrete image size.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Pattern.
    pub scan: Scan,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Hidden units h.
    pub hidden: usize,
}

impl Geometry {
    /// Number of state-to-state taps.
    pub fn taps(&self) -> usize {
        match self.scan {
            Scan::Row { k } => k,
            Scan::Diagonal => 2,
        }
    }

    /// FLOPs of the state-to-state product over `positions` positions (forward, the
    /// recurrent input gradient and the weight gradient each do this many): 2 per
    /// multiply-add, `taps * h` inputs to `4h` gate rows per position.
    pub fn ss_flops(&self, positions: usize) -> u64 {
        2 * (positions * self.taps() * self.hidden * 4 * self.hidden) as u64
    }

    /// Expected `[4h, h, kh, kw]` shape of the state-to-state weight.
    pub fn weight_shape(&self) -> [usize; 4] {
        let g = 4 * self.hidden;
        match self.scan {
            Scan::Row { k } => [g, self.hidden, 1, k],
            Scan::Diagonal => [g, self.hidden, 2, 1],
        }
    }

    /// Position (flat `r * W + j`) read by tap `t` of position `(r, j)`, if inside the image.
    #[inline]
    pub fn neighbour(&self, r: usize, j: usize, t: usize) -> Option<usize> {
        match self.scan {
            Scan::Row { k } => {
                let jj = (j + t).checked_sub(k / 2)?;
                (r > 0 && jj < self.width).then(|| (r - 1) * self.width + jj)
            }
            Scan::Diagonal => match t {
                0 => (r > 0).then(|| (r - 1) * self.width + j),
                _ => (j > 0).then(|| r * self.width + j - 1),
            },
        }
    }

    /// Position whose cell state `(r, j)` continues.
    #[inline]
    pub fn cell_prev(&self, r: usize, j: usize) -> Option<usize> {
        match self.scan {
            Scan::Row { .. } => (r > 0).then(|| (r - 1) * self.width + j),
            Scan::Diagonal => (j > 0).then(|| r * self.width + j - 1),
        }
    }

    /// Number of steps of the unfused path.
    pub fn steps(&self) -> usize {
        match self.scan {
            Scan::Row { .. } => self.height,
            Scan::Diagonal => self.height + self.width - 1,
        }
    }

    /// Positions `(r, j)` of step `s`.
    pub fn step_positions(&self, s: usize) -> Vec<(usize, usize)> {
        match self.scan {
            Scan::Row { .. } => (0..self.width).map(|j| (s, j)).collect(),
            Scan::Diagonal => {
                let lo = s.saturating_sub(self.width - 1);
                let hi = s.min(self.height - 1);
                (lo..=hi).map(|r| (r, s - r)).collect()
            }
        }
    }

    /// Step `s` as a run of equally spaced positions: `(first flat position, count, stride)`.
    /// A Row LSTM step is a row (stride 1); a Diagonal LSTM step is the anti-diagonal
    /// `(lo, s - lo), (lo + 1, s - lo - 1), ...`, flat positions `W - 1` apart. Its `q`-th
    /// position is `(r, j)` = [`Geometry::step_position`].
    #[inline]
    pub fn step_span(&self, s: usize) -> (usize, usize, usize) {
        match self.scan {
            Scan::Row { .. } => (s * self.width, self.width, 1),
            Scan::Diagonal => {
                let lo = s.saturating_sub(self.width - 1);
                let hi = s.min(self.height - 1);
                (s + lo * (self.width - 1), hi + 1 - lo, self.width - 1)
            }
        }
    }

    /// Position `(r, j)` of the `q`-th entry of step `s` (the order of
    /// [`Geometry::step_positions`]).
    #[inline]
    pub fn step_position(&self, s: usize, q: usize) -> (usize, usize) {
        match self.scan {
            Scan::Row { .. } => (s, q),
            Scan::Diagonal => {
                let r = s.saturating_sub(self.width - 1) + q;
                (r, s - r)
            }
        }
    }

    /// Number of positions of step `s` in one image (`step_span(s).1`).
    #[inline]
    pub fn step_len(&self, s: usize) -> usize {
        self.step_span(s).1
    }

    /// The most positions any step has.
    pub fn max_step_len(&self) -> usize {
        match self.scan {
            Scan::Row { .. } => self.width,
            Scan::Diagonal => self.height.min(self.width),
        }
    }
}

/// The scan of a recurrence on an `height x width` map with `hidden` units, after checking the
/// state weight's shape `w_ss` (the Row LSTM's odd `k` is read off `[4h, h, 1, k]`; the
/// Diagonal LSTM's weight is `[4h, h, 2, 1]`).
pub fn scan_geometry(
    op: &'static str,
    w_ss: &[usize],
    diagonal: bool,
    height: usize,
    width: usize,
    hidden: usize,
) -> Result<Geometry> {
    let scan = if diagonal {
        Scan::Diagonal
    } else {
        match w_ss {
            &[_, _, 1, k] if k % 2 == 1 => Scan::Row { k },
            s => {
                return Err(Error::shape(
                    op,
                    format!("state weight {s:?} should be [4h, h, 1, k] with odd k"),
                ))
            }
        }
    };
    let geo = Geometry {
        scan,
        height,
        width,
        hidden,
    };
    if w_ss != geo.weight_shape().as_slice() {
        return Err(Error::shape(
            op,
            format!("state weight {:?} should be {:?}", w_ss, geo.weight_shape()),
        ));
    }
    Ok(geo)
}
