//! Device-neutral geometry of the backend ops: the shape checks, written once for every
//! backend.
//!
//! Every op of [`crate::backend::Backend`] whose operands must fit together starts with one
//! call here (the pattern of candle's `conv.rs` params): it checks the shapes and returns the
//! sizes the op runs on as a small typed struct ([`ConvGeom`], [`TransposeGeom`],
//! [`LstmGeom`] with its scan [`Geometry`], [`HeadGeom`], [`PositionGeom`], [`SkewGeom`]).
//! The CPU and CUDA backends both call it and never check the shapes again; what the CUDA
//! host side adds is only its kernels' own limits (sizes that must fit the kernels' 32-bit
//! `int` parameters, `cuda/launch_args.rs`). Single-tensor maps (`mirror_width`, the shifts)
//! need no more than [`crate::tensor::Tensor::nhwc`].
//!
//! - `class_bias`: `class_bias_forward` / `_backward`;
//! - `conv`: `masked_conv2d_forward` / `_backward` / `_pack` / `_forward_at`;
//! - `transpose`: `conv_transpose2d_forward` / `_backward`;
//! - `scan`: the recurrences' dependency patterns and steps, which both backends walk;
//! - `lstm`: `row_lstm_*` and `diag_lstm_*` (forward, backward, one position);
//! - `head`: `softmax_nll`, `bernoulli_nll` (and what their targets may hold),
//!   `sample_logits`;
//! - `mixture`: `logistic_mixture_nll`, `logistic_mixture_sample`;
//! - `position`: `read_position`, `write_position`, and the position check of every `*_at` op;
//! - `skew`: `skew`, `unskew` and the skewed width;
//! - `gated`: `gated_forward`, `gated_backward` (a `2F` pre-activation, an `F` output);
//! - `pointwise`: `relu_backward`, `add`, `rmsprop_update`, `adam_update` (one shape).

pub mod class_bias;
pub mod conv;
pub mod gated;
pub mod head;
pub mod lstm;
pub mod mixture;
pub mod pointwise;
pub mod position;
pub mod scan;
pub mod skew;
pub mod transpose;

pub use conv::{ConvGeom, PackGeom};
pub use gated::GatedGeom;
pub use head::{HeadGeom, Targets};
pub use lstm::LstmGeom;
pub use mixture::MixtureGeom;
pub use position::PositionGeom;
pub use scan::{Geometry, Scan};
pub use skew::SkewGeom;
pub use transpose::TransposeGeom;
