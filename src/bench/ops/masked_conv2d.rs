//! `masked_conv2d` forward and backward at the four convolution shapes of the models: the 7x7
//! mask-A input layer, the residual block's 3x3 and 1x1, and the Row LSTM's 1x3
//! input-to-state. Every CUDA version ([`crate::backend::cuda::MaskedConv2d`]) side by side,
//! and the weight gradient alone (`bwd_weight`: dw and db without dx) in every version of its
//! own ([`crate::backend::cuda::MaskedConv2dWeight`]).

use super::super::case::{numel, random, OpCase, Output};
use super::super::timing::Sweep;
use super::super::BenchConfig;
use crate::backend::{Backend, ConvSpec, Mask};

/// Multiply-adds (2 FLOPs each) over the live taps of `spec` at every position.
fn conv_flops(spec: &ConvSpec, positions: f64, cin: usize, cout: usize) -> f64 {
    2.0 * positions * (spec.taps().len() * cin * cout) as f64
}

/// The cases of `cfg`: for each shape, the forward (x, w, b -> y), the backward (x, w, dy
/// -> dx when the layer needs it, dw, db) and the weight gradient alone (x, w, dy -> dw, db).
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Vec<OpCase<X>> {
    let (n, hh, ww, c, h) = (cfg.batch, cfg.height, cfg.width, cfg.channels, cfg.hidden);
    let p = cfg.positions();
    // (kh, kw, mask, cin, cout, need_dx): the input layer's dx is never needed.
    let convs = [
        (7, 7, Mask::A, c, 2 * h, false),
        (3, 3, Mask::B, h, h, true),
        (1, 1, Mask::B, 2 * h, h, true),
        (1, 3, Mask::B, 2 * h, 4 * h, true),
    ];
    let mut out = Vec::new();
    for (i, &(kh, kw, mask, cin, cout, need_dx)) in convs.iter().enumerate() {
        let spec = ConvSpec::new(kh, kw, mask, c, cin, cout);
        let shape = format!("{kh}x{kw} mask {mask:?} {cin}->{cout} on {n}x{hh}x{ww}");
        let seed = 100 + i as u64 * 10;
        let (xs, ws, bs, ys) = (
            [n, hh, ww, cin],
            [cout, cin, kh, kw],
            [cout],
            [n, hh, ww, cout],
        );
        let (x, w, y) = (numel(&xs), numel(&ws), numel(&ys));
        let f = conv_flops(&spec, p, cin, cout);
        out.push(
            OpCase::new(
                "masked_conv2d fwd",
                "masked_conv2d_fwd",
                shape.clone(),
                move || {
                    Ok(vec![
                        random(&xs, seed, 1.0),
                        random(&ws, seed + 1, 0.2),
                        random(&bs, seed + 2, 0.1),
                    ])
                },
                move |be: &X, a| {
                    let t = &a.t;
                    let y = be.masked_conv2d_forward(&t[0], &t[1], &t[2], &spec)?;
                    Ok(vec![Output::T(y)])
                },
            )
            .sweep(Sweep::MaskedConv2d)
            .flops(f)
            // x + w + b + y
            .bytes(x + w + cout + y),
        );
        out.push(
            OpCase::new(
                "masked_conv2d bwd",
                "masked_conv2d_bwd_data",
                shape.clone(),
                move || {
                    Ok(vec![
                        random(&xs, seed, 1.0),
                        random(&ws, seed + 1, 0.2),
                        random(&ys, seed + 3, 1.0),
                    ])
                },
                move |be: &X, a| {
                    let t = &a.t;
                    let g = be.masked_conv2d_backward(&t[0], &t[1], &t[2], &spec, need_dx)?;
                    let mut v: Vec<Output<X>> = g.dx.into_iter().map(Output::T).collect();
                    v.extend([Output::T(g.dw), Output::T(g.db)]);
                    Ok(v)
                },
            )
            .sweep(Sweep::MaskedConv2d)
            // dw and dx are a forward's work each.
            .flops(if need_dx { 2.0 * f } else { f })
            // x + w + dy + (dx) + dw + db
            .bytes(x + w + y + if need_dx { x } else { 0 } + w + cout),
        );
        out.push(
            OpCase::new(
                "masked_conv2d bwd_weight",
                "masked_conv2d_bwd_weight",
                shape,
                move || {
                    Ok(vec![
                        random(&xs, seed, 1.0),
                        random(&ws, seed + 1, 0.2),
                        random(&ys, seed + 3, 1.0),
                    ])
                },
                move |be: &X, a| {
                    let t = &a.t;
                    let g = be.masked_conv2d_backward(&t[0], &t[1], &t[2], &spec, false)?;
                    Ok(vec![Output::T(g.dw), Output::T(g.db)])
                },
            )
            .sweep(Sweep::MaskedConv2dWeight)
            // dw is a forward's work (db's additions are not counted).
            .flops(f)
            // x + w + dy + dw + db: every input once, as for every case (w is an argument that
            // the weight gradient does not read, so this overstates it by one weight).
            .bytes(x + w + y + w + cout),
        );
    }
    out
}
