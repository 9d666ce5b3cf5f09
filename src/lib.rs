//! pixelrnn: a research engine for the autoregressive image models of "Pixel Recurrent Neural
//! Networks" (van den Oord et al., 2016).
//!
//! Map of the crate (see docs/ARCHITECTURE.md):
//! - [`backend`]: the [`backend::Backend`] trait and its CPU implementation;
//! - [`nn`]: layers written once against the trait; [`models`]: whole models from a config;
//! - [`optim`], [`train`], [`eval`], [`checkpoint`], [`data`]: training and its files;
//! - [`kernels`] (embedded PTX) and [`device`] (CUDA detection).

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub use pixelrnn_kernels as kernels;
pub mod models;
pub mod nn;
pub mod optim;
pub mod parity;
pub mod plot;
pub mod run_dir;
pub mod sample;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
