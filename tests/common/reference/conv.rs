//! The masked convolution (MODELS.md, "Channel groups and masks"): stride 1, "same" zero
//! padding, every tap of the full kernel, with the mask written out here (not
//! `ConvSpec::allows`).

use pixelrnn::backend::{ConvSpec, Mask};

/// One convolution: kernel, mask, groups, feature counts, gate blocks, input size.
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub name: &'static str,
    pub kh: usize,
    pub kw: usize,
    pub mask: Mask,
    pub groups: usize,
    pub cin: usize,
    pub cout: usize,
    pub in_block: usize,
    pub out_block: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

impl ConvCase {
    /// A convolution between ordinary maps (`in_block = cin`, `out_block = cout`).
    pub const fn new(
        name: &'static str,
        (kh, kw): (usize, usize),
        mask: Mask,
        groups: usize,
        (cin, cout): (usize, usize),
        (n, h, w): (usize, usize, usize),
    ) -> ConvCase {
        ConvCase {
            name,
            kh,
            kw,
            mask,
            groups,
            cin,
            cout,
            in_block: cin,
            out_block: cout,
            n,
            h,
            w,
        }
    }

    /// Output features repeat their group pattern every `b` features (`b = h` for a gate
    /// pre-activation of 4h features: "unit u of every gate block belongs to group u mod C").
    pub const fn out_block(mut self, b: usize) -> ConvCase {
        self.out_block = b;
        self
    }

    /// Input features repeat their group pattern every `b` features.
    pub const fn in_block(mut self, b: usize) -> ConvCase {
        self.in_block = b;
        self
    }

    /// The case as the backend's `ConvSpec`.
    pub fn spec(&self) -> ConvSpec {
        ConvSpec {
            out_block: self.out_block,
            in_block: self.in_block,
            ..ConvSpec::new(
                self.kh,
                self.kw,
                self.mask,
                self.groups,
                self.cin,
                self.cout,
            )
        }
    }

    pub fn x_len(&self) -> usize {
        self.n * self.h * self.w * self.cin
    }
    pub fn y_len(&self) -> usize {
        self.n * self.h * self.w * self.cout
    }
    pub fn w_len(&self) -> usize {
        self.cout * self.cin * self.kh * self.kw
    }
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.cin]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.cout]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.cout, self.cin, self.kh, self.kw]
    }
    /// Weight `[out, in, kh, kw]` index.
    pub fn wi(&self, o: usize, i: usize, ky: usize, kx: usize) -> usize {
        ((o * self.cin + i) * self.kh + ky) * self.kw + kx
    }
    /// Activation NHWC index.
    pub fn xi(&self, n: usize, y: usize, x: usize, c: usize, feats: usize) -> usize {
        ((n * self.h + y) * self.w + x) * feats + c
    }

    /// The mask of MODELS.md: group(f) = (f % block) % C; taps strictly before the centre in
    /// raster order are allowed, taps after it are zero, and the centre connects output group
    /// go to input group gi iff go > gi (mask A) or go >= gi (mask B). Unmasked convolutions
    /// keep every tap; the vertical mask of Gated PixelCNN (docs/gated-pixelcnn.md) keeps the
    /// rows above the centre and the whole centre row, for every feature pair. 1.0 where
    /// allowed, else 0.0, in weight layout.
    pub fn mask(&self) -> Vec<f64> {
        let (cy, cx) = (self.kh / 2, self.kw / 2);
        let mut m = vec![0.0; self.w_len()];
        for o in 0..self.cout {
            for i in 0..self.cin {
                let go = (o % self.out_block) % self.groups;
                let gi = (i % self.in_block) % self.groups;
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        let before = ky < cy || (ky == cy && kx < cx);
                        let centre = ky == cy && kx == cx;
                        let allowed = match self.mask {
                            Mask::None => true,
                            Mask::Vertical => ky <= cy,
                            Mask::A => before || (centre && go > gi),
                            Mask::B => before || (centre && go >= gi),
                        };
                        if allowed {
                            m[self.wi(o, i, ky, kx)] = 1.0;
                        }
                    }
                }
            }
        }
        m
    }

    /// Calls `f(p, q, o, i, wi)` for every output pixel `p` and feature `o`, every tap of the
    /// full kernel that lands inside the image at input pixel `q`, and every input feature `i`
    /// whose weight `wi` of that tap the mask allows (pixels as `(n * h + y) * w + x`), in the
    /// order of a plain loop: per output, taps in raster order, then input features.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
        let mask = self.mask();
        let (cy, cx) = ((self.kh / 2) as isize, (self.kw / 2) as isize);
        for n in 0..self.n {
            for py in 0..self.h {
                for px in 0..self.w {
                    let p = (n * self.h + py) * self.w + px;
                    for o in 0..self.cout {
                        for ky in 0..self.kh {
                            let iy = py as isize + ky as isize - cy;
                            if iy < 0 || iy >= self.h as isize {
                                continue;
                            }
                            for kx in 0..self.kw {
                                let ix = px as isize + kx as isize - cx;
                                if ix < 0 || ix >= self.w as isize {
                                    continue;
                                }
                                let q = (n * self.h + iy as usize) * self.w + ix as usize;
                                for i in 0..self.cin {
                                    let wi = self.wi(o, i, ky, kx);
                                    if mask[wi] != 0.0 {
                                        f(p, q, o, i, wi);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The forward: for every output (n, y, x, o), every allowed tap (ky, kx) and input feature
    /// i, weight times the input at (y + ky - kh/2, x + kx - kw/2), plus the bias.
    pub fn forward(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (cin, cout) = (self.cin, self.cout);
        let mut y: Vec<f64> = (0..self.y_len()).map(|k| b[k % cout]).collect();
        self.for_each_tap(|p, q, o, i, wi| y[p * cout + o] += w[wi] * x[q * cin + i]);
        y
    }

    /// The gradients `(dx, dw, db)` of `sum(dy * forward(x, w, b))`: each product of the
    /// forward, `w[wi] * x[q, i]` added to `y[p, o]`, adds `w[wi] * dy[p, o]` to `dx[q, i]` and
    /// `x[q, i] * dy[p, o]` to `dw[wi]`; the bias adds `dy[p, o]` to `db[o]`.
    pub fn backward(&self, x: &[f64], w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (cin, cout) = (self.cin, self.cout);
        let mut dx = vec![0.0; self.x_len()];
        let mut dw = vec![0.0; self.w_len()];
        let mut db = vec![0.0; cout];
        for (k, &d) in dy.iter().enumerate() {
            db[k % cout] += d;
        }
        self.for_each_tap(|p, q, o, i, wi| {
            let d = dy[p * cout + o];
            dx[q * cin + i] += w[wi] * d;
            dw[wi] += x[q * cin + i] * d;
        });
        (dx, dw, db)
    }
}
