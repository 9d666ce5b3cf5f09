//! The operands of the one-position ops of sampling (`read_position`, `write_position`) and
//! the position check that every op working at one position (`masked_conv2d_forward_at`, the
//! recurrences' `*_forward_at`) makes.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Fails unless `(i, j)` lies in an `h x w` map.
pub fn position_in(op: &'static str, h: usize, w: usize, i: usize, j: usize) -> Result<()> {
    if i < h && j < w {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("position ({i}, {j}) outside a {h}x{w} map"),
        ))
    }
}

/// Position `(i, j)` of an NHWC map `[n, h, w, f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionGeom {
    /// Images.
    pub n: usize,
    /// Map height.
    pub h: usize,
    /// Map width.
    pub w: usize,
    /// Features per position.
    pub f: usize,
    /// Row.
    pub i: usize,
    /// Column.
    pub j: usize,
}

impl PositionGeom {
    /// `read_position`: `(i, j)` inside the NHWC map `x`.
    pub fn read<B: Backend>(op: &'static str, x: &Tensor<B>, i: usize, j: usize) -> Result<Self> {
        let [n, h, w, f] = x.nhwc(op)?;
        position_in(op, h, w, i, j)?;
        Ok(PositionGeom { n, h, w, f, i, j })
    }

    /// `write_position`: as [`PositionGeom::read`], and the values `v` `[n, f]`.
    pub fn write<B: Backend>(
        op: &'static str,
        x: &Tensor<B>,
        i: usize,
        j: usize,
        v: &Tensor<B>,
    ) -> Result<Self> {
        let g = Self::read(op, x, i, j)?;
        if v.shape != g.values_shape() {
            return Err(Error::shape(
                op,
                format!("values {:?} do not fit map {:?}", v.shape, x.shape),
            ));
        }
        Ok(g)
    }

    /// `[n, f]`: the features of the position in every image.
    pub fn values_shape(&self) -> [usize; 2] {
        [self.n, self.f]
    }
}
