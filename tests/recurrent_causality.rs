//! Causality and receptive fields of the Row LSTM and the Diagonal BiLSTM (MODELS.md, "What
//! must be tested"): perturbing an input sub-pixel changes no output at or before it; the
//! positions with a nonzero input gradient of one output are exactly those the spec says: every
//! earlier position for the Diagonal BiLSTM layer, every earlier one but the last pixel of the
//! previous row for its model, and the triangle for the Row LSTM model. Every parameter is
//! randomised, masked taps included.
//!
//! Run with `cargo test --release --test recurrent_causality`.

mod common;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Recurrence;
use pixelrnn::models::{Model, ModelConfig, ModelKind};

use common::helpers::{host, nonzero, rng, t, uniform};
use common::layers::TestLayer;
use common::models::{assert_causal, random_input, random_model};
use common::recurrent::RECS;
use common::reference::Dims;

/// MODELS.md, "What must be tested": perturb input sub-pixel p; no output sub-pixel at or before
/// p changes (exactly); some later one does.
fn check_causality(cfg: ModelConfig, rec: Recurrence) {
    let mut model = random_model(&cfg, 60);
    model.recurrence = rec;
    let x = random_input(1, &cfg, 61);
    let what = format!("{:?} C={} {rec:?}", cfg.kind, cfg.channels);
    assert_causal(&model, &x, &what);
}

#[test]
fn causal_row_lstm_grey() {
    check_causality(
        ModelConfig::plain(ModelKind::RowLstm, (6, 7, 1), false, (2, 4, 8)),
        Recurrence::Fused,
    );
}

#[test]
fn causal_row_lstm_rgb() {
    check_causality(
        ModelConfig::plain(ModelKind::RowLstm, (5, 6, 3), false, (2, 4, 8)),
        Recurrence::Unfused,
    );
}

#[test]
fn causal_diag_bilstm_grey() {
    check_causality(
        ModelConfig::plain(ModelKind::DiagBiLstm, (6, 7, 1), false, (2, 4, 8)),
        Recurrence::Unfused,
    );
}

#[test]
fn causal_diag_bilstm_rgb() {
    check_causality(
        ModelConfig::plain(ModelKind::DiagBiLstm, (5, 6, 3), false, (2, 4, 8)),
        Recurrence::Fused,
    );
}

#[test]
fn causal_diag_bilstm_binary() {
    check_causality(
        ModelConfig::plain(ModelKind::DiagBiLstm, (5, 5, 1), true, (1, 3, 8)),
        Recurrence::Fused,
    );
}

// ---------------------------------------------------------------------------------------------
// Receptive fields: the positions with a nonzero input gradient of one output
// ---------------------------------------------------------------------------------------------

/// For a binary C = 1 model: which input positions have a nonzero gradient of the logit at
/// `(oy, ox)` of image 0.
fn model_field(model: &mut Model<CpuBackend>, x: &[f32], oy: usize, ox: usize) -> Vec<bool> {
    let b = CpuBackend::new();
    let cfg = model.config.clone();
    assert!(cfg.binary && cfg.channels == 1);
    let shape = [1, cfg.height, cfg.width, 1];
    let (logits, cache) = model.forward(&b, &t(&b, &shape, x)).unwrap();
    let mut d = vec![0.0f32; logits.numel()];
    d[oy * cfg.width + ox] = 1.0;
    let dlt = t(&b, &logits.shape.clone(), &d);
    let dx = host(&b, &model.backward(&b, cache, &dlt, true).unwrap().unwrap());
    dx.iter().map(|&g| g != 0.0).collect()
}

