//! Layers, written once against the [`crate::backend::Backend`] trait: no pixel loops, no
//! device code. Each layer has an explicit forward that returns what its backward needs, and a
//! backward that stores its parameter gradients and returns the input gradient.

pub mod class_bias;
pub mod cond;
pub mod diag_bilstm;
pub mod gated;
pub mod gated_at;
pub mod gated_stack;
pub mod head;
pub mod incremental;
pub mod init;
pub mod masked_conv;
pub mod param;
pub mod residual;
pub mod row_lstm;

pub use class_bias::{ClassBias, Cond};
pub use cond::{CondBias, Upsample};
pub use diag_bilstm::{DiagBiLstm, DiagBiLstmCache};
pub use gated::{GatedCache, GatedLayer, GatedRole};
pub use gated_stack::{GatedStack, GatedStackCache};
pub use head::{HeadCache, OutputHead};
pub use masked_conv::MaskedConv2d;
pub use param::Param;
pub use residual::{ResidualBlock, ResidualCache};
pub use row_lstm::{RowLstm, RowLstmCache};
