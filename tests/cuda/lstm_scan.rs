//! The recurrences under test, shared by the LSTM parity modules (lstm, lstm_moves,
//! lstm_versions): [`Scan`] (the Row LSTM with its kernel width, or the Diagonal LSTM) with
//! its forward / backward / one-position step on any backend, the recurrence variants, and the
//! selection of a recurrence kernel version. No tests here.

use pixelrnn::backend::cuda::{DiagLstm, RowLstm, Variants};
use pixelrnn::backend::{Backend, LstmState, Recurrence};
use pixelrnn::tensor::Tensor;

/// Which recurrence: the Row LSTM with its kernel width, or the Diagonal LSTM.
#[derive(Clone, Copy, Debug)]
pub enum Scan {
    /// The Row LSTM with its (odd) kernel width k.
    Row(usize),
    /// The Diagonal LSTM.
    Diagonal,
}

impl Scan {
    pub fn weight_shape(self, hd: usize) -> Vec<usize> {
        match self {
            Scan::Row(k) => vec![4 * hd, hd, 1, k],
            Scan::Diagonal => vec![4 * hd, hd, 2, 1],
        }
    }

    pub fn forward<B: Backend>(
        self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
        rec: Recurrence,
    ) -> LstmState<B> {
        let out = match self {
            Scan::Row(_) => be.row_lstm_forward(is, w, rec),
            Scan::Diagonal => be.diag_lstm_forward(is, w, rec),
        };
        out.unwrap_or_else(|e| panic!("{self:?} forward ({rec:?}) on {}: {e}", be.name()))
    }

    pub fn backward<B: Backend>(
        self,
        be: &B,
        state: &LstmState<B>,
        w: &Tensor<B>,
        dh: &Tensor<B>,
        rec: Recurrence,
    ) -> (Tensor<B>, Tensor<B>) {
        let out = match self {
            Scan::Row(_) => be.row_lstm_backward(state, w, dh, rec),
            Scan::Diagonal => be.diag_lstm_backward(state, w, dh, rec),
        };
        out.unwrap_or_else(|e| panic!("{self:?} backward ({rec:?}) on {}: {e}", be.name()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn forward_at<B: Backend>(
        self,
        be: &B,
        is: &Tensor<B>,
        w: &Tensor<B>,
        h: &mut Tensor<B>,
        c: &mut Tensor<B>,
        i: usize,
        j: usize,
    ) -> pixelrnn::error::Result<()> {
        match self {
            Scan::Row(_) => be.row_lstm_forward_at(is, w, h, c, i, j),
            Scan::Diagonal => be.diag_lstm_forward_at(is, w, h, c, i, j),
        }
    }
}

/// Every variant; the first is the one the others are compared with on CUDA.
pub const RECURRENCES: [Recurrence; 3] = [
    Recurrence::Fused,
    Recurrence::Unfused,
    Recurrence::Persistent,
];

/// Whether the persistent kernels stage the state weight of `scan` with `hd` units in shared
/// memory: the host's rule (`PERSISTENT_SHARED_CAP` in src/backend/cuda/lstm.rs, the 48 KiB
/// of dynamic shared memory a block gets without opting in), restated so that each case says
/// which path it covers.
pub fn persistent_staged(scan: Scan, hd: usize) -> bool {
    let floats: usize = scan.weight_shape(hd).iter().product();
    floats * std::mem::size_of::<f32>() <= 48 * 1024
}

/// The selection of recurrence kernel version `v` (1, 2 or 3) of `scan`, on top of `base`.
pub fn scan_version(scan: Scan, v: u32, base: Variants) -> Variants {
    match scan {
        Scan::Row(_) => Variants {
            row_lstm: RowLstm::try_from(v).expect("row_lstm version"),
            ..base
        },
        Scan::Diagonal => Variants {
            diag_lstm: DiagLstm::try_from(v).expect("diag_lstm version"),
            ..base
        },
    }
}

/// The recurrence kernel versions of `scan` ([`RowLstm::ALL`] / [`DiagLstm::ALL`]).
pub fn scan_versions(scan: Scan) -> Vec<u32> {
    match scan {
        Scan::Row(_) => RowLstm::ALL.map(RowLstm::number).to_vec(),
        Scan::Diagonal => DiagLstm::ALL.map(DiagLstm::number).to_vec(),
    }
}

/// `w` ([4h, h, taps]) packed as lstm_pack_ss_v2 does (the tests' direct launches of the
/// step kernels): forward `[taps, h, 4, h]`, transposed
/// `[taps, 4h, h]`.
pub fn pack_ss(w: &[f32], hidden: usize, taps: usize, transposed: bool) -> Vec<f32> {
    let mut p = vec![0.0; w.len()];
    for o in 0..4 * hidden {
        for v in 0..hidden {
            for t in 0..taps {
                let (x, u) = (o / hidden, o % hidden);
                let dst = if transposed {
                    (t * 4 * hidden + o) * hidden + v
                } else {
                    ((t * hidden + v) * 4 + x) * hidden + u
                };
                p[dst] = w[(o * hidden + v) * taps + t];
            }
        }
    }
    p
}
