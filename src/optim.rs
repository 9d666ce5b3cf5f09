//! Optimizers (RMSProp, as in the paper, and Adam), global-norm clipping and the learning-rate
//! schedule. Defaults are documented on [`OptimConfig::default`] and in the README.

use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, Backend, RmsPropStep};
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::tensor::Tensor;

/// Update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum OptimizerKind {
    /// RMSProp (Tieleman & Hinton), the paper's optimizer.
    #[serde(rename = "rmsprop")]
    #[value(name = "rmsprop")]
    RmsProp,
    /// Adam (Kingma & Ba).
    #[serde(rename = "adam")]
    #[value(name = "adam")]
    Adam,
}

/// Learning-rate schedule over the run's total steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Schedule {
    /// `lr` throughout (after warm-up).
    #[serde(rename = "constant")]
    #[value(name = "constant")]
    Constant,
    /// Half-cosine from `lr` to 0 at the last step (after warm-up).
    #[serde(rename = "cosine")]
    #[value(name = "cosine")]
    Cosine,
}

/// Optimizer hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Peak learning rate.
    pub lr: f32,
    /// RMSProp: decay of the mean square.
    pub rmsprop_decay: f32,
    /// Adam: first-moment decay.
    pub beta1: f32,
    /// Adam: second-moment decay.
    pub beta2: f32,
    /// Numerical floor (RMSProp: inside the square root; Adam: added to it).
    pub eps: f32,
    /// Rescale the gradients when their global L2 norm exceeds this.
    pub clip: Option<f32>,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Linear warm-up from 0 over this many steps.
    pub warmup_steps: u64,
    /// Steps of the whole run (the cosine schedule ends there).
    pub total_steps: u64,
}

impl Default for OptimConfig {
    /// Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-8, no clipping, constant schedule, no warm-up.
    /// RMSProp, when chosen: decay 0.95, eps 1e-8 inside the root.
    fn default() -> Self {
        OptimConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            rmsprop_decay: 0.95,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            total_steps: 1,
        }
    }
}

impl OptimConfig {
    /// Rejects learning rates, clipping thresholds and decays that cannot train.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{name} must be a positive number, got {v}"
                )))
            }
        };
        positive("--lr", self.lr)?;
        positive("eps", self.eps)?;
        if let Some(c) = self.clip {
            positive("--clip", c)?;
        }
        for (name, v) in [
            ("rmsprop decay", self.rmsprop_decay),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::Config(format!("{name} must be in [0, 1), got {v}")));
            }
        }
        Ok(())
    }

    /// Learning rate for 0-based `step`.
    pub fn lr_at(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
                (self.lr as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
            }
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f32,
}

/// Optimizer state: the step count and one or two moment tensors per parameter.
pub struct Optimizer<B: Backend> {
    /// Hyper-parameters.
    pub config: OptimConfig,
    /// Updates applied so far.
    pub step: u64,
    /// Per parameter, in the model's parameter order: (name, moments).
    state: Vec<(String, Vec<Tensor<B>>)>,
}

impl<B: Backend> Optimizer<B> {
    /// A fresh optimizer (moments start at zero).
    pub fn new(config: OptimConfig) -> Self {
        Optimizer {
            config,
            step: 0,
            state: Vec::new(),
        }
    }

