//! The device-neutral geometry layer (`backend::geometry`) and the invalid-target contract of
//! the losses on the CPU backend (the CUDA side of both: tests/cuda/geometry.rs).

use pixelrnn::backend::cpu::loss_targets::any_invalid;
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::geometry::{
    ConvGeom, Geometry, HeadGeom, LstmGeom, PackGeom, PositionGeom, Scan, SkewGeom, Targets,
    TransposeGeom,
};
use pixelrnn::backend::{Backend, ConvSpec, LstmState, Mask};
use pixelrnn::tensor::Tensor;

type T = Tensor<CpuBackend>;

fn z(shape: &[usize]) -> T {
    Tensor::zeros(&CpuBackend::new(), shape).unwrap()
}

fn t(shape: &[usize], data: &[f32]) -> T {
    Tensor::from_slice(&CpuBackend::new(), shape, data).unwrap()
}

#[test]
fn conv_geometry_reads_the_sizes_and_rejects_what_does_not_fit() {
    let spec = ConvSpec::new(3, 3, Mask::B, 3, 3, 5);
    let (x, w) = (z(&[2, 4, 6, 3]), z(&[5, 3, 3, 3]));
    let g = ConvGeom::forward("op", &x, &w, &z(&[5]), &spec).unwrap();
    assert_eq!(
        g,
        ConvGeom {
            n: 2,
            h: 4,
            w: 6,
            cin: 3,
            cout: 5
        }
    );
    assert_eq!((g.positions(), g.out_shape()), (48, [2, 4, 6, 5]));
    assert_eq!(
        ConvGeom::backward("op", &x, &w, &z(&[2, 4, 6, 5]), &spec).unwrap(),
        g
    );
    assert!(ConvGeom::forward("op", &x, &w, &z(&[4]), &spec).is_err());
    assert!(ConvGeom::backward("op", &x, &w, &z(&[2, 4, 6, 4]), &spec).is_err());
    assert!(ConvGeom::forward("op", &x, &z(&[5, 2, 3, 3]), &z(&[5]), &spec).is_err());

    let p = PackGeom::new("op", &w, &spec).unwrap();
    assert_eq!(p.packed_shape(), [spec.taps().len() * 3, 5]);
    let packed = z(&p.packed_shape());
    let at = ConvGeom::forward_at("op", &x, &packed, &z(&[5]), &spec, 3, 5).unwrap();
    assert_eq!(at, g);
    assert!(ConvGeom::forward_at("op", &x, &packed, &z(&[5]), &spec, 4, 0).is_err());
    assert!(ConvGeom::forward_at("op", &x, &z(&[3, 5]), &z(&[5]), &spec, 0, 0).is_err());
}

#[test]
fn transpose_geometry_needs_an_even_k_minus_stride() {
    let x = z(&[1, 2, 3, 1]);
    let g = TransposeGeom::forward("op", &x, &z(&[1, 4, 6, 6]), &z(&[4]), 2).unwrap();
    assert_eq!(
        (g.pad(), g.out_shape(), g.out_positions()),
        (2, [1, 4, 6, 4], 24)
    );
    assert!(TransposeGeom::backward("op", &x, &z(&[1, 4, 6, 6]), &z(&[1, 4, 6, 4]), 2).is_ok());
    assert!(TransposeGeom::forward("op", &x, &z(&[1, 4, 5, 5]), &z(&[4]), 2).is_err());
    assert!(TransposeGeom::forward("op", &x, &z(&[1, 4, 6, 6]), &z(&[4]), 0).is_err());
    assert!(TransposeGeom::backward("op", &x, &z(&[1, 4, 6, 6]), &z(&[1, 4, 5, 4]), 2).is_err());
}

#[test]
fn lstm_geometry_reads_the_scan_off_the_state_weight() {
    let is = z(&[2, 3, 5, 8]);
    let row = LstmGeom::forward("op", &is, &z(&[8, 2, 1, 3]), false).unwrap();
    assert_eq!(row.n, 2);
    assert!(matches!(row.geo.scan, Scan::Row { k: 3 }));
    assert_eq!((row.state_shape(), row.positions()), ([2, 3, 5, 2], 30));
    let diag = LstmGeom::forward("op", &is, &z(&[8, 2, 2, 1]), true).unwrap();
    assert!(matches!(diag.geo.scan, Scan::Diagonal));
    assert!(LstmGeom::forward("op", &is, &z(&[8, 2, 1, 2]), false).is_err());
    assert!(LstmGeom::forward("op", &is, &z(&[8, 2, 1, 3]), true).is_err());
    assert!(LstmGeom::forward("op", &z(&[2, 3, 5, 6]), &z(&[8, 2, 2, 1]), true).is_err());

    let state = LstmState {
        h: z(&[2, 3, 5, 2]),
        c: z(&[2, 3, 5, 2]),
        gates: is.clone(),
    };
    let w = z(&[8, 2, 2, 1]);
    assert!(LstmGeom::backward("op", &state, &w, &z(&[2, 3, 5, 2]), true).is_ok());
    assert!(LstmGeom::backward("op", &state, &w, &z(&[2, 3, 5, 3]), true).is_err());

    let (h, c) = (z(&[2, 3, 5, 2]), z(&[2, 3, 5, 2]));
    let at = LstmGeom::at("op", &z(&[2, 8]), &w, &h, &c, true, 2, 4).unwrap();
    assert_eq!(at.state_shape(), [2, 3, 5, 2]);
    assert!(LstmGeom::at("op", &z(&[2, 8]), &w, &h, &c, true, 3, 0).is_err());
    assert!(LstmGeom::at("op", &z(&[2, 4]), &w, &h, &c, true, 0, 0).is_err());
    assert!(LstmGeom::at("op", &z(&[2, 8]), &w, &h, &z(&[2, 3, 5, 1]), true, 0, 0).is_err());
}

