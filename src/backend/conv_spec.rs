//! Which taps of a convolution exist: kernel shape, mask kind and channel groups.

use crate::error::{Error, Result};

/// The mask of a convolution (MODELS.md, "Channel groups and masks").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mask {
    /// Unmasked: every tap (state-to-state and conditioning convolutions).
    None,
    /// Mask A: the centre tap only from strictly earlier channel groups (first layer).
    A,
    /// Mask B: the centre tap from earlier groups and the same group (all later layers).
    B,
    /// Gated PixelCNN's vertical stack (docs/gated-pixelcnn.md): every tap in the rows above
    /// the centre and in the centre row (a `(kh/2 + 1) x kw` kernel), every feature pair, no
    /// channel-group rule. Not causal on its own: the output at row `i` sees all of row `i`,
    /// so it may reach a causal map only shifted down one row.
    Vertical,
}

/// Shape and mask of a convolution.
///
/// Feature `f` of a map belongs to channel group `(f % block) % groups`: `block` is the map's
/// width for ordinary maps and `h` for a gate pre-activation of `4h` features, so that unit `u`
/// of every gate block is in group `u mod C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Kernel height (odd).
    pub kh: usize,
    /// Kernel width (odd).
    pub kw: usize,
    /// Mask kind.
    pub mask: Mask,
    /// Number of channel groups C (image channels: 1 or 3).
    pub groups: usize,
    /// Output features repeat their group pattern every `out_block` features.
    pub out_block: usize,
    /// Input features repeat their group pattern every `in_block` features.
    pub in_block: usize,
}

impl ConvSpec {
    /// A convolution between ordinary maps of `cin` and `cout` features.
    pub fn new(kh: usize, kw: usize, mask: Mask, groups: usize, cin: usize, cout: usize) -> Self {
        ConvSpec {
            kh,
            kw,
            mask,
            groups,
            out_block: cout,
            in_block: cin,
        }
    }

    /// Checks the kernel is odd and the group counts are positive.
    pub fn validate(&self) -> Result<()> {
        if self.kh.is_multiple_of(2) || self.kw.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "convolution kernels must be odd, got {}x{}",
                self.kh, self.kw
            )));
        }
        if self.groups == 0 || self.out_block == 0 || self.in_block == 0 {
            return Err(Error::Config("channel groups must be positive".into()));
        }
        Ok(())
    }

    /// Raster index of the centre tap.
    pub fn centre(&self) -> usize {
        (self.kh / 2) * self.kw + self.kw / 2
    }

    /// Group of output feature `o`.
    pub fn out_group(&self, o: usize) -> usize {
        (o % self.out_block) % self.groups
    }

    /// Group of input feature `i`.
    pub fn in_group(&self, i: usize) -> usize {
        (i % self.in_block) % self.groups
    }

    /// Whether the centre tap connects input feature `i` to output feature `o`.
    pub fn centre_allows(&self, o: usize, i: usize) -> bool {
        match self.mask {
            Mask::None | Mask::Vertical => true,
            Mask::A => self.out_group(o) > self.in_group(i),
            Mask::B => self.out_group(o) >= self.in_group(i),
        }
    }

    /// The taps (as `(ky, kx)`) that are not structurally zero, in raster order: always a
    /// prefix of the raster order, which is how the CUDA kernels receive them (a count). The
    /// centre is kept unless it is zero for every pair of features (mask A with a single
    /// group); [`Mask::Vertical`] ends with the centre row.
    pub fn taps(&self) -> Vec<(usize, usize)> {
        let centre = self.centre();
        let last = match self.mask {
            Mask::None => self.kh * self.kw,
            Mask::Vertical => (self.kh / 2 + 1) * self.kw,
            Mask::A if self.groups == 1 => centre,
            Mask::A | Mask::B => centre + 1,
        };
        (0..last).map(|t| (t / self.kw, t % self.kw)).collect()
    }

    /// Whether weight `[o, i, ky, kx]` is allowed by the mask.
    pub fn allows(&self, o: usize, i: usize, ky: usize, kx: usize) -> bool {
        match self.mask {
            Mask::None => return true,
            Mask::Vertical => return ky <= self.kh / 2,
            Mask::A | Mask::B => {}
        }
        let t = ky * self.kw + kx;
        let c = self.centre();
        t < c || (t == c && self.centre_allows(o, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_a_single_group_drops_centre() {
        let s = ConvSpec::new(7, 7, Mask::A, 1, 1, 4);
        assert_eq!(s.taps().len(), 24);
        assert!(!s.allows(0, 0, 3, 3));
        assert!(s.allows(0, 0, 3, 2));
        assert!(!s.allows(0, 0, 3, 4));
        assert!(s.allows(0, 0, 2, 6));
    }

    #[test]
    fn rgb_centre_rules() {
        let a = ConvSpec::new(3, 3, Mask::A, 3, 3, 6);
        let b = ConvSpec::new(3, 3, Mask::B, 3, 3, 6);
        // output feature 4 is group 1 (G); input 0 is R, 1 is G, 2 is B
        assert!(a.allows(4, 0, 1, 1) && !a.allows(4, 1, 1, 1) && !a.allows(4, 2, 1, 1));
        assert!(b.allows(4, 0, 1, 1) && b.allows(4, 1, 1, 1) && !b.allows(4, 2, 1, 1));
        assert_eq!(a.taps().len(), 5);
    }

    #[test]
    fn vertical_keeps_the_rows_up_to_the_centre() {
        // 3x3: rows 0 and 1 (the centre row, right of the centre included), for every pair.
        let s = ConvSpec::new(3, 3, Mask::Vertical, 3, 3, 6);
        assert_eq!(
            s.taps(),
            vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        );
        assert!(s.allows(0, 2, 1, 1) && s.allows(0, 1, 1, 2) && s.allows(5, 0, 0, 0));
        assert!(!s.allows(0, 0, 2, 0) && !s.allows(0, 0, 2, 1));
        // 7x7: the 4 x 7 upper part; every allowed tap is one of taps().
        let s7 = ConvSpec::new(7, 7, Mask::Vertical, 1, 1, 4);
        assert_eq!(s7.taps().len(), 28);
        let live = s7.taps();
        for ky in 0..7 {
            for kx in 0..7 {
                assert_eq!(s7.allows(0, 0, ky, kx), live.contains(&(ky, kx)));
            }
        }
    }

    #[test]
    fn gate_blocks_repeat_groups() {
        // 4h = 8 features, h = 2: unit u of each gate block is group u mod 3
        let s = ConvSpec {
            out_block: 2,
            ..ConvSpec::new(1, 3, Mask::B, 3, 3, 8)
        };
        let groups: Vec<usize> = (0..8).map(|o| s.out_group(o)).collect();
        assert_eq!(groups, vec![0, 1, 0, 1, 0, 1, 0, 1]);
    }
}
