//! [`ModelConfig::estimated_params`]: a model's parameter count from its configuration alone,
//! tensor by tensor as `Model::new` builds them (src/models/mod.rs, src/nn/), so that the
//! memory check runs before any weight is allocated. tests/param_count.rs compares it with
//! built models of every kind.

use super::{ModelConfig, ModelKind};
use crate::nn::cond::upsample_kernel;
use crate::nn::gated_stack::{GATED_FIRST_KERNEL, GATED_KERNEL};

/// A convolution's weight `[cout, cin, kh, kw]` and, with `bias`, its bias `[cout]`.
fn conv(cout: u128, cin: u128, kh: u128, kw: u128, bias: bool) -> u128 {
    cout * cin * kh * kw + if bias { cout } else { 0 }
}

impl ModelConfig {
    /// The model's parameter count, exact: every weight and bias, the class tables of a
    /// class-conditional model (`input.class_bias`, `layers.{l}[.left|.right].class_bias`)
    /// and a multi-scale model's conditioning weights, both stages; from the sizes alone, for
    /// [`crate::memory`] checks before any weight is allocated.
    pub fn estimated_params(&self) -> u128 {
        if let (ModelKind::MultiScale, Some(_)) = (self.kind, self.multiscale) {
            return self.stage1_config().estimated_params()
                + self.stage2_config().estimated_params();
        }
        let (h, c, d) = (
            self.hidden as u128,
            self.channels as u128,
            self.head as u128,
        );
        let k = self.row_kernel as u128;
        let classes = self.classes.unwrap_or(0) as u128;
        let out = self.logits_per_position() as u128;
        let head = conv(d, 2 * h, 1, 1, true) + conv(out, d, 1, 1, true);
        if self.kind == ModelKind::GatedPixelCnn {
            let layers = self.layers as u128;
            let layer = |l: u128| {
                let (cin, kk) = if l == 0 {
                    (c, GATED_FIRST_KERNEL as u128)
                } else {
                    (2 * h, GATED_KERNEL as u128)
                };
                // Vertical k x k and horizontal 1 x k C|2h -> 4h, the 4h -> 4h link, the
                // residual 1x1 (not in the last layer: nothing reads it) and the skip 1x1.
                let res = if l + 1 == layers {
                    0
                } else {
                    conv(2 * h, 2 * h, 1, 1, true)
                };
                conv(4 * h, cin, kk, kk, true)
                    + conv(4 * h, cin, 1, kk, true)
                    + conv(4 * h, 4 * h, 1, 1, true)
                    + res
                    + conv(2 * h, 2 * h, 1, 1, true)
                    + classes * 4 * h
            };
            return (0..layers).map(layer).sum::<u128>() + head;
        }
        // The 7x7 mask-A input convolution C -> 2h and its class table [K, 2h].
        let input = conv(2 * h, c, 7, 7, true) + classes * 2 * h;
        let per_layer = match self.kind {
            // 1x1 2h -> h, 3x3 h -> h, 1x1 h -> 2h; the table [K, h] on conv_mid's output.
            ModelKind::PixelCnn => {
                conv(h, 2 * h, 1, 1, true)
                    + conv(h, h, 3, 3, true)
                    + conv(2 * h, h, 1, 1, true)
                    + classes * h
            }
            // 1xk 2h -> 4h (input-to-state), 1xk h -> 4h (state-to-state, no bias), 1x1
            // h -> 2h; the table [K, 4h].
            ModelKind::RowLstm => {
                conv(4 * h, 2 * h, 1, k, true)
                    + conv(4 * h, h, 1, k, false)
                    + conv(2 * h, h, 1, 1, true)
                    + classes * 4 * h
            }
            // Per direction 1x1 2h -> 4h and the 2x1 h -> 4h state weight (no bias) with its
            // table [K, 4h]; the shared 1x1 h -> 2h.
            ModelKind::DiagBiLstm | ModelKind::MultiScale | ModelKind::GatedPixelCnn => {
                2 * (conv(4 * h, 2 * h, 1, 1, true) + conv(4 * h, h, 2, 1, false) + classes * 4 * h)
                    + conv(2 * h, h, 1, 1, true)
            }
        };
        let cond = match (self.multiscale, self.cond_stride()) {
            // A stage 2: the transposed convolution [C, F, 3r, 3r] + [F], the input's 1x1
            // F -> 2h and each layer's 1x1 F -> (its pre-activation's features).
            (Some(ms), Some(r)) => {
                let (f, kr) = (ms.cond_features as u128, upsample_kernel(r) as u128);
                let per_layer = match self.kind {
                    ModelKind::PixelCnn => conv(h, f, 1, 1, true),
                    ModelKind::RowLstm => conv(4 * h, f, 1, 1, true),
                    _ => 2 * conv(4 * h, f, 1, 1, true),
                };
                c * f * kr * kr + f + conv(2 * h, f, 1, 1, true) + self.layers as u128 * per_layer
            }
            _ => 0,
        };
        input + self.layers as u128 * per_layer + cond + head
    }
}
