//! The LSTM cell and the two recurrences (MODELS.md, "Row LSTM layer", "Diagonal BiLSTM
//! layer"). The Row LSTM scans rows with a 1xk convolution over the previous row's hidden
//! state; the Diagonal LSTM MATERIALISES the skew (an H x (2W-1) map), scans its columns with
//! the 2x1 column convolution over rows r-1 and r of the previous column, forces the skew
//! padding's h and c to zero, and unskews. The backend instead folds the skew into its
//! indexing; agreement of the two is the point.

use super::maps::{skew, skew_width, unskew};
use super::Dims;

/// The logistic function σ.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Gate equations of MODELS.md: `[o, f, i, g] = [σ, σ, σ, tanh](pre)`, `c = f c_prev + i g`,
/// `h = o tanh(c)`.
pub fn cell(pre: &[f64], c_prev: &[f64], gates: &mut [f64], c: &mut [f64], h: &mut [f64]) {
    let hd = c.len();
    for u in 0..hd {
        let o = sigmoid(pre[u]);
        let f = sigmoid(pre[hd + u]);
        let i = sigmoid(pre[2 * hd + u]);
        let g = pre[3 * hd + u].tanh();
        c[u] = f * c_prev[u] + i * g;
        h[u] = o * c[u].tanh();
        gates[u] = o;
        gates[hd + u] = f;
        gates[2 * hd + u] = i;
        gates[3 * hd + u] = g;
    }
}

/// States of a recurrence, NHWC: `h`, `c` with h features, `gates` with 4h.
pub struct ScanStates {
    pub h: Vec<f64>,
    pub c: Vec<f64>,
    pub gates: Vec<f64>,
}

impl ScanStates {
    /// All-zero states of a recurrence whose gate map is `d_gates` (4h features).
    pub fn zeros(d_gates: Dims) -> Self {
        let hd = d_gates.with_c(d_gates.c / 4).len();
        ScanStates {
            h: vec![0.0; hd],
            c: vec![0.0; hd],
            gates: vec![0.0; d_gates.len()],
        }
    }
}

/// Row LSTM recurrence on `is` (`d.c = 4h`): row i's pre-activation is `is_i` plus a 1xk
/// convolution (zero-padded in width, tap t at column j + t - k/2) of row i-1's hidden state;
/// the cell continues `c_{i-1}` at the same column; row -1 has h = c = 0.
pub fn row_scan(is: &[f64], d: Dims, w_ss: &[f64], k: usize) -> ScanStates {
    let (g, hd) = (d.c, d.c / 4);
    assert_eq!(w_ss.len(), g * hd * k);
    let hdim = d.with_c(hd);
    let mut s = ScanStates::zeros(d);
    let zero = vec![0.0; hd];
    let mut pre = vec![0.0; g];
    for b in 0..d.n {
        for i in 0..d.h {
            for j in 0..d.w {
                pre.copy_from_slice(&is[d.at(b, i, j)..d.at(b, i, j) + g]);
                if i > 0 {
                    for tap in 0..k {
                        let jj = j as isize + tap as isize - (k / 2) as isize;
                        if jj < 0 || jj >= d.w as isize {
                            continue;
                        }
                        let hp = hdim.at(b, i - 1, jj as usize);
                        for (o, p) in pre.iter_mut().enumerate() {
                            for u in 0..hd {
                                *p += w_ss[(o * hd + u) * k + tap] * s.h[hp + u];
                            }
                        }
                    }
                }
                let c_prev = if i > 0 {
                    s.c[hdim.at(b, i - 1, j)..hdim.at(b, i - 1, j) + hd].to_vec()
                } else {
                    zero.clone()
                };
                let (ho, go) = (hdim.at(b, i, j), d.at(b, i, j));
                cell(
                    &pre,
                    &c_prev,
                    &mut s.gates[go..go + g],
                    &mut s.c[ho..ho + hd],
                    &mut s.h[ho..ho + hd],
                );
            }
        }
    }
    s
}

/// The diagonal LSTM on a MATERIALISED skewed map `s` (`[n, H, 2W-1, 4h]`, `img_w` = W; see
/// [`skew_width`] for H > W): columns t = 0 .. 2W-2 in order; row r of column t reads the hidden state of rows r - 1
/// (tap 0; zero above row 0) and r (tap 1) of column t - 1 through the 2x1 column convolution
/// `w_ss` `[4h, h, 2, 1]`, and continues the cell state of row r of column t - 1. Positions of
/// the skew's padding (t < r or t > r + W - 1) have h = c = 0: they are skipped and stay zero,
/// and the scan reads them like any other position.
pub fn diag_scan_skewed(s: &[f64], ds: Dims, img_w: usize, w_ss: &[f64]) -> ScanStates {
    let (g, hd) = (ds.c, ds.c / 4);
    assert_eq!(w_ss.len(), g * hd * 2);
    let hdim = ds.with_c(hd);
    let mut sc = ScanStates::zeros(ds);
    let zero = vec![0.0; hd];
    let mut pre = vec![0.0; g];
    for b in 0..ds.n {
        for col in 0..ds.w {
            for r in 0..ds.h {
                let padding = col < r || col - r >= img_w;
                if padding {
                    continue;
                }
                pre.copy_from_slice(&s[ds.at(b, r, col)..ds.at(b, r, col) + g]);
                if col > 0 {
                    let rows = [(0usize, r.checked_sub(1)), (1usize, Some(r))];
                    for (tap, row) in rows {
                        let Some(row) = row else { continue };
                        let hp = hdim.at(b, row, col - 1);
                        for (o, p) in pre.iter_mut().enumerate() {
                            for u in 0..hd {
                                *p += w_ss[(o * hd + u) * 2 + tap] * sc.h[hp + u];
                            }
                        }
                    }
                }
                let c_prev = if col > 0 {
                    sc.c[hdim.at(b, r, col - 1)..hdim.at(b, r, col - 1) + hd].to_vec()
                } else {
                    zero.clone()
                };
                let (ho, go) = (hdim.at(b, r, col), ds.at(b, r, col));
                cell(
                    &pre,
                    &c_prev,
                    &mut sc.gates[go..go + g],
                    &mut sc.c[ho..ho + hd],
                    &mut sc.h[ho..ho + hd],
                );
            }
        }
    }
    sc
}

/// Skew `is` (`d.c = 4h`), scan the skewed columns, unskew the states.
pub fn diag_scan(is: &[f64], d: Dims, w_ss: &[f64]) -> ScanStates {
    let ds = Dims {
        w: skew_width(d),
        ..d
    };
    let sc = diag_scan_skewed(&skew(is, d), ds, d.w, w_ss);
    let hdim = d.with_c(d.c / 4);
    ScanStates {
        h: unskew(&sc.h, hdim),
        c: unskew(&sc.c, hdim),
        gates: unskew(&sc.gates, d),
    }
}
