//! The model configuration: one struct builds every variant, and is saved with checkpoints.

use serde::{Deserialize, Serialize};

use super::likelihood::Likelihood;
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
    /// Gated PixelCNN (van den Oord et al. 2016): vertical and horizontal stacks, gated
    /// activations, no blind spot (docs/gated-pixelcnn.md).
    #[serde(rename = "gated-pixelcnn")]
    #[value(name = "gated-pixelcnn")]
    GatedPixelCnn,
}

impl ModelKind {
    /// The name used on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::PixelCnn => "pixelcnn",
            ModelKind::RowLstm => "row-lstm",
            ModelKind::DiagBiLstm => "diag-bilstm",
            ModelKind::MultiScale => "multiscale",
            ModelKind::GatedPixelCnn => "gated-pixelcnn",
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
    /// Multi-scale: with `kind` [`ModelKind::MultiScale`], the two-stage model; with a base
    /// `kind`, that model conditioned on an s x s image (a stage 2). `None`: unconditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiscale: Option<MultiScaleConfig>,
    /// Output distribution of 256-level data (absent in older checkpoints: the softmax).
    #[serde(default, skip_serializing_if = "Likelihood::is_softmax")]
    pub likelihood: Likelihood,
    /// Class conditioning (`--condition class`): the number of classes K; every layer (both
    /// stages of a multi-scale model) adds a learned `[K, F]` class bias to its gate or
    /// input-to-state pre-activations. `None` (and checkpoints written before conditioning
    /// existed): unconditional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

/// The multi-scale part of a [`ModelConfig`] (MODELS.md, "Multi-Scale PixelRNN").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiScaleConfig {
    /// Variant of both stages.
    pub base: ModelKind,
    /// s: side of the small image `x[::n/s, ::n/s]`.
    pub scale: usize,
    /// F: features of the conditioning map.
    pub cond_features: usize,
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
        self.likelihood.validate(self.binary)?;
        if self.classes == Some(0) {
            return Err(Error::Config(
                "a class-conditional model needs at least one class".into(),
            ));
        }
        if self.kind == ModelKind::RowLstm && self.row_kernel.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "the Row LSTM kernel width must be odd, got {}",
                self.row_kernel
            )));
        }
        if self.kind == ModelKind::GatedPixelCnn && self.layers == 0 {
            return Err(Error::Config(
                "a Gated PixelCNN needs at least one layer (--layers 1 or more)".into(),
            ));
        }
        let Some(ms) = self.multiscale else {
            return match self.kind {
                ModelKind::MultiScale => Err(Error::Config(
                    "--model multiscale needs --base row-lstm|diag-bilstm|pixelcnn and --scale S"
                        .into(),
                )),
                _ => Ok(()),
            };
        };
        if ms.base == ModelKind::MultiScale || ms.base == ModelKind::GatedPixelCnn {
            return Err(Error::Config(
                "--base must be row-lstm, diag-bilstm or pixelcnn".into(),
            ));
        }
        if self.kind != ModelKind::MultiScale && self.kind != ms.base {
            return Err(Error::Config(format!(
                "a conditioned {} model cannot have base {}",
                self.kind.name(),
                ms.base.name()
            )));
        }
        let s = ms.scale;
        if s == 0
            || s >= self.height
            || !self.height.is_multiple_of(s)
            || !self.width.is_multiple_of(s)
            || self.height / s != self.width / s
        {
            return Err(Error::Config(format!(
                "--scale {s} must cut the {}x{} image into a smaller square grid (n/s an integer >= 2, the same for height and width)",
                self.height, self.width
            )));
        }
        if ms.cond_features == 0 {
            return Err(Error::Config(
                "the conditioning map needs a positive number of features (--cond-features)".into(),
            ));
        }
        if self.kind == ModelKind::MultiScale {
            self.stage1_config().validate()?;
            self.stage2_config().validate()?;
        }
        Ok(())
    }

    /// The subsampling stride r = n/s of a multi-scale or conditioned model.
    pub fn cond_stride(&self) -> Option<usize> {
        self.multiscale.map(|m| self.height / m.scale.max(1))
    }

    /// Stage 1 of a multi-scale model: the unconditional base model of the s x s image.
    pub fn stage1_config(&self) -> ModelConfig {
        let ms = self.multiscale.expect("a multi-scale configuration");
        ModelConfig {
            kind: ms.base,
            height: ms.scale,
            width: ms.scale,
            multiscale: None,
            ..self.clone()
        }
    }

    /// Stage 2 of a multi-scale model: the base model of the full image, conditioned on the
    /// s x s image.
    pub fn stage2_config(&self) -> ModelConfig {
        let ms = self.multiscale.expect("a multi-scale configuration");
        ModelConfig {
            kind: ms.base,
            ..self.clone()
        }
    }

    /// A lower bound on the floats per image position that a forward pass keeps for the
    /// backward: each layer's maps (PixelCNN 4h, Row LSTM 8h, Diagonal BiLSTM 17h; see
    /// docs/ARCHITECTURE.md), the input layer's output, the head's hidden map and the logits
    /// with their gradient.
    pub fn estimated_activations_per_position(&self) -> u128 {
        let h = self.hidden as u128;
        let per_layer = match self.kind {
            ModelKind::PixelCnn => 4 * h,
            ModelKind::RowLstm => 8 * h,
            ModelKind::DiagBiLstm => 17 * h,
            // Inputs of both stacks (2h each), the vertical pre-activation and its shift, the
            // horizontal pre-activation (4h each), the gate output (2h): 20h.
            ModelKind::GatedPixelCnn => 20 * h,
            ModelKind::MultiScale => self.multiscale.map_or(4 * h, |_| {
                self.stage2_config().estimated_activations_per_position()
            }),
        };
        if self.kind == ModelKind::MultiScale {
            return per_layer;
        }
        self.layers as u128 * per_layer
            + 2 * h
            + self.head as u128
            + 2 * self.logits_per_position() as u128
    }

    /// Logits per position: `256 * C`, or `C` for binary data; the logistic mixture's
    /// parameters ([`Likelihood::mixture_params`]).
    pub fn logits_per_position(&self) -> usize {
        if let Some(k) = self.likelihood.mixtures() {
            Likelihood::mixture_params(k, self.channels)
        } else if self.binary {
            self.channels
        } else {
            256 * self.channels
        }
    }

    /// Channel groups of every masked convolution (MODELS.md, "Channel groups and masks"): C,
    /// one per sub-pixel that the head predicts separately. The logistic mixture predicts whole
    /// pixels, so it has one group: the first layer sees no centre tap at all and mask B
    /// layers see the centre of the previous layer in full (docs/logistic-mixture.md).
    pub fn groups(&self) -> usize {
        if self.likelihood.is_softmax() {
            self.channels
        } else {
            1
        }
    }

    /// The image format the model was built for (`28x28x1 binary`).
    pub fn format_label(&self) -> String {
        crate::data::format_label(self.height, self.width, self.channels, self.binary)
    }

    /// One line naming the architecture: kind (multi-scale: with its base and scale), image
    /// format, layers, h and D (`row-lstm, 28x28x1 binary, L7 h16 D32`), and a logistic
    /// mixture's K (`, logistic mixture K10`).
    pub fn summary(&self) -> String {
        let kind = match self.multiscale {
            Some(ms) => format!(
                "{} ({}, scale {})",
                self.kind.name(),
                ms.base.name(),
                ms.scale
            ),
            None => self.kind.name().to_string(),
        };
        let mixture = self
            .likelihood
            .mixtures()
            .map_or(String::new(), |k| format!(", logistic mixture K{k}"));
        let cond = self
            .classes
            .map_or(String::new(), |k| format!(", {k} classes"));
        format!(
            "{kind}, {}, L{} h{} D{}{mixture}{cond}",
            self.format_label(),
            self.layers,
            self.hidden,
            self.head
        )
    }

    /// Sub-pixels per image, `H * W * C`.
    pub fn dims(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// An unconditional configuration: `kind` for `(height, width, channels)` images, with
    /// `(layers, hidden, head)` and the default Row LSTM kernel.
    pub fn plain(
        kind: ModelKind,
        (height, width, channels): (usize, usize, usize),
        binary: bool,
        (layers, hidden, head): (usize, usize, usize),
    ) -> Self {
        ModelConfig {
            kind,
            height,
            width,
            channels,
            binary,
            layers,
            hidden,
            head,
            row_kernel: DEFAULT_ROW_KERNEL,
            multiscale: None,
            likelihood: Likelihood::Softmax,
            classes: None,
        }
    }
}
