//! The bench's sizes ([`CONFIGS`]), what a run times ([`Options`]) and the FLOP count of a
//! training step ([`step_flops`]).

use serde::Serialize;

use crate::backend::{ConvSpec, Mask, Recurrence};
use crate::models::{ModelConfig, ModelKind};

/// A model size of the bench (the layer shapes of the op rows and the training-step rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BenchConfig {
    /// Name on the command line (`--config`).
    pub name: &'static str,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Image channels.
    pub channels: usize,
    /// Hidden layers after the input layer.
    pub layers: usize,
    /// h.
    pub hidden: usize,
    /// D, the head's width.
    pub head: usize,
    /// Images per step.
    pub batch: usize,
}

/// The sizes of `benches/train_step.rs` (MNIST 28x28x1 L7 h16, 32x32x3 L4 h32 D64), issue 6's
/// CIFAR size (L12 h128), the same at batch 64 (issue 6's "one larger batch": the recurrences'
/// steps get 4x the parallel work for the same number of dependent launches) and a tiny one
/// for the emulator and tests.
pub const CONFIGS: [BenchConfig; 5] = [
    BenchConfig {
        name: "mnist",
        height: 28,
        width: 28,
        channels: 1,
        layers: 7,
        hidden: 16,
        head: 32,
        batch: 16,
    },
    BenchConfig {
        name: "cifar",
        height: 32,
        width: 32,
        channels: 3,
        layers: 4,
        hidden: 32,
        head: 64,
        batch: 16,
    },
    BenchConfig {
        name: "cifar-large",
        height: 32,
        width: 32,
        channels: 3,
        layers: 12,
        hidden: 128,
        head: 128,
        batch: 16,
    },
    BenchConfig {
        name: "cifar-b64",
        height: 32,
        width: 32,
        channels: 3,
        layers: 12,
        hidden: 128,
        head: 128,
        batch: 64,
    },
    BenchConfig {
        name: "tiny",
        height: 8,
        width: 8,
        channels: 1,
        layers: 1,
        hidden: 4,
        head: 8,
        batch: 2,
    },
];

/// The config named `name`.
pub fn config(name: &str) -> Option<&'static BenchConfig> {
    CONFIGS.iter().find(|c| c.name == name)
}

impl BenchConfig {
    /// The model of kind `kind` at this size (256-way softmax output).
    pub fn model(&self, kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            height: self.height,
            width: self.width,
            channels: self.channels,
            binary: false,
            layers: self.layers,
            hidden: self.hidden,
            head: self.head,
            row_kernel: crate::models::DEFAULT_ROW_KERNEL,
            multiscale: None,
            likelihood: crate::models::Likelihood::Softmax,
            classes: None,
        }
    }

    /// `28x28x1 L7 h16 D32 B16`.
    pub fn label(&self) -> String {
        format!(
            "{}x{}x{} L{} h{} D{} B{}",
            self.height, self.width, self.channels, self.layers, self.hidden, self.head, self.batch
        )
    }

    /// A deterministic batch of this size (pixel `i` is `(7919 i) mod 256`): the images of
    /// the bench's training-step rows and of `pixelrnn profile`.
    pub fn images(&self) -> crate::error::Result<crate::data::Images> {
        let dims = self.height * self.width * self.channels;
        let pixels = (0..self.batch * dims)
            .map(|i| ((i * 7919) % 256) as u8)
            .collect();
        Ok(crate::data::Images::new(
            self.batch,
            self.height,
            self.width,
            self.channels,
            false,
            pixels,
        )?)
    }

    /// Pixels per batch: `batch * height * width`.
    pub(crate) fn positions(&self) -> f64 {
        (self.batch * self.height * self.width) as f64
    }
}

