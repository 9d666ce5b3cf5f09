//! pixelrnn: a research engine for the autoregressive image models of "Pixel Recurrent Neural
//! Networks" (van den Oord et al., 2016), with a CPU backend and hand-written CUDA kernels.
//!
//! Map of the crate (see docs/ARCHITECTURE.md):
//! - [`backend`]: the [`backend::Backend`] trait, its device-neutral shape checks
//!   (`backend::geometry`), the CPU backend and the CUDA backend (a real GPU or the CPU
//!   emulation of the CUDA execution model);
//! - [`nn`]: layers written once against the trait; [`models`]: whole models from a config;
//! - [`optim`], [`train`], [`eval`], [`sample`], [`checkpoint`], [`data`], [`run_dir`],
//!   [`plot`]: training, evaluation, sampling and their files; [`collective`]: data-parallel
//!   all-reduce;
//! - [`bench`](mod@bench) (timings, validated first) and [`parity`] (how results are compared with their
//!   references);
//! - [`kernels`] (the kernels crate: embedded PTX, signatures) and [`device`] (CUDA detection).

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod collective;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod input;
pub mod memory;
pub use pixelrnn_kernels as kernels;
pub mod models;
pub mod nn;
pub mod optim;
pub mod parity;
pub mod plot;
pub mod profile;
pub mod run_dir;
pub mod sample;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
