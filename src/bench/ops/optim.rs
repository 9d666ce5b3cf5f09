//! The optimizers' updates on a parameter vector of the config's Row LSTM's size (about the
//! models' size): RMSProp and Adam, in place.

use super::super::case::{random, HostTensor, OpCase};
use super::super::BenchConfig;
use crate::backend::cpu::CpuBackend;
use crate::backend::{AdamStep, Backend, RmsPropStep};
use crate::error::Result;
use crate::models::{Model, ModelKind};

const RMSPROP: RmsPropStep = RmsPropStep {
    lr: 1e-3,
    decay: 0.95,
    eps: 1e-4,
};

const ADAM: AdamStep = AdamStep {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    bias_correction1: 0.1,
    bias_correction2: 0.001,
};

/// A second-moment estimate: [`random`] made positive.
fn positive(len: usize, seed: u64) -> HostTensor {
    let mut t = random(&[len], seed, 1.0);
    t.data.iter_mut().for_each(|x| *x = x.abs() + 1e-3);
    t
}

/// The cases of `cfg`.
pub fn cases<X: Backend>(cfg: &BenchConfig) -> Result<Vec<OpCase<X>>> {
    let params = Model::new(&CpuBackend::new(), cfg.model(ModelKind::RowLstm), 0)?.num_params();
    let pv = [params];
    Ok(vec![
        OpCase::new(
            "rmsprop_update",
            "optim_rmsprop",
            format!("{params} params"),
            move || {
                Ok(vec![
                    random(&pv, 600, 1.0),
                    random(&pv, 601, 0.1),
                    positive(params, 602),
                ])
            },
            |be: &X, a| {
                let (p, rest) = a.t.split_at_mut(1);
                let (g, ms) = rest.split_at_mut(1);
                be.rmsprop_update(&mut p[0], &g[0], &mut ms[0], RMSPROP)?;
                Ok(Vec::new())
            },
        )
        .updates(&[0, 2])
        // ms = d ms + (1-d) g^2, p -= lr g / sqrt(ms + eps): 8 FLOPs per element.
        .flops(8.0 * params as f64)
        // param, grad, ms read; param, ms written
        .bytes(5 * params),
        OpCase::new(
            "adam_update",
            "optim_adam",
            format!("{params} params"),
            move || {
                Ok(vec![
                    random(&pv, 610, 1.0),
                    random(&pv, 611, 0.1),
                    random(&pv, 612, 0.01),
                    positive(params, 613),
                ])
            },
            |be: &X, a| {
                let (p, rest) = a.t.split_at_mut(1);
                let (g, mv) = rest.split_at_mut(1);
                let (m, v) = mv.split_at_mut(1);
                be.adam_update(&mut p[0], &g[0], &mut m[0], &mut v[0], ADAM)?;
                Ok(Vec::new())
            },
        )
        .updates(&[0, 2, 3])
        // Two moment updates, bias corrections, sqrt, divide: 14 FLOPs per element.
        .flops(14.0 * params as f64)
        // param, grad, m, v read; param, m, v written
        .bytes(7 * params),
    ])
}