/// FLOPs of one forward pass and of one training step (forward, weight gradients, input
/// gradients except the input layer's) of `model` on `batch` images, as docs/benchmarks.md
/// counts them: multiply-adds (2 FLOPs) over the live taps of every masked convolution (7x7
/// mask A: 24 taps for C = 1, 25 for C > 1; 3x3 mask B: 5; 1x3 mask B: 2; 1x1: 1) with full
/// channel counts, and the recurrences' state-to-state products (Row LSTM: k*h -> 4h per
/// position; Diagonal BiLSTM: 2h -> 4h per position and direction). Gates, losses, ReLUs and
/// the optimizer (well under 1 %) are not counted. `None` for multi-scale models.
pub fn step_flops(model: &ModelConfig, batch: usize) -> Option<(f64, f64)> {
    let (c, h, d) = (model.channels, model.hidden, model.head);
    let taps = |kh, kw, mask| ConvSpec::new(kh, kw, mask, c, 1, 1).taps().len();
    let input = taps(7, 7, Mask::A) * c * 2 * h;
    let head = 2 * h * d + d * 256 * c;
    let positions = (batch * model.height * model.width) as f64;
    if model.kind == ModelKind::GatedPixelCnn {
        // The first layer's image convolutions (7x7 vertical: 28 taps; 1x7 mask A: 3 taps for
        // C = 1, 4 for C > 1; C -> 4h each) are its "input"; every layer has the 4h -> 4h link
        // and the 2h -> 2h skip, every layer but the last the 2h -> 2h residual, and each
        // later layer its 3x3 vertical (6 taps) and 1x3 mask B (2 taps) 2h -> 4h.
        let input = (taps(7, 7, Mask::Vertical) + taps(1, 7, Mask::A)) * c * 4 * h;
        let l = model.layers;
        let convs = l.saturating_sub(1)
            * (taps(3, 3, Mask::Vertical) + taps(1, 3, Mask::B))
            * 2
            * h
            * 4
            * h
            + l * (16 * h * h + 4 * h * h)
            + l.saturating_sub(1) * 4 * h * h;
        let forward = 2.0 * positions * (input + convs + head) as f64;
        return Some((forward, 3.0 * forward - 2.0 * positions * input as f64));
    }
    let per_layer = match model.kind {
        // 1x1 2h -> h, 3x3 mask B h -> h, 1x1 h -> 2h.
        ModelKind::PixelCnn => 2 * h * h + taps(3, 3, Mask::B) * h * h + h * 2 * h,
        // 1xk mask B input-to-state 2h -> 4h, 1xk state-to-state h -> 4h, 1x1 h -> 2h.
        ModelKind::RowLstm => {
            let k = model.row_kernel;
            taps(1, k, Mask::B) * 2 * h * 4 * h + k * h * 4 * h + h * 2 * h
        }
        // Per direction: 1x1 input-to-state 2h -> 4h and 2x1 state-to-state h -> 4h; then the
        // 1x1 h -> 2h output.
        ModelKind::DiagBiLstm => 2 * (2 * h * 4 * h + 2 * h * 4 * h) + h * 2 * h,
        ModelKind::MultiScale | ModelKind::GatedPixelCnn => return None,
    };
    let fwd_macs = (input + model.layers * per_layer + head) as f64;
    let forward = 2.0 * positions * fwd_macs;
    let step = 3.0 * forward - 2.0 * positions * input as f64;
    Some((forward, step))
}

/// What to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Part {
    /// Ops only.
    Ops,
    /// Training steps only.
    Steps,
    /// Both.
    All,
}

/// What `pixelrnn bench` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Op or step rows.
    pub part: Part,
    /// Timed calls per op row (the median is reported).
    pub iters: usize,
    /// Timed training steps per step row.
    pub step_iters: usize,
    /// Untimed calls before timing.
    pub warmup: usize,
    /// Model kinds of the training-step rows.
    pub models: Vec<ModelKind>,
    /// Sizes.
    pub configs: Vec<&'static BenchConfig>,
    /// Recurrence variants of the recurrent rows.
    pub recurrences: Vec<Recurrence>,
    /// Only op rows whose name contains one of these (empty: all; `--op`). A word that
    /// matches no op row is an error ([`super::check_filter`]).
    pub op_filter: Vec<String>,
    /// Precisions of the rows (`--precision`): the op rows of the backend's variants at these
    /// precisions (tensor-core kernels at tf32 and bf16), and each training step once per
    /// precision, each row validated against the CPU twin at its precision.
    pub precisions: Vec<crate::backend::Precision>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_flops_match_docs_benchmarks() {
        // docs/benchmarks.md, "CPU: FLOPs per training step" (GFLOP per training step).
        let cases = [
            (ModelKind::PixelCnn, "mnist", 1.95),
            (ModelKind::PixelCnn, "cifar", 9.17),
            (ModelKind::RowLstm, "mnist", 4.78),
            (ModelKind::RowLstm, "cifar", 17.63),
            (ModelKind::DiagBiLstm, "mnist", 5.32),
            (ModelKind::DiagBiLstm, "cifar", 19.24),
        ];
        for (kind, name, want) in cases {
            let c = config(name).unwrap();
            let (_, step) = step_flops(&c.model(kind), c.batch).unwrap();
            let got = step / 1e9;
            assert!(
                (got - want).abs() < 0.01,
                "{kind:?} {name}: {got:.3} vs {want}"
            );
        }
    }
}
