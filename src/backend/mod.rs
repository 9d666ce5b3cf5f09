//! The [`Backend`] trait: every op the models need, implemented once per device.
//!
//! Layers (`nn/`) and models (`models/`) are written against this trait only. The CPU backend
//! (`cpu/`) is the reference for every op and a fast engine in its own right; a CUDA backend
//! implements the same trait with the kernels in `kernels/`.

mod conv_spec;
pub mod cpu;

pub use conv_spec::{ConvSpec, Mask};

use crate::error::Result;
use crate::tensor::Tensor;

/// Gradients of a convolution's backward pass.
pub struct ConvGrads<B: Backend> {
    /// Gradient w.r.t. the input, when asked for.
    pub dx: Option<Tensor<B>>,
    /// Gradient w.r.t. the full `[out, in, kh, kw]` weight (zero on masked taps).
    pub dw: Tensor<B>,
    /// Gradient w.r.t. the bias `[out]`.
    pub db: Tensor<B>,
}

/// Hyper-parameters of one RMSProp update (Tieleman & Hinton; as in the paper).
#[derive(Clone, Copy, Debug)]
pub struct RmsPropStep {
    /// Learning rate of this step (after the schedule).
    pub lr: f32,
    /// Decay of the running mean of squared gradients.
    pub decay: f32,
    /// Added inside the square root.
    pub eps: f32,
}

/// Hyper-parameters of one Adam update (Kingma & Ba).
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    /// Learning rate of this step (after the schedule).
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub eps: f32,
    /// 1 - beta1^t for this step t (bias correction).
    pub bias_correction1: f32,
    /// 1 - beta2^t for this step t.
    pub bias_correction2: f32,
}

/// A compute device: buffers plus every op the models use.
///
/// Shapes are checked by the implementations; ops return fresh tensors unless their name ends
/// in `_inplace`.
pub trait Backend: Clone + Send + Sync + Sized + 'static {
    /// A buffer of `f32` on this device.
    type Storage: Clone + Send + Sync;

    /// Human-readable device name ("cpu (2 threads)", "cuda:0 NVIDIA H200").
    fn name(&self) -> String;
    /// A zero-filled buffer of `len` elements.
    fn alloc_zeros(&self, len: usize) -> Result<Self::Storage>;
    /// Copies host data into a new buffer.
    fn upload(&self, data: &[f32]) -> Result<Self::Storage>;
    /// Copies a buffer to the host.
    fn download(&self, data: &Self::Storage) -> Result<Vec<f32>>;

    /// Masked (or plain) 2-D convolution, stride 1, "same" zero padding.
    /// `x`: `[n, h, w, cin]`, `w`: `[cout, cin, kh, kw]`, `b`: `[cout]` -> `[n, h, w, cout]`.
    /// Taps that the mask zeroes structurally are skipped, not multiplied by zero.
    fn masked_conv2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
    ) -> Result<Tensor<Self>>;

    /// Backward of [`Backend::masked_conv2d_forward`] given the output gradient `dy`.
    fn masked_conv2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        spec: &ConvSpec,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>>;

    /// `max(x, 0)` elementwise.
    fn relu_forward(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `dy * (y > 0)`, where `y` is the ReLU's output.
    fn relu_backward(&self, y: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `a + b` elementwise (residual connections).
    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// 256-way softmax negative log-likelihood, fused with its gradient.
    /// `logits`: `[.., 256 * c]` with the logit of value `k` for channel `ch` at `k * c + ch`;
    /// `targets`: `[.., c]` holding 0..255. Returns (nll `[.., c]` in nats,
    /// `dlogits = (softmax - onehot) * grad_scale`).
    fn softmax_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// Bernoulli negative log-likelihood of binary `targets` under `logits` (same shape),
    /// fused with its gradient `(sigmoid(l) - t) * grad_scale`.
    fn bernoulli_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// Sum of all elements, accumulated in f64.
    fn sum(&self, x: &Tensor<Self>) -> Result<f64>;
    /// Sum of squares of all elements, accumulated in f64 (global-norm clipping).
    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64>;
    /// `x *= s` in place.
    fn scale_inplace(&self, x: &mut Tensor<Self>, s: f32) -> Result<()>;

    /// One RMSProp update of `param` from `grad`, with running mean square `ms`.
    fn rmsprop_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        ms: &mut Tensor<Self>,
        step: RmsPropStep,
    ) -> Result<()>;

    /// One Adam update of `param` from `grad`, with moments `m` and `v`.
    fn adam_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        step: AdamStep,
    ) -> Result<()>;
}
