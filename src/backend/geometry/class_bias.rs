//! `class_bias_forward` / `_backward`: an NHWC map `[n, H, W, F]`, a table `[K, F]` and one
//! label per image `[n]`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The sizes a class-bias op runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassBiasGeom {
    /// Images.
    pub n: usize,
    /// Positions per image, `H * W`.
    pub positions: usize,
    /// Features F.
    pub features: usize,
    /// Classes K.
    pub classes: usize,
}

/// Checks `x` `[n, H, W, F]` against `labels` `[n]` and a `classes x F` table.
pub fn class_bias<B: Backend>(
    op: &'static str,
    x: &Tensor<B>,
    labels: &Tensor<B>,
    classes: usize,
) -> Result<ClassBiasGeom> {
    let [n, h, w, f] = x.nhwc(op)?;
    if labels.shape != [n] {
        return Err(Error::shape(
            op,
            format!(
                "labels should be [{n}] (one per image), got {:?}",
                labels.shape
            ),
        ));
    }
    if classes == 0 {
        return Err(Error::shape(op, "the table has no classes".to_string()));
    }
    Ok(ClassBiasGeom {
        n,
        positions: h * w,
        features: f,
        classes,
    })
}

/// [`class_bias`] for the forward, whose table `[K, F]` gives K.
pub fn class_bias_table<B: Backend>(
    op: &'static str,
    x: &Tensor<B>,
    table: &Tensor<B>,
    labels: &Tensor<B>,
) -> Result<ClassBiasGeom> {
    let f = x.nhwc(op)?[3];
    match table.shape[..] {
        [k, tf] if tf == f => class_bias(op, x, labels, k),
        _ => Err(Error::shape(
            op,
            format!(
                "the class table should be [classes, {f}], got {:?}",
                table.shape
            ),
        )),
    }
}