fn compare_fields(what: &str, got: &[bool], want: &[bool], w: usize) {
    let show = |s: &[bool]| -> String {
        s.chunks(w)
            .map(|row| {
                row.iter()
                    .map(|&v| if v { '#' } else { '.' })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        got,
        want,
        "{what}: receptive field\ngot:\n{}\nwant:\n{}",
        show(got),
        show(want)
    );
}

#[test]
fn diag_bilstm_layer_sees_every_position_up_to_its_own() {
    let (h, w) = (6, 7);
    // C = 1: position level.
    {
        let mut layer = TestLayer::diag(3, 1, 400);
        let d = Dims::new(1, h, w, 6);
        let x = uniform(&mut rng(401), d.len(), -1.0, 1.0);
        for (oy, ox) in [(0, 0), (0, 4), (3, 0), (3, 3), (2, 6), (5, 6), (5, 1)] {
            let mut dy = vec![0.0f32; d.len()];
            dy[d.at(0, oy, ox)..d.at(0, oy, ox) + d.c].copy_from_slice(&nonzero(
                &mut rng(402),
                d.c,
                1.0,
            ));
            for rec in RECS {
                let dx = layer.run(&x, d, Some(&dy), rec).dx;
                let got: Vec<bool> = dx
                    .chunks(d.c)
                    .map(|v| v.iter().any(|&g| g != 0.0))
                    .collect();
                let want: Vec<bool> = (0..h * w).map(|p| (p / w, p % w) <= (oy, ox)).collect();
                compare_fields(
                    &format!("diag layer C=1 output ({oy},{ox}) {rec:?}"),
                    &got,
                    &want,
                    w,
                );
            }
        }
    }
    // C = 3, h = 4 (features of the 8-wide map in groups 0,1,2,0,1,2,0,1): an output feature of
    // group g sees every feature of every earlier position and, at its own position, exactly
    // the features of groups <= g (mask B).
    let mut layer = TestLayer::diag(4, 3, 410);
    let d = Dims::new(1, h, w, 8);
    let x = uniform(&mut rng(411), d.len(), -1.0, 1.0);
    for (oy, ox) in [(0, 0), (3, 3), (5, 6)] {
        for g in 0..3 {
            let mut dy = vec![0.0f32; d.len()];
            for f in (g..d.c).step_by(3) {
                dy[d.at(0, oy, ox) + f] = 1.0 + f as f32 * 0.1;
            }
            for rec in RECS {
                let dx = layer.run(&x, d, Some(&dy), rec).dx;
                for p in 0..h * w {
                    for f in 0..d.c {
                        let pos = (p / w, p % w);
                        let want = pos < (oy, ox) || (pos == (oy, ox) && f % 3 <= g);
                        assert_eq!(
                            dx[p * d.c + f] != 0.0,
                            want,
                            "diag layer C=3: output ({oy},{ox}) group {g} {rec:?}, input {pos:?} feature {f}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn diag_bilstm_model_misses_only_the_last_pixel_of_the_previous_row() {
    let (h, w) = (7, 9);
    let cfg = ModelConfig::plain(ModelKind::DiagBiLstm, (h, w, 1), true, (2, 4, 32));
    let mut model = random_model(&cfg, 70);
    let x = random_input(1, &cfg, 71);
    let mut missed_seen = 0;
    for (oy, ox) in [
        (0, 3),
        (1, 0),
        (3, 4),
        (4, 4),
        (4, 5),
        (4, 8),
        (6, 2),
        (6, 7),
        (2, 8),
    ] {
        for rec in RECS {
            model.recurrence = rec;
            let got = model_field(&mut model, &x, oy, ox);
            // MODELS.md: every input strictly before (i, j) except (i-1, W-1) when j < W - 4.
            let want: Vec<bool> = (0..h * w)
                .map(|p| {
                    let (y, xx) = (p / w, p % w);
                    let missed = oy >= 1 && (y, xx) == (oy - 1, w - 1) && ox < w - 4;
                    (y, xx) < (oy, ox) && !missed
                })
                .collect();
            if oy >= 1 && ox < w - 4 {
                missed_seen += 1;
            }
            compare_fields(
                &format!("diag model output ({oy},{ox}) {rec:?}"),
                &got,
                &want,
                w,
            );
        }
    }
    assert!(missed_seen > 0);
}

/// The Row LSTM model's receptive field by propagating dependency sets through the layers as
/// MODELS.md describes them (C = 1, so every mask-B centre is open):
/// - 7x7 mask A: rows i-3..i-1 at columns j-3..j+3, row i at columns j-3..j-1;
/// - input-to-state 1xk mask B: the layer input at (i, j-k/2..=j);
/// - state: hidden state of row i-1 at columns j-k/2..=j+k/2 and the cell at (i-1, j);
/// - residual: the layer's output also depends on its input at (i, j); the head is 1x1.
fn row_lstm_expected_fields(h: usize, w: usize, layers: usize, k: usize) -> Vec<Vec<bool>> {
    let p = h * w;
    let inside = |y: isize, x: isize| y >= 0 && x >= 0 && y < h as isize && x < w as isize;
    let idx = |y: isize, x: isize| y as usize * w + x as usize;
    let union = |a: &mut Vec<bool>, b: &[bool]| {
        for (x, &y) in a.iter_mut().zip(b) {
            *x |= y;
        }
    };
    let mut dep: Vec<Vec<bool>> = (0..p)
        .map(|q| {
            let (i, j) = ((q / w) as isize, (q % w) as isize);
            let mut s = vec![false; p];
            for dy in -3..=0isize {
                for dx in -3..=3isize {
                    if (dy < 0 || dx < 0) && inside(i + dy, j + dx) {
                        s[idx(i + dy, j + dx)] = true;
                    }
                }
            }
            s
        })
        .collect();
    let r = (k / 2) as isize;
    for _ in 0..layers {
        let mut hs: Vec<Vec<bool>> = vec![vec![false; p]; p];
        for q in 0..p {
            let (i, j) = ((q / w) as isize, (q % w) as isize);
            let mut s = vec![false; p];
            for jj in j - r..=j {
                if inside(i, jj) {
                    union(&mut s, &dep[idx(i, jj)]);
                }
            }
            for jj in j - r..=j + r {
                if inside(i - 1, jj) {
                    let prev = hs[idx(i - 1, jj)].clone();
                    union(&mut s, &prev);
                }
            }
            hs[q] = s;
        }
        for q in 0..p {
            let hq = hs[q].clone();
            union(&mut dep[q], &hq);
        }
    }
    dep
}

#[test]
fn row_lstm_model_receptive_field_is_the_triangle() {
    for (k, layers) in [(3usize, 2usize), (5, 1)] {
        let (h, w) = (8, 12);
        let mut cfg = ModelConfig::plain(ModelKind::RowLstm, (h, w, 1), true, (layers, 4, 32));
        cfg.row_kernel = k;
        let mut model = random_model(&cfg, 80 + k as u64);
        let x = random_input(1, &cfg, 81);
        let fields = row_lstm_expected_fields(h, w, layers, k);
        for (oy, ox) in [(0, 5), (1, 0), (4, 4), (7, 2), (7, 11), (5, 9), (6, 0)] {
            let want = &fields[oy * w + ox];
            for rec in RECS {
                model.recurrence = rec;
                let got = model_field(&mut model, &x, oy, ox);
                compare_fields(
                    &format!("row model k={k} L={layers} output ({oy},{ox}) {rec:?}"),
                    &got,
                    want,
                    w,
                );
            }
            // Causal, and for an output low in the image, not the whole past: the triangle
            // misses the far right of the rows just above.
            for (p, &v) in want.iter().enumerate() {
                assert!(
                    !v || (p / w, p % w) < (oy, ox),
                    "expected field is not causal"
                );
            }
        }
        let (oy, ox) = (7, 2);
        let want = &fields[oy * w + ox];
        assert!(
            !want[(oy - 1) * w + w - 1],
            "the row above's last pixel should be outside the triangle"
        );
        let missed = (0..oy * w + ox).filter(|&p| !want[p]).count();
        assert!(missed > 0, "Row LSTM should not see the whole past");
    }
}
