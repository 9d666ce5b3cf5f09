//! The precision decision of the CUDA recurrences, in one place ([`check`]): which recurrence
//! path runs at the backend's [`Precision`], and which refuses.
//!
//! At tf32/bf16 the CPU twin (`cpu/lstm.rs`) rounds the state-to-state GEMM operands (the
//! gathered states, the state weight, d_pre) and accumulates in fp32. On CUDA:
//!
//! - fused, folded layout (the default): runs. The steps are the tensor-core kernels
//!   `<scan>_step_{fwd,bwd}_{tf32,bf16}_v2` (v1 selectable; `cuda/lstm_mma.rs`), the weight gradient
//!   `lstm_ss_bwd_weight_{tf32,bf16}_v2` (kernels/lstm_mma_weight.cu: mma.sync, operands
//!   rounded as staged, fp32 accumulation, which is the twin's arithmetic since products of
//!   rounded operands are exact in fp32; `_v1`, the rounded SIMT GEMM, with
//!   `Variants::lstm_weight` V1);
//! - unfused, folded layout: runs, under every selected version. The state products are the
//!   rounded SIMT twins of the newest fp32 ones, `<scan>_ss_fwd_{tf32,bf16}_v2` and
//!   `<scan>_ss_bwd_data_{tf32,bf16}_v3` (kernels/row_lstm.cu, diag_lstm.cu: each operand
//!   rounded on load, fp32 FMA, the twin's arithmetic for the same reason; `cuda/lstm.rs`,
//!   `unfused_product`), the gate passes `lstm_gates_*_v1` (fp32 at every precision, as the
//!   twin's cell) and the weight gradient as the fused path's;
//! - persistent, folded layout: runs (issue 18). `<scan>_persistent_{fwd,bwd}_{tf32,bf16}_v<N>`
//!   (`cuda/lstm_persistent.rs`, kernels/lstm_persistent.cuh): the v2 / v3 cluster kernels
//!   with the state weight rounded as it is staged into shared memory and the states / d_pre
//!   as they are staged, fp32 FMA (SIMT, no tensor cores), and the rounded weight gradient
//!   above. Where no v2 / v3 cluster fits (the v1 fallback: h past 256, or a weight slice
//!   past a block's 227 KiB) `lstm_persistent::check_precision` refuses, with the same error;
//! - the sampler's one-position step (`*_forward_at`): runs. The kernels are
//!   `<scan>_fwd_at_{tf32,bf16}_v1` (`cuda/lstm_at.rs`): the fp32 body with both operands of
//!   the state-to-state product rounded as loaded and fp32 FMA, the twin's
//!   `forward_at_precision` arithmetic;
//! - the materialised Diagonal layout: refused by design (the comparison variant; no
//!   tf32/bf16 versions planned).
//!
//! A refusal is [`Error::PrecisionUnsupported`], naming the op, the path and the precision,
//! returned before anything is launched. At fp32 every path runs, as before.

use crate::backend::{Precision, Recurrence};
use crate::error::{Error, Result};

/// A CUDA recurrence path, as [`check`] decides about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// One of the stepwise or persistent variants over the folded layout.
    Folded(Recurrence),
    /// The materialised Diagonal LSTM layout (any variant).
    Materialised,
    /// The one-position step of sampling (`*_forward_at`).
    ForwardAt,
}

impl Path {
    /// The path's name in the refusal.
    fn name(self) -> &'static str {
        match self {
            Path::Folded(Recurrence::Fused) => "fused",
            Path::Folded(Recurrence::Unfused) => "unfused",
            Path::Folded(Recurrence::Persistent) => "persistent",
            Path::Materialised => "materialised-layout",
            Path::ForwardAt => "forward_at (sampling)",
        }
    }
}

/// Whether recurrence op `op` may run `path` at `precision` on CUDA: `Ok` at fp32, else the
/// refusal (module comment: every path but the materialised Diagonal layout has tf32/bf16
/// kernels).
pub(super) fn check(op: &'static str, path: Path, precision: Precision) -> Result<()> {
    let rounded = match path {
        // Exhaustive, so that a new path must be decided here.
        Path::Folded(Recurrence::Fused | Recurrence::Unfused | Recurrence::Persistent) => true,
        Path::ForwardAt => true,
        Path::Materialised => false,
    };
    if precision == Precision::Fp32 || rounded {
        return Ok(());
    }
    Err(Error::PrecisionUnsupported {
        op,
        variant: path.name(),
        precision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp32_runs_everything_the_folded_paths_and_forward_at_run_everywhere_and_the_rest_refuse_by_name(
    ) {
        for p in Precision::ALL {
            for rec in [
                Recurrence::Fused,
                Recurrence::Unfused,
                Recurrence::Persistent,
            ] {
                assert!(check("row_lstm_forward", Path::Folded(rec), p).is_ok());
            }
            assert!(check("row_lstm_forward_at", Path::ForwardAt, p).is_ok());
            assert!(check("diag_lstm_forward_at", Path::ForwardAt, p).is_ok());
        }
        let paths = [Path::Materialised];
        for path in paths {
            assert!(check("row_lstm_forward", path, Precision::Fp32).is_ok());
            for p in [Precision::Tf32, Precision::Bf16] {
                let msg = check("row_lstm_forward", path, p).unwrap_err().to_string();
                assert!(msg.contains("row_lstm_forward"), "{msg}");
                assert!(msg.contains(path.name()), "{msg}");
                assert!(msg.contains(p.name()), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
    }
}
