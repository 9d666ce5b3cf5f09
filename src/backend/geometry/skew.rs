//! The operands of `skew` and `unskew`: an `[n, H, W, C]` image map and its `[n, H, Ws, C]`
//! skewed map, `Ws = skewed_width(H, W)`. Each op's one check returns a [`SkewGeom`].

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Width of the skewed map of an `height x width` image: `max(2W-1, H+W-1)`.
pub fn skewed_width(height: usize, width: usize) -> usize {
    (2 * width - 1).max(height + width - 1)
}

/// The image width whose skewed map of height `height` is `skewed` wide, if there is one.
pub fn unskewed_width(height: usize, skewed: usize) -> Option<usize> {
    // 2W-1 when W >= H (odd), else H+W-1 with W < H; the two cases cannot both fit.
    let square_or_wide = (skewed % 2 == 1)
        .then(|| skewed.div_ceil(2))
        .filter(|&w| w >= height);
    square_or_wide.or_else(|| {
        (skewed + 1)
            .checked_sub(height)
            .filter(|&w| w >= 1 && w < height)
    })
}

/// Sizes of one skew or unskew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkewGeom {
    /// Images.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Skewed width `max(2W-1, H+W-1)`.
    pub ws: usize,
    /// Features.
    pub c: usize,
}

impl SkewGeom {
    /// `skew`: an image map `x` `[n, H, W, C]` with `W > 0`.
    pub fn skew<B: Backend>(op: &'static str, x: &Tensor<B>) -> Result<Self> {
        let [n, h, w, c] = x.nhwc(op)?;
        if w == 0 {
            return Err(Error::shape(op, "width must be positive"));
        }
        let ws = skewed_width(h, w);
        Ok(SkewGeom { n, h, w, ws, c })
    }

    /// `unskew`: a skewed map `s` `[n, H, Ws, C]` whose width some image width skews to.
    pub fn unskew<B: Backend>(op: &'static str, s: &Tensor<B>) -> Result<Self> {
        let [n, h, ws, c] = s.nhwc(op)?;
        let w = unskewed_width(h, ws).ok_or_else(|| {
            Error::shape(
                op,
                format!("no image of height {h} has a skewed map {ws} wide"),
            )
        })?;
        Ok(SkewGeom { n, h, w, ws, c })
    }

    /// `[n, H, W, C]`: the image map.
    pub fn image_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }

    /// `[n, H, Ws, C]`: the skewed map.
    pub fn skewed_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.ws, self.c]
    }
}

#[cfg(test)]
mod tests {
    use super::{skewed_width, unskewed_width};

    #[test]
    fn skewed_width_inverts_for_every_shape() {
        for h in 1..12 {
            for w in 1..12 {
                let ws = skewed_width(h, w);
                assert_eq!(ws, if h <= w { 2 * w - 1 } else { h + w - 1 });
                assert_eq!(unskewed_width(h, ws), Some(w), "{h}x{w}");
            }
        }
        assert_eq!(unskewed_width(1, 2), None);
    }
}
