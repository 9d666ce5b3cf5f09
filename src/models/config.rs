//! The model configuration: one struct builds every variant, and is saved with checkpoints.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which model of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum ModelKind {
    /// PixelCNN: masked convolutions with residual blocks.
    #[serde(rename = "pixelcnn")]
    #[value(name = "pixelcnn")]
    PixelCnn,
    /// Row LSTM.
    #[serde(rename = "row-lstm")]
    #[value(name = "row-lstm")]
    RowLstm,
    /// Diagonal BiLSTM.
    #[serde(rename = "diag-bilstm")]
    #[value(name = "diag-bilstm")]
    DiagBiLstm,
    /// Multi-Scale PixelRNN.
    #[serde(rename = "multiscale")]
    #[value(name = "multiscale")]
    MultiScale,
}

impl ModelKind {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::PixelCnn => "pixelcnn",
            ModelKind::RowLstm => "row-lstm",
            ModelKind::DiagBiLstm => "diag-bilstm",
            ModelKind::MultiScale => "multiscale",
        }
    }
}

/// Architecture and data shape of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Variant.
    pub kind: ModelKind,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Image channels C (1 or 3); also the number of channel groups.
    pub channels: usize,
    /// Binary data (one Bernoulli logit per sub-pixel) instead of 256-way softmax.
    pub binary: bool,
    /// Number of hidden layers after the 7x7 input layer (PixelCNN: residual blocks).
    pub layers: usize,
    /// h: the maps between layers have 2h features.
    pub hidden: usize,
    /// D: width of the output head's hidden 1x1 layer.
    pub head: usize,
    /// Row LSTM: width k of the 1xk input-to-state and state-to-state convolutions.
    #[serde(default = "default_row_kernel")]
    pub row_kernel: usize,
}

/// The paper's Row LSTM kernel width.
pub const DEFAULT_ROW_KERNEL: usize = 3;

fn default_row_kernel() -> usize {
    DEFAULT_ROW_KERNEL
}

impl ModelConfig {
    /// Checks sizes and that the variant is built.
    pub fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Config(format!(
                "images must have 1 or 3 channels, got {}",
                self.channels
            )));
        }
        if self.height == 0 || self.width == 0 || self.hidden == 0 || self.head == 0 {
            return Err(Error::Config(
                "height, width, --hidden and --head must be positive".into(),
            ));
        }
        if self.kind == ModelKind::RowLstm && self.row_kernel.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "the Row LSTM kernel width must be odd, got {}",
                self.row_kernel
            )));
        }
        match self.kind {
            ModelKind::PixelCnn | ModelKind::RowLstm | ModelKind::DiagBiLstm => Ok(()),
            other => Err(Error::Unsupported(format!(
                "model '{}' is not built yet (see the open issues); available: pixelcnn, row-lstm, diag-bilstm",
                other.name()
            ))),
        }
    }

    /// Logits per position: `256 * C`, or `C` for binary data.
    pub fn logits_per_position(&self) -> usize {
        if self.binary {
            self.channels
        } else {
            256 * self.channels
        }
    }

    /// The image format the model was built for (`28x28x1 binary`).
    pub fn format_label(&self) -> String {
        crate::data::format_label(self.height, self.width, self.channels, self.binary)
    }

    /// Sub-pixels per image, `H * W * C`.
    pub fn dims(&self) -> usize {
        self.height * self.width * self.channels
    }
}
