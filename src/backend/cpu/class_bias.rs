//! Class bias on the CPU (class conditioning): the CPU twin of `kernels/class_bias.cu`.
//! The forward adds row `labels[b]` of the `[K, F]` table at every position of image `b`; the
//! backward sums, per class, the output gradient over that class's images and their
//! positions, in the kernel's order (images in order; within an image, positions in raster
//! order, then the image's sum added), so both give the same bits.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The class of each image from labels stored as floats, or an error naming the first label
/// that is not a class `0..classes`.
pub fn classes_of(op: &'static str, labels: &[f32], classes: usize) -> Result<Vec<usize>> {
    labels
        .iter()
        .enumerate()
        .map(|(b, &l)| {
            if l >= 0.0 && l < classes as f32 && l.fract() == 0.0 {
                Ok(l as usize)
            } else {
                Err(Error::shape(
                    op,
                    format!("image {b} has label {l}, not a class 0..{classes}"),
                ))
            }
        })
        .collect()
}

/// `out[b, p, f] = x[b, p, f] + table[k_b, f]` over `positions` positions of `features`.
pub fn forward(x: &[f32], table: &[f32], classes: &[usize], features: usize) -> Vec<f32> {
    let per_image = x.len() / classes.len().max(1);
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(per_image.max(1))
        .zip(x.par_chunks(per_image.max(1)))
        .zip(classes.par_iter())
        .for_each(|((o, xi), &k)| {
            let row = &table[k * features..(k + 1) * features];
            for (op, xp) in o.chunks_exact_mut(features).zip(xi.chunks_exact(features)) {
                for ((ov, &xv), &t) in op.iter_mut().zip(xp).zip(row) {
                    *ov = xv + t;
                }
            }
        });
    out
}

/// `dtable[k, f] = sum_{b: k_b = k} sum_p dy[b, p, f]`, `[num_classes, features]`.
pub fn backward(dy: &[f32], classes: &[usize], num_classes: usize, features: usize) -> Vec<f32> {
    let per_image = dy.len() / classes.len().max(1);
    // Per-image sums (in parallel over images, each in raster order), then added per class
    // in image order: the kernel's order.
    let sums: Vec<Vec<f32>> = dy
        .par_chunks(per_image.max(1))
        .map(|img| {
            let mut s = vec![0.0f32; features];
            for p in img.chunks_exact(features) {
                for (a, &v) in s.iter_mut().zip(p) {
                    *a += v;
                }
            }
            s
        })
        .collect();
    let mut dtable = vec![0.0f32; num_classes * features];
    for (s, &k) in sums.iter().zip(classes) {
        for (a, &v) in dtable[k * features..(k + 1) * features].iter_mut().zip(s) {
            *a += v;
        }
    }
    dtable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // 2 images, 2 positions, 2 features; classes 1 and 0 of 3.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let table = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0];
        let out = forward(&x, &table, &[1, 0], 2);
        assert_eq!(out, vec![31.0, 42.0, 33.0, 44.0, 15.0, 26.0, 17.0, 28.0]);
        let d = backward(&x, &[1, 1], 3, 2);
        assert_eq!(d, vec![0.0, 0.0, 16.0, 20.0, 0.0, 0.0]);
        assert!(classes_of("t", &[0.0, 2.0], 3).is_ok());
        assert!(classes_of("t", &[3.0], 3).is_err());
        assert!(classes_of("t", &[0.5], 3).is_err());
        assert!(classes_of("t", &[f32::NAN], 3).is_err());
    }
}
