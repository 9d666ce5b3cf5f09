//! What the integration tests share: the float64 references written from the spec
//! (`reference`), random data, tensors and comparisons (`helpers`), the layers and models under
//! test with randomised parameters and the causality probes (`layers`, `models`), running
//! the binary (`cli`), training runs and reading their folders (`runs`), the Multi-Scale
//! configurations (`multiscale`), the emulator tests' buffers and launches (`emu`) and the
//! precision tests' training runs (`precision`).
//!
//! A test file uses it with `mod common;` (tests/cuda/main.rs with
//! `#[path = "../common/mod.rs"] mod common;`). Nothing here depends on a backend other than
//! the CPU one and the CUDA emulator (always built), so every test binary can compile all of
//! it.

// Every test binary compiles this whole module and uses only a subset of it: what one binary
// leaves unused is used by another, so the dead-code lint says nothing useful here.
#![allow(dead_code)]

pub mod cli;
pub mod emu;
pub mod helpers;
pub mod layers;
pub mod models;
pub mod multiscale;
pub mod precision;
pub mod recurrent;
pub mod reference;
pub mod runs;
