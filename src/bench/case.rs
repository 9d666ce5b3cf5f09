//! An op case: one backend op at one size, with everything the runner needs to validate it
//! against the CPU backend and then time it (llm.c's dev/cuda files are the model: the op, its
//! reference, its versions; validate, then time).
//!
//! A case is written once, generic over the backend `X` it runs on: the runner plans the cases
//! of a config for the backend it times and again for the CPU backend, the reference, and
//! pairs them up. Its inputs are built only when its rows run (the same deterministic host
//! data for both backends), so planning is cheap enough to count rows and list names.

use super::timing::Sweep;
use crate::backend::{Backend, LstmState, Recurrence};
use crate::error::{Error, Result};
use crate::parity;
use crate::tensor::Tensor;

/// A host tensor: shape and data.
#[derive(Clone, Debug)]
pub struct HostTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f32>,
}

/// The inputs of a case on one backend.
pub struct Args<X: Backend> {
    /// The tensors, in the case's input order (the saved state's three excepted).
    pub t: Vec<Tensor<X>>,
    /// An LSTM backward's saved state, from the case's first three inputs (h, c, gates).
    pub state: Option<LstmState<X>>,
}

/// A result of an op: a tensor or a scalar.
pub enum Output<X: Backend> {
    /// A tensor.
    T(Tensor<X>),
    /// A scalar (a reduction), compared as one element.
    S(f64),
}

/// Builds a case's host inputs.
pub type InputsFn = Box<dyn Fn() -> Result<Vec<HostTensor>>>;

/// Calls a case's op on a backend: its results (in-place ops return none and list the inputs
/// they update in [`OpCase::updates`]).
pub type RunFn<X> = Box<dyn Fn(&X, &mut Args<X>) -> Result<Vec<Output<X>>>>;

/// One op row of the bench (one per kernel variant the backend offers for it).
pub struct OpCase<X: Backend> {
    /// The row name, which `--op` matches: `masked_conv2d fwd`.
    pub name: &'static str,
    /// The stem `<op>_<pass>` of the kernels the row times (`masked_conv2d_fwd`: kernels
    /// `masked_conv2d_fwd_v<N>`).
    pub kernel: &'static str,
    /// The kernel variants the row is timed under, one row each.
    pub sweep: Sweep,
    /// The recurrence of an LSTM case.
    pub recurrence: Option<Recurrence>,
    /// The shapes in words: `7x7 mask A 1->32 on 16x28x28`.
    pub shape: String,
    /// FLOPs per call (`None`: not counted, as for copies).
    pub flops: Option<f64>,
    /// Compulsory bytes per call, 4 per element: every input read once, every output (or
    /// updated input) written once.
    pub bytes: f64,
    /// Tolerance of the check against the CPU ([`crate::parity`]).
    pub tol: f64,
    /// The host inputs, built when the case runs.
    pub inputs: InputsFn,
    /// The first three inputs are an LSTM backward's saved state (h, c, gates).
    pub saved_state: bool,
    /// Indices (into [`Args::t`]) of the inputs an in-place op updates, compared after the call.
    pub updates: &'static [usize],
    /// The op.
    pub run: RunFn<X>,
}

impl<X: Backend> OpCase<X> {
    /// A case of the fp32 tolerance, timed under the default variants, whose inputs and op are
    /// `inputs` and `run`; set its traffic with [`OpCase::bytes`].
    pub fn new(
        name: &'static str,
        kernel: &'static str,
        shape: String,
        inputs: impl Fn() -> Result<Vec<HostTensor>> + 'static,
        run: impl Fn(&X, &mut Args<X>) -> Result<Vec<Output<X>>> + 'static,
    ) -> Self {
        OpCase {
            name,
            kernel,
            sweep: Sweep::None,
            recurrence: None,
            shape,
            flops: None,
            bytes: 0.0,
            tol: parity::FP32_REL_TOL,
            inputs: Box::new(inputs),
            saved_state: false,
            updates: &[],
            run: Box::new(run),
        }
    }

    /// Compulsory traffic: `elements` f32s read or written per call.
    pub fn bytes(mut self, elements: usize) -> Self {
        self.bytes = 4.0 * elements as f64;
        self
    }

    /// FLOPs per call.
    pub fn flops(mut self, flops: f64) -> Self {
        self.flops = Some(flops);
        self
    }

    /// Tolerance of the check.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Times the row under every variant of `sweep`.
    pub fn sweep(mut self, sweep: Sweep) -> Self {
        self.sweep = sweep;
        self
    }

    /// The case runs recurrence `rec`.
    pub fn recurrence(mut self, rec: Recurrence) -> Self {
        self.recurrence = Some(rec);
        self
    }

    /// The first three inputs are the saved state (h, c, gates) of an LSTM backward.
    pub fn saved_state(mut self) -> Self {
        self.saved_state = true;
        self
    }

    /// The op updates inputs `indices` in place.
    pub fn updates(mut self, indices: &'static [usize]) -> Self {
        self.updates = indices;
        self
    }

    /// Uploads `host` to `be` as this case's arguments.
    pub(crate) fn upload(&self, be: &X, host: &[HostTensor]) -> Result<Args<X>> {
        let mut t = host
            .iter()
            .map(|h| Tensor::from_slice(be, &h.shape, &h.data))
            .collect::<Result<Vec<_>>>()?;
        let state = if self.saved_state {
            let rest = t.split_off(t.len().min(3));
            let mut it = std::mem::replace(&mut t, rest).into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(h), Some(c), Some(gates)) => Some(LstmState { h, c, gates }),
                _ => {
                    return Err(Error::Config(format!(
                        "bench {}: an LSTM backward needs h, c and gates first",
                        self.name
                    )))
                }
            }
        } else {
            None
        };
        Ok(Args { t, state })
    }

    /// Runs the op once on `args` and downloads its results, then the inputs it updated.
    pub(crate) fn results(&self, be: &X, args: &mut Args<X>) -> Result<Vec<Vec<f32>>> {
        let outs = (self.run)(be, args)?;
        let mut v = Vec::new();
        for o in outs {
            v.push(match o {
                Output::T(t) => t.to_vec(be)?,
                Output::S(s) => vec![s as f32],
            });
        }
        for &i in self.updates {
            v.push(args.t[i].to_vec(be)?);
        }
        Ok(v)
    }
}

/// The saved LSTM state of `args`, or an error for a case that forgot [`OpCase::saved_state`].
pub fn state<X: Backend>(args: &Args<X>) -> Result<&LstmState<X>> {
    args.state
        .as_ref()
        .ok_or_else(|| Error::Config("bench: an LSTM backward without its state".into()))
}

/// Deterministic values in `[-scale, scale)` (a 64-bit LCG: the same inputs on every run).
pub fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A host tensor of `shape` holding [`values`].
pub fn random(shape: &[usize], seed: u64, scale: f32) -> HostTensor {
    HostTensor {
        shape: shape.to_vec(),
        data: values(shape.iter().product(), seed, scale),
    }
}

/// Elements of `shape`.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}
