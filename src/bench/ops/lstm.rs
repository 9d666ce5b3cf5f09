//! The recurrences, forward and backward through time, by every recurrence variant of the
//! run (`--recurrence`): the Row LSTM (`1 x k` state-to-state taps) and one direction of the
//! Diagonal BiLSTM (`2 x 1`), the latter in both of CUDA's layouts
//! ([`crate::backend::cuda::DiagLstmLayout`]), each under every kernel version
//! ([`crate::backend::cuda::RowLstm`], [`crate::backend::cuda::DiagLstm`]: v1 one thread per
//! (position, unit), v2 the packed weight and register tiles). The inputs are one layer's
//! input-to-state pre-activations; the backward's saved state is the CPU forward of the same
//! inputs.
//!
//! The rows `<scan> bwd d_w_ss` time the backward under each fp32 version of the state weight
//! gradient ([`crate::backend::cuda::LstmWeightFp32`]) in the run's first recurrence.
//!
//! Tolerance: [`parity::DEEP_REL_TOL`], errors compound through the scan's dependent steps.

use super::super::case::{numel, random, state, HostTensor, OpCase, Output};
use super::super::timing::Sweep;
use super::super::BenchConfig;
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, LstmState, Recurrence};
use crate::error::Result;
use crate::parity;
use crate::tensor::Tensor;

/// One of the two scans.
#[derive(Clone, Copy)]
enum Scan {
    Row,
    Diagonal,
}

impl Scan {
    fn forward<X: Backend>(
        self,
        be: &X,
        is: &Tensor<X>,
        w: &Tensor<X>,
        rec: Recurrence,
    ) -> Result<LstmState<X>> {
        match self {
            Scan::Row => be.row_lstm_forward(is, w, rec),
            Scan::Diagonal => be.diag_lstm_forward(is, w, rec),
        }
    }

    fn backward<X: Backend>(
        self,
        be: &X,
        st: &LstmState<X>,
        w: &Tensor<X>,
        dh: &Tensor<X>,
        rec: Recurrence,
    ) -> Result<(Tensor<X>, Tensor<X>)> {
        match self {
            Scan::Row => be.row_lstm_backward(st, w, dh, rec),
            Scan::Diagonal => be.diag_lstm_backward(st, w, dh, rec),
        }
    }
}

/// The cases of `cfg`, for each scan and each of `recurrences`: forward (is, w_ss -> h, c,
/// gates) and backward (h, c, gates, w_ss, dh -> d_is, d_w_ss); and the backward by d_w_ss
/// version in the first of `recurrences`.
pub fn cases<X: Backend>(cfg: &BenchConfig, recurrences: &[Recurrence]) -> Vec<OpCase<X>> {
    let (n, hh, ww, h) = (cfg.batch, cfg.height, cfg.width, cfg.hidden);
    let k = crate::models::DEFAULT_ROW_KERNEL;
    let gates = [n, hh, ww, 4 * h];
    let hs = [n, hh, ww, h];
    let mut out = Vec::new();
    for (scan, ws, seed) in [
        (Scan::Row, [4 * h, h, 1, k], 300u64),
        (Scan::Diagonal, [4 * h, h, 2, 1], 400),
    ] {
        // The state-to-state product's multiply-adds at every position.
        let f = 2.0 * cfg.positions() * numel(&ws) as f64;
        let (names, kernels, what, sweep) = match scan {
            Scan::Row => (
                ["row_lstm fwd", "row_lstm bwd", "row_lstm bwd d_w_ss"],
                ["row_lstm_step_fwd", "row_lstm_step_bwd"],
                format!("h{h} 1x{k} on {n}x{hh}x{ww}"),
                Sweep::RowLstm,
            ),
            Scan::Diagonal => (
                ["diag_lstm fwd", "diag_lstm bwd", "diag_lstm bwd d_w_ss"],
                ["diag_lstm_step_fwd", "diag_lstm_step_bwd"],
                format!("h{h} 2x1 on {n}x{hh}x{ww} (one direction)"),
                Sweep::DiagLstm,
            ),
        };
        let (g, w, hn) = (numel(&gates), numel(&ws), numel(&hs));
        // The backward (h, c, gates, w_ss, dh -> d_is, d_w_ss) as row `name`.
        let backward = |name, kernel, what, rec, sweep| {
            OpCase::new(
                name,
                kernel,
                what,
                move || {
                    // The saved state: the CPU forward of the forward case's inputs.
                    let cpu = CpuBackend::new();
                    let is = random(&gates, seed, 1.0);
                    let w_ss = random(&ws, seed + 1, 0.3);
                    let is_t = Tensor::from_slice(&cpu, &is.shape, &is.data)?;
                    let w_t = Tensor::from_slice(&cpu, &w_ss.shape, &w_ss.data)?;
                    let st = scan.forward(&cpu, &is_t, &w_t, Recurrence::default())?;
                    let host = |t: Tensor<CpuBackend>| HostTensor {
                        shape: t.shape,
                        data: t.data,
                    };
                    Ok(vec![
                        host(st.h),
                        host(st.c),
                        host(st.gates),
                        w_ss,
                        random(&hs, seed + 2, 1.0),
                    ])
                },
                move |be: &X, a| {
                    let (d_is, dw) = scan.backward(be, state(a)?, &a.t[0], &a.t[1], rec)?;
                    Ok(vec![Output::T(d_is), Output::T(dw)])
                },
            )
            .saved_state()
            .recurrence(rec)
            .sweep(sweep)
            .tol(parity::DEEP_REL_TOL)
            // d_is and d_w_ss are a forward's products each.
            .flops(2.0 * f)
            // h + c + gates + w_ss + dh + d_is + d_w_ss
            .bytes(hn + hn + g + w + hn + g + w)
        };
        for &rec in recurrences {
            out.push(
                OpCase::new(
                    names[0],
                    kernels[0],
                    what.clone(),
                    move || Ok(vec![random(&gates, seed, 1.0), random(&ws, seed + 1, 0.3)]),
                    move |be: &X, a| {
                        let st = scan.forward(be, &a.t[0], &a.t[1], rec)?;
                        Ok(vec![Output::T(st.h), Output::T(st.c), Output::T(st.gates)])
                    },
                )
                .recurrence(rec)
                .sweep(sweep)
                .tol(parity::DEEP_REL_TOL)
                .flops(f)
                // is + w_ss + h + c + gates
                .bytes(g + w + hn + hn + g),
            );
            out.push(backward(names[1], kernels[1], what.clone(), rec, sweep));
        }
        // The weight gradient's fp32 versions (LstmWeightFp32), under the default scan
        // version, in one recurrence (every recurrence runs the same d_w_ss kernels after its
        // scan): the rows time the whole backward, so they differ by d_w_ss's time.
        if let Some(&rec) = recurrences.first() {
            out.push(backward(
                names[2],
                "lstm_ss_bwd_weight",
                what.clone(),
                rec,
                Sweep::LstmWeightFp32,
            ));
        }
    }
    out
}