    /// Names of the moment tensors kept per parameter.
    fn moment_names(&self) -> &'static [&'static str] {
        match self.config.kind {
            OptimizerKind::RmsProp => &["rmsprop_ms"],
            OptimizerKind::Adam => &["adam_m", "adam_v"],
        }
    }

    /// Applies one update to `params` from their stored gradients.
    pub fn step(&mut self, backend: &B, mut params: Vec<&mut Param<B>>) -> Result<StepStats> {
        if self.state.is_empty() {
            for p in &params {
                let moments = self
                    .moment_names()
                    .iter()
                    .map(|_| Tensor::zeros(backend, &p.value.shape))
                    .collect::<Result<Vec<_>>>()?;
                self.state.push((p.name.clone(), moments));
            }
        }
        if self.state.len() != params.len() {
            return Err(Error::Config(format!(
                "optimizer state has {} parameters, the model {}",
                self.state.len(),
                params.len()
            )));
        }
        // One reduction over every gradient (one host synchronisation on CUDA).
        let grads: Vec<&Tensor<B>> = params.iter().map(|p| &p.grad).collect();
        let grad_norm = backend.sum_squares_all(&grads)?.sqrt();
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite {
                what: "gradient",
                step: self.step,
            });
        }
        // Clipping folds into the update: its kernels scale each gradient first (in place,
        // the same floats as a separate scale), one launch for every parameter on CUDA.
        let grad_scale = match self.config.clip {
            Some(max) if grad_norm > max as f64 => (max as f64 / grad_norm) as f32,
            _ => 1.0,
        };
        let lr = self.config.lr_at(self.step);
        let t = (self.step + 1) as i32;
        debug_assert!(params
            .iter()
            .zip(&self.state)
            .all(|(p, (n, _))| &p.name == n));
        let (mut values, mut grads): (Vec<_>, Vec<_>) = params
            .iter_mut()
            .map(|p| {
                let Param { value, grad, .. } = &mut **p;
                (value, grad)
            })
            .unzip();
        let mut moments: Vec<&mut [Tensor<B>]> = self
            .state
            .iter_mut()
            .map(|(_, m)| m.as_mut_slice())
            .collect();
        match self.config.kind {
            OptimizerKind::RmsProp => {
                let mut ms: Vec<&mut Tensor<B>> = moments.iter_mut().map(|m| &mut m[0]).collect();
                backend.rmsprop_update_all(
                    &mut values,
                    &mut grads,
                    &mut ms,
                    grad_scale,
                    RmsPropStep {
                        lr,
                        decay: self.config.rmsprop_decay,
                        eps: self.config.eps,
                    },
                )?
            }
            OptimizerKind::Adam => {
                let (mut m, mut v): (Vec<&mut Tensor<B>>, Vec<&mut Tensor<B>>) = moments
                    .iter_mut()
                    .map(|mv| {
                        let (m, v) = mv.split_at_mut(1);
                        (&mut m[0], &mut v[0])
                    })
                    .unzip();
                backend.adam_update_all(
                    &mut values,
                    &mut grads,
                    &mut m,
                    &mut v,
                    grad_scale,
                    AdamStep {
                        lr,
                        beta1: self.config.beta1,
                        beta2: self.config.beta2,
                        eps: self.config.eps,
                        bias_correction1: 1.0 - self.config.beta1.powi(t),
                        bias_correction2: 1.0 - self.config.beta2.powi(t),
                    },
                )?
            }
        }
        self.step += 1;
        Ok(StepStats { grad_norm, lr })
    }

    /// The moment tensors under checkpoint names `{param}.{moment}` (empty before step 1).
    pub fn named_state(&self) -> Vec<(String, &Tensor<B>)> {
        let names = self.moment_names();
        self.state
            .iter()
            .flat_map(|(p, ms)| {
                ms.iter()
                    .zip(names.iter())
                    .map(move |(t, m)| (format!("{p}.{m}"), t))
            })
            .collect()
    }

    /// Restores moments saved by [`Optimizer::named_state`], for parameters `params` (name and
    /// shape); `lookup` returns a saved tensor by name.
    pub fn restore(
        &mut self,
        params: &[(String, Vec<usize>)],
        mut lookup: impl FnMut(&str, &[usize]) -> Result<Tensor<B>>,
    ) -> Result<()> {
        let names = self.moment_names();
        let mut state = Vec::with_capacity(params.len());
        for (p, shape) in params {
            let moments = names
                .iter()
                .map(|m| lookup(&format!("{p}.{m}"), shape))
                .collect::<Result<Vec<_>>>()?;
            state.push((p.clone(), moments));
        }
        self.state = state;
        Ok(())
    }
}
