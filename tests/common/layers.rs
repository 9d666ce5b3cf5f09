//! The Row LSTM and Diagonal BiLSTM layers under test, every parameter randomised (masked
//! taps included), each with its float64 reference (`reference::layers`).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Recurrence;
use pixelrnn::nn::{DiagBiLstm, Param, RowLstm};

use super::helpers::{f64s, host, rng, t};
use super::models::randomize;
use super::reference::layers::{self, DIAG_PARAMS, ROW_PARAMS};
use super::reference::Dims;

/// Parameter values as float64, after checking their names follow `suffixes` (the order the
/// references take them in).
pub fn params_f64(
    params: Vec<&mut Param<CpuBackend>>,
    prefix: &str,
    suffixes: &[&str],
) -> Vec<Vec<f64>> {
    let b = CpuBackend::new();
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let want: Vec<String> = suffixes.iter().map(|s| format!("{prefix}.{s}")).collect();
    assert_eq!(names, want, "parameter order");
    params.iter().map(|p| f64s(&host(&b, &p.value))).collect()
}

/// A layer under test and its reference.
pub enum TestLayer {
    Row {
        layer: Box<RowLstm<CpuBackend>>,
        hidden: usize,
        k: usize,
        groups: usize,
    },
    Diag {
        layer: Box<DiagBiLstm<CpuBackend>>,
        hidden: usize,
        groups: usize,
    },
}

/// What one forward (and backward, when `dy` is given) of a layer produced.
pub struct LayerRun {
    pub y: Vec<f32>,
    pub dx: Vec<f32>,
    pub grads: Vec<Vec<f32>>,
}

impl TestLayer {
    /// A Row LSTM layer of `hidden` units, state kernel width `k`, randomised.
    pub fn row(hidden: usize, k: usize, groups: usize, seed: u64) -> Self {
        let b = CpuBackend::new();
        let mut layer =
            Box::new(RowLstm::new(&b, "layer", hidden, k, groups, &mut rng(seed)).unwrap());
        randomize(layer.params_mut(), seed + 1, 0.5);
        TestLayer::Row {
            layer,
            hidden,
            k,
            groups,
        }
    }

    /// A Diagonal BiLSTM layer of `hidden` units, randomised.
    pub fn diag(hidden: usize, groups: usize, seed: u64) -> Self {
        let b = CpuBackend::new();
        let mut layer =
            Box::new(DiagBiLstm::new(&b, "layer", hidden, groups, &mut rng(seed)).unwrap());
        randomize(layer.params_mut(), seed + 1, 0.5);
        TestLayer::Diag {
            layer,
            hidden,
            groups,
        }
    }

    /// The layer's parameters, in its own order.
    pub fn params(&mut self) -> Vec<&mut Param<CpuBackend>> {
        match self {
            TestLayer::Row { layer, .. } => layer.params_mut(),
            TestLayer::Diag { layer, .. } => layer.params_mut(),
        }
    }

    /// The parameter values as float64, in the order the reference takes them.
    pub fn params_f64(&mut self) -> Vec<Vec<f64>> {
        let suffixes: &[&str] = match self {
            TestLayer::Row { .. } => &ROW_PARAMS,
            TestLayer::Diag { .. } => &DIAG_PARAMS,
        };
        params_f64(self.params(), "layer", suffixes)
    }

    /// The float64 reference of the layer's forward for parameters `p` and input `x`.
    pub fn reference(&self, p: &[Vec<f64>], x: &[f64], d: Dims) -> Vec<f64> {
        match *self {
            TestLayer::Row {
                hidden, k, groups, ..
            } => layers::row_lstm(p, x, d, hidden, k, groups),
            TestLayer::Diag { hidden, groups, .. } => layers::diag_bilstm(p, x, d, hidden, groups),
        }
    }

    /// One forward, and a backward of `dy` when given, with recurrence `rec`.
    pub fn run(&mut self, x: &[f32], d: Dims, dy: Option<&[f32]>, rec: Recurrence) -> LayerRun {
        let b = CpuBackend::new();
        let xt = t(&b, &d.shape(), x);
        let (y, dx) = match self {
            TestLayer::Row { layer, .. } => {
                let (y, cache) = layer.forward(&b, &xt, rec).unwrap();
                let dx = dy.map(|dy| {
                    let dyt = t(&b, &d.shape(), dy);
                    host(&b, &layer.backward(&b, cache, &dyt, rec).unwrap())
                });
                (host(&b, &y), dx)
            }
            TestLayer::Diag { layer, .. } => {
                let (y, cache) = layer.forward(&b, &xt, rec).unwrap();
                let dx = dy.map(|dy| {
                    let dyt = t(&b, &d.shape(), dy);
                    host(&b, &layer.backward(&b, cache, &dyt, rec).unwrap())
                });
                (host(&b, &y), dx)
            }
        };
        let grads = if dx.is_some() {
            self.params().iter().map(|p| host(&b, &p.grad)).collect()
        } else {
            Vec::new()
        };
        LayerRun {
            y,
            dx: dx.unwrap_or_default(),
            grads,
        }
    }
}

/// The number of channel groups of a layer under test.
pub fn groups_of(l: &TestLayer) -> usize {
    match l {
        TestLayer::Row { groups, .. } | TestLayer::Diag { groups, .. } => *groups,
    }
}
