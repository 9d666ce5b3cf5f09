//! `pixelrnn bench` as a library: times every backend op (every kernel variant on CUDA) and a
//! whole training step per model, after checking each result against the CPU backend.
//!
//! Method (STYLE.md, "Validate before you time"):
//! 1. each op runs once on fresh deterministic inputs and its outputs are compared with the
//!    CPU backend's on the same inputs ([`crate::parity::l2_rel_err_all`], tolerances from
//!    [`crate::parity`]); a wrong result is reported as `WRONG` and no time is printed for it;
//! 2. `warmup` untimed calls, then `iters` timed calls, each between `synchronize()` calls (on
//!    a real GPU, between two CUDA events on the launch stream); the row reports the median
//!    and the minimum.
//!
//! Rates: GB/s = [`OpRow`] bytes / time, where bytes is the op's compulsory traffic (every
//! input read once, every output written once, 4 bytes per element; each case's formula is
//! next to it in `ops/`); GFLOP/s = flops / time with each case's FLOP count and, for training
//! steps, [`step_flops`] (the counts of docs/benchmarks.md: multiply-adds over the live taps of
//! every convolution and the recurrences' state-to-state products, two FLOPs each, forward +
//! weight gradients + input gradients). Both are set against ceilings measured in the same
//! run ([`Ceilings`]): on the CPU a large multi-threaded memcpy and a large GEMM (the `gemm`
//! crate through the backend's `sgemm`), and no tensor-core ceilings; on CUDA a large
//! device-to-device copy, the FMA-throughput kernel `peak_fma_v1` (kernels/peak.cu) and the
//! tensor-core throughput kernels `peak_mma_tf32_v1` and `peak_mma_bf16_v1`
//! (kernels/peak_mma.cu). A row's compute fraction (`frac_peak`) is set against the ceiling
//! of its precision (`peak`: fp32 rows the FMA rate, tf32 and bf16 rows their mma rate).
//!
//! Layout: [`config`](BenchConfig) (sizes, options, step FLOPs), `ops/` (one file per op
//! family: the cases), `case` (what a case is), `timing` (timers, kernel variants per row),
//! `ceilings`, `runner` (op rows), `steps` (training-step rows), `report` (rows, table).
//! [`run_streaming`] hands the report so far to its caller after every row (`pixelrnn bench`
//! prints each row and rewrites its `--json` file then), so a run killed at a time limit
//! leaves what it measured; the training-step rows that matter most run first.
//! Every row runs under the kernel variants chosen for it and restores the previous selection
//! afterwards ([`BenchBackend::with_variants`]).
//!
//! The emulator ([`crate::backend::cuda::Emulator`]) runs the same code path; its times say
//! nothing about a GPU and its ceilings are not measured.

mod case;
mod ceilings;
mod config;
mod ops;
mod peak_mma;
mod report;
mod runner;
mod steps;
mod timing;

pub use case::{Args, HostTensor, OpCase, Output};
pub use ceilings::{peak_fma_expected, Ceilings, PEAK_CHAINS, PEAK_UNROLL};
pub use config::{config, step_flops, BenchConfig, Options, Part, CONFIGS};
pub use ops::{check_filter, op_row_names};
pub use peak_mma::{
    check_peak_mma, peak_mma_check_rounds, peak_mma_expected, peak_mma_flops, peak_mma_k,
    peak_mma_kernel, PEAK_MMA_CHAINS, PEAK_MMA_UNROLL,
};
pub use report::{table, table_header, table_row, utc_date, OpRow, Report};
pub use runner::{count_rows, run, run_streaming};
pub use timing::{BenchBackend, Choice, ExecTimer, Sweep};