#[test]
fn scan_steps_cover_the_image_once() {
    for (height, width) in [(1, 1), (3, 5), (5, 3), (4, 4)] {
        for scan in [Scan::Row { k: 3 }, Scan::Diagonal] {
            let geo = Geometry {
                scan,
                height,
                width,
                hidden: 2,
            };
            let mut seen = vec![0; height * width];
            for s in 0..geo.steps() {
                let positions = geo.step_positions(s);
                assert_eq!(geo.step_len(s), positions.len(), "{scan:?} step {s}");
                assert!(geo.step_len(s) <= geo.max_step_len());
                for (r, j) in positions {
                    seen[r * width + j] += 1;
                }
            }
            assert!(seen.iter().all(|&k| k == 1), "{scan:?} {height}x{width}");
        }
    }
}

#[test]
fn head_position_and_skew_geometry() {
    let g = HeadGeom::loss("op", &z(&[2, 3, 768]), &z(&[2, 3, 3]), Targets::Levels).unwrap();
    assert_eq!((g.rows, g.channels, g.values()), (6, 3, 18));
    assert!(HeadGeom::loss("op", &z(&[2, 768]), &z(&[2, 3]), Targets::Binary).is_err());
    assert!(HeadGeom::sample("op", &z(&[2, 3]), &z(&[2, 3]), true).is_ok());
    assert!(HeadGeom::sample("op", &z(&[]), &z(&[]), true).is_err());

    let x = z(&[2, 3, 4, 5]);
    let p = PositionGeom::write("op", &x, 2, 3, &z(&[2, 5])).unwrap();
    assert_eq!((p.values_shape(), p.i, p.j), ([2, 5], 2, 3));
    assert!(PositionGeom::read("op", &x, 3, 0).is_err());
    assert!(PositionGeom::write("op", &x, 0, 0, &z(&[2, 4])).is_err());

    let s = SkewGeom::skew("op", &z(&[1, 3, 4, 2])).unwrap();
    assert_eq!(s.skewed_shape(), [1, 3, 7, 2]);
    let u = SkewGeom::unskew("op", &z(&s.skewed_shape())).unwrap();
    assert_eq!(u, s);
    assert!(SkewGeom::skew("op", &z(&[1, 3, 0, 2])).is_err());
    assert!(SkewGeom::unskew("op", &z(&[1, 3, 6, 2])).is_err());
}

/// Values no loss admits.
const INVALID: [f32; 7] = [
    -1.0,
    256.0,
    2.5,
    f32::NAN,
    f32::INFINITY,
    -f32::INFINITY,
    1e9,
];

#[test]
fn targets_admit_integers_in_range_only() {
    for kind in [Targets::Levels, Targets::Binary] {
        for v in [0.0, -0.0, 1.0, kind.max()] {
            assert!(kind.admits(v), "{kind:?} {v}");
        }
        for v in INVALID.into_iter().chain([0.5, kind.max() + 1.0]) {
            assert!(!kind.admits(v), "{kind:?} {v}");
        }
    }
    assert!(Targets::Levels.admits(137.0) && !Targets::Binary.admits(2.0));
    assert!(!any_invalid(&[0.0, 1.0, 255.0], Targets::Levels));
    assert!(any_invalid(&[0.0, 1.0, 255.0], Targets::Binary));
}

/// A loss op: (nll, dlogits) from logits and targets.
type Loss = fn(&CpuBackend, &T, &T) -> pixelrnn::error::Result<(T, T)>;

/// On the CPU, an invalid target makes the loss an error with the message both backends
/// share ([`Targets::invalid`]); the CPU twin of the CUDA check agrees.
#[test]
fn invalid_targets_are_an_error_on_the_cpu() {
    let be = CpuBackend::new();
    let (positions, c) = (4, 3);
    for kind in [Targets::Levels, Targets::Binary] {
        let per = kind.logits_per_target();
        let logits = t(
            &[positions, per * c],
            &(0..positions * per * c)
                .map(|i| (i % 7) as f32 * 0.3 - 1.0)
                .collect::<Vec<_>>(),
        );
        let valid: Vec<f32> = (0..positions * c)
            .map(|i| (i as f32 * 37.0) % (kind.max() + 1.0))
            .collect();
        let (op, loss): (_, Loss) = match kind {
            Targets::Levels => ("softmax_nll", |be, l, t| be.softmax_nll(l, t, 1.0)),
            Targets::Binary => ("bernoulli_nll", |be, l, t| be.bernoulli_nll(l, t, 1.0)),
        };
        assert!(!any_invalid(&valid, kind));
        loss(&be, &logits, &t(&[positions, c], &valid)).expect("valid targets");
        for (i, bad) in INVALID.into_iter().enumerate() {
            let mut targets = valid.clone();
            targets[(5 * i) % valid.len()] = bad;
            assert!(any_invalid(&targets, kind));
            let err = loss(&be, &logits, &t(&[positions, c], &targets))
                .expect_err("an invalid target is an error");
            assert_eq!(
                err.to_string(),
                kind.invalid(op).to_string(),
                "{kind:?} {bad}"
            );
        }
    }
    assert_eq!(
        Targets::Levels.invalid("softmax_nll").to_string(),
        "shape error in softmax_nll: targets must be integers in 0..=255"
    );
    assert_eq!(
        Targets::Binary.invalid("bernoulli_nll").to_string(),
        "shape error in bernoulli_nll: targets must be 0 or 1"
    );
}
