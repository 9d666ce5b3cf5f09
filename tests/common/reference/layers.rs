//! The Row LSTM and Diagonal BiLSTM layers (MODELS.md, "Row LSTM layer", "Diagonal BiLSTM
//! layer") from the references of the convolution, the scans and the maps: input-to-state
//! convolution (mask B, `out_block = h`), the recurrence, and the 1x1 mask-B residual
//! projection h -> 2h added to the input.

use pixelrnn::backend::Mask;

use super::conv::ConvCase;
use super::lstm::{diag_scan, row_scan};
use super::maps::{mirror, shift_down};
use super::Dims;

/// The parameters of a Row LSTM layer in the order [`row_lstm`] takes them (that of
/// `RowLstm::params_mut`).
pub const ROW_PARAMS: [&str; 5] = [
    "is_conv.weight",
    "is_conv.bias",
    "ss_conv.weight",
    "res_conv.weight",
    "res_conv.bias",
];

/// The parameters of a Diagonal BiLSTM layer in the order [`diag_bilstm`] takes them (that of
/// `DiagBiLstm::params_mut`).
pub const DIAG_PARAMS: [&str; 8] = [
    "left.is_conv.weight",
    "left.is_conv.bias",
    "left.ss_conv.weight",
    "right.is_conv.weight",
    "right.is_conv.bias",
    "right.ss_conv.weight",
    "res_conv.weight",
    "res_conv.bias",
];

/// A mask-B convolution of the `d`-shaped map `x` to `cout` features with a `kh x kw` kernel.
/// Output feature `o` is in group `(o mod out_block) mod C`; input feature `i` in `i mod C`.
fn conv(
    x: &[f64],
    d: Dims,
    w: &[f64],
    bias: &[f64],
    (cout, kh, kw): (usize, usize, usize),
    groups: usize,
    out_block: usize,
) -> Vec<f64> {
    assert_eq!(w.len(), cout * d.c * kh * kw);
    ConvCase::new("", (kh, kw), Mask::B, groups, (d.c, cout), (d.n, d.h, d.w))
        .out_block(out_block)
        .forward(x, w, bias)
}

/// Element-wise sum (the residual connection).
pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// The Row LSTM layer; `p` in the order of `RowLstm::params_mut` (checked by name):
/// is_conv weight `[4h, 2h, 1, k]` and bias, state weight `[4h, h, 1, k]`, res_conv weight
/// `[2h, h, 1, 1]` and bias.
pub fn row_lstm(
    p: &[Vec<f64>],
    x: &[f64],
    d: Dims,
    hidden: usize,
    k: usize,
    groups: usize,
) -> Vec<f64> {
    let (h2, g4) = (2 * hidden, 4 * hidden);
    assert_eq!(d.c, h2);
    let is = conv(x, d, &p[0], &p[1], (g4, 1, k), groups, hidden);
    let sc = row_scan(&is, d.with_c(g4), &p[2], k);
    let r = conv(
        &sc.h,
        d.with_c(hidden),
        &p[3],
        &p[4],
        (h2, 1, 1),
        groups,
        h2,
    );
    add(x, &r)
}

/// The Diagonal BiLSTM layer; `p` in the order of `DiagBiLstm::params_mut` (checked by name):
/// left is_conv weight `[4h, 2h, 1, 1]`, bias, state weight `[4h, h, 2, 1]`; the same for the
/// right direction; res_conv weight `[2h, h, 1, 1]` and bias.
pub fn diag_bilstm(p: &[Vec<f64>], x: &[f64], d: Dims, hidden: usize, groups: usize) -> Vec<f64> {
    let (h2, g4) = (2 * hidden, 4 * hidden);
    assert_eq!(d.c, h2);
    let (dg, dh) = (d.with_c(g4), d.with_c(hidden));
    let is_l = conv(x, d, &p[0], &p[1], (g4, 1, 1), groups, hidden);
    let h_l = diag_scan(&is_l, dg, &p[2]).h;
    let xm = mirror(x, d);
    let is_r = conv(&xm, d, &p[3], &p[4], (g4, 1, 1), groups, hidden);
    let h_r = diag_scan(&is_r, dg, &p[5]).h;
    let h_r = shift_down(&mirror(&h_r, dh), dh);
    let h_sum = add(&h_l, &h_r);
    let r = conv(&h_sum, dh, &p[6], &p[7], (h2, 1, 1), groups, h2);
    add(x, &r)
}
