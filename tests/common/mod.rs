//! What the integration tests share: the float64 references written from the spec
//! (`reference`), random data, tensors and comparisons (`helpers`), the layers and models under
//! test with randomised parameters and the causality probes (`layers`, `models`), and running
//! the binary (`cli`), and training runs and reading their folders (`runs`).
//!
//! A test file uses it with `mod common;` (tests/cuda/main.rs with
//! `#[path = "../common/mod.rs"] mod common;`). Nothing here depends on a backend other than
//! the CPU one, so every test binary can compile all of it.

// Every test binary compiles this whole module and uses only a subset of it: what one binary
// leaves unused is used by another, so the dead-code lint says nothing useful here.
#![allow(dead_code)]

pub mod cli;
pub mod helpers;
pub mod layers;
pub mod models;
pub mod recurrent;
pub mod reference;
pub mod runs;
