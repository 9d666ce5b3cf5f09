//! Pictures of drawn images: a PNG grid (the run folder's `samples.png`, `pixelrnn sample`) and
//! a multi-scale model's small and full images side by side.

use crate::data::Images;
use crate::error::{Error, Result};

/// The small and the full images side by side: each output image is `H x 2W`, the small image
/// enlarged `r` times (nearest) on the left, the full image on the right.
pub fn side_by_side(small: &Images, full: &Images) -> Result<Images> {
    let r = full.height / small.height.max(1);
    let (h, w, c) = (full.height, full.width, full.channels);
    let mut px = Vec::with_capacity(full.n * h * 2 * w * c);
    for b in 0..full.n {
        let (s, f) = (small.image(b), full.image(b));
        for i in 0..h {
            for j in 0..w {
                let p = ((i / r) * small.width + j / r) * c;
                px.extend_from_slice(&s[p..p + c]);
            }
            px.extend_from_slice(&f[i * w * c..(i + 1) * w * c]);
        }
    }
    Ok(Images::new(full.n, h, 2 * w, c, full.binary, px)?)
}

/// Upscaling factor of [`grid_png`]: small images are enlarged so that each is at least about
/// 56 pixels wide.
pub fn grid_scale(height: usize, width: usize) -> usize {
    56usize.div_ceil(height.max(width)).max(1)
}

/// Border, in output pixels, around and between the images of [`grid_png`].
pub const GRID_BORDER: usize = 2;

/// A PNG of `images` in a near-square grid (`ceil(sqrt(n))` columns), each image upscaled by
/// [`grid_scale`] (nearest neighbour), separated by a mid-grey border of [`GRID_BORDER`]
/// pixels. Grey for one channel (binary values shown as 0 and 255), RGB for three.
pub fn grid_png(images: &Images) -> Result<Vec<u8>> {
    let n = images.n.max(1);
    grid_png_cols(images, (1..=n).find(|c| c * c >= n).unwrap_or(1))
}

/// [`grid_png`] with `cols` images per row (`sample --classes all`: one row per class).
pub fn grid_png_cols(images: &Images, cols: usize) -> Result<Vec<u8>> {
    let n = images.n.max(1);
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let s = grid_scale(images.height, images.width);
    let (ch, cw) = (images.height * s, images.width * s);
    let b = GRID_BORDER;
    let width = cols * (cw + b) + b;
    let height = rows * (ch + b) + b;
    let c = images.channels;
    let mut buf = vec![128u8; width * height * c];
    for k in 0..images.n {
        let (gy, gx) = (k / cols, k % cols);
        let (oy, ox) = (b + gy * (ch + b), b + gx * (cw + b));
        let img = images.image(k);
        for y in 0..ch {
            for x in 0..cw {
                let src = ((y / s) * images.width + x / s) * c;
                let dst = ((oy + y) * width + ox + x) * c;
                for q in 0..c {
                    let v = img[src + q];
                    buf[dst + q] = if images.binary {
                        v.saturating_mul(255)
                    } else {
                        v
                    };
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(if c == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| Error::Unsupported(format!("PNG encoding failed: {e}")))?;
        w.write_image_data(&buf)
            .map_err(|e| Error::Unsupported(format!("PNG encoding failed: {e}")))?;
    }
    Ok(out)
}

/// Writes [`grid_png`] of `images` to `path` atomically.
pub fn save_grid_png(path: &std::path::Path, images: &Images) -> Result<()> {
    crate::checkpoint::write_atomic(path, &grid_png(images)?)
}

/// Writes [`grid_png_cols`] of `images` to `path` atomically.
pub fn save_grid_png_cols(path: &std::path::Path, images: &Images, cols: usize) -> Result<()> {
    crate::checkpoint::write_atomic(path, &grid_png_cols(images, cols)?)
}
