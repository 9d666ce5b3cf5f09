//! The [`Backend`] trait: every op the models need, implemented once per device.
//!
//! Layers (`nn/`) and models (`models/`) are written against this trait only. The CPU backend
//! (`cpu/`) is the reference for every op and a fast engine in its own right; a CUDA backend
//! (`cuda/`) implements the same trait with the kernels in `kernels/`. Neither imports from the
//! other: what both need, the shape checks and the scans' geometry, is device-neutral
//! (`geometry/`).

mod conv_spec;
pub mod cpu;
pub mod cuda;
pub mod geometry;
mod precision;

pub use conv_spec::{ConvSpec, Mask};
pub use geometry::skew::{skewed_width, unskewed_width};
pub use precision::{round_bf16, round_tf32, Precision};

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

/// How a backend runs an LSTM recurrence (same numbers, different memory traffic). The one
/// description of the variants, on both backends, is docs/ARCHITECTURE.md, "Recurrence
/// variants".
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum Recurrence {
    /// Per step, one pass: state-to-state product, gates and cell update at once.
    #[default]
    #[serde(rename = "fused")]
    #[value(name = "fused")]
    Fused,
    /// Per step, the state-to-state product into a pre-activation buffer, then a gate pass.
    #[serde(rename = "unfused")]
    #[value(name = "unfused")]
    Unfused,
    /// One pass over the whole scan with the state weights on chip (the CPU runs it as fused).
    #[serde(rename = "persistent")]
    #[value(name = "persistent")]
    Persistent,
}

/// What an LSTM recurrence keeps for its backward pass (all NHWC).
pub struct LstmState<B: Backend> {
    /// Hidden states `[n, H, W, h]`.
    pub h: Tensor<B>,
    /// Cell states `[n, H, W, h]`.
    pub c: Tensor<B>,
    /// Activated gates `[n, H, W, 4h]`, blocks `[o, f, i, g]` (sigmoid, sigmoid, sigmoid, tanh).
    pub gates: Tensor<B>,
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
/// Shapes are checked at the start of each op by one call into [`geometry`], the same for
/// every backend; ops return fresh tensors unless their name ends in `_inplace`.
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
    /// Waits for all queued work (a no-op on synchronous backends; timing uses it).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// The precision of the GEMM operands of the ops that have tensor-core kernels
    /// ([`Precision`]; today `masked_conv2d`'s forward and backward), fp32 unless set.
    fn precision(&self) -> Precision;
    /// Sets [`Backend::precision`] for this backend and all its clones, from the next op on
    /// (the one setter that `--precision` drives; the CPU backend rounds the same operands as
    /// the CUDA backend's tensor-core kernels, so both compute the same arithmetic).
    fn set_precision(&self, precision: Precision);

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

    /// Transposed convolution, stride `r`, kernel `k x k` (`k - r` even and >= 0), padding
    /// `p = (k - r) / 2`: `x` `[n, h, w, cin]`, `w` `[cin, cout, k, k]` (PyTorch's
    /// `ConvTranspose2d` layout), `b` `[cout]` -> `[n, h*r, w*r, cout]` with
    /// `out[i*r + a - p, j*r + b - p, f] += x[i, j, c] w[c, f, a, b]` (plus `b[f]`), outputs
    /// outside the map dropped. The Multi-Scale PixelRNN's upsampling of the small image.
    fn conv_transpose2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        stride: usize,
    ) -> Result<Tensor<Self>>;

    /// Backward of [`Backend::conv_transpose2d_forward`] given the output gradient `dy`.
    fn conv_transpose2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        stride: usize,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>>;

    /// `max(x, 0)` elementwise, NaN propagated (NaN stays NaN, as in PyTorch), so that a NaN
    /// reaches the loss and its non-finite check instead of becoming 0.
    fn relu_forward(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `dy * (y > 0)`, where `y` is the ReLU's output.
    fn relu_backward(&self, y: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// `a + b` elementwise (residual connections).
    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// Gated activation of Gated PixelCNN (docs/gated-pixelcnn.md): `pre` `[.., 2F]` holds at
    /// every position the filter block `f` (features `0..F`) and the gate block `g`
    /// (`F..2F`); returns `tanh(f) * sigmoid(g)`, `[.., F]`.
    fn gated_forward(&self, pre: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Backward of [`Backend::gated_forward`]: the gradient w.r.t. `pre` `[.., 2F]` given the
    /// output gradient `dy` `[.., F]` (tanh and sigmoid recomputed from `pre`).
    fn gated_backward(&self, pre: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Class bias (class conditioning): `x + table[labels[b]]` at every position of image `b`.
    /// `x` `[n, H, W, F]`, `table` `[K, F]` (one row per class), `labels` `[n]` holding the
    /// class of each image as a float `0..K`. A label that is not a class is an error (CPU) or
    /// gives NaN outputs (CUDA, where labels are not read back).
    fn class_bias_forward(
        &self,
        x: &Tensor<Self>,
        table: &Tensor<Self>,
        labels: &Tensor<Self>,
    ) -> Result<Tensor<Self>>;

    /// Backward of [`Backend::class_bias_forward`] w.r.t. the table: `[classes, F]` with
    /// `dtable[k] = sum over the images b of class k and their positions of dy[b]`, summed in a
    /// fixed order (images in order, each image's positions in raster order, then its sum
    /// added): deterministic, the same bits on every backend. (The gradient w.r.t. `x` is
    /// `dy` itself.)
    fn class_bias_backward(
        &self,
        dy: &Tensor<Self>,
        labels: &Tensor<Self>,
        classes: usize,
    ) -> Result<Tensor<Self>>;

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

    /// Discretized logistic mixture NLL (PixelCNN++; docs/logistic-mixture.md), fused with its
    /// gradient. `params`: `[.., P]`, a position's `P = K (1 + 2C + C(C-1)/2)` head outputs
    /// (K mixture logits; per channel K means, then per channel K log-scales; for C = 3 the 3K
    /// coefficients before their tanh); `targets`: `[.., C]` holding 0..255. Returns (nll
    /// `[.., C]` in nats, where channel `c` holds `-log p(x_c | x_<c)` under the mixture, so a
    /// pixel's channels sum to its NLL; `dparams`, the gradient of the summed NLL times
    /// `grad_scale`).
    fn logistic_mixture_nll(
        &self,
        params: &Tensor<Self>,
        targets: &Tensor<Self>,
        mixtures: usize,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// Draws whole pixels from the mixture of [`Backend::logistic_mixture_nll`]'s `params`
    /// (`[n, P]`) with `uniforms` (`[n, C + 1]`, each in `[0, 1)`): the component from
    /// `uniforms[.., 0]` by inverting the CDF of `softmax(logits / temperature)` as
    /// [`Backend::sample_logits`] does, then R, G, B in order, channel `c` the logistic's
    /// inverse CDF at `uniforms[.., 1 + c]` with its mean shifted by the coefficients times the
    /// channels already drawn (as discrete values, scaled to [-1, 1]) and its scale times
    /// `temperature`, rounded to the nearest of the 256 bins and clamped to 0..255. Temperature
    /// 0: the most likely component and each channel's mean's bin. Returns `[n, C]`; NaN for a
    /// row with a NaN or infinite parameter (refused by the sampler, as for `sample_logits`).
    fn logistic_mixture_sample(
        &self,
        params: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        mixtures: usize,
        temperature: f32,
    ) -> Result<Tensor<Self>>;

    /// Row LSTM recurrence over the rows of `is` (the input-to-state pre-activations with bias,
    /// `[n, H, W, 4h]`): for each row i, `pre = is_i + conv1xk(h_{i-1}, w_ss)` (unmasked,
    /// zero-padded in width; `w_ss` is `[4h, h, 1, k]`), then
    /// `[o, f, i, g] = [σ, σ, σ, tanh](pre)`, `c_i = f c_{i-1} + i g`, `h_i = o tanh(c_i)`;
    /// row -1 has `h = c = 0`.
    fn row_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>>;

    /// Backward through time of [`Backend::row_lstm_forward`] given `dh` (`[n, H, W, h]`, the
    /// gradient reaching every hidden state from outside the recurrence). Returns
    /// `(d_is, d_w_ss)`.
    fn row_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// Diagonal LSTM scan with the skew folded into indexing: the columns of the skewed map
    /// are the anti-diagonals `r + j = t` of the image. At `(r, j)`,
    /// `pre = is(r, j) + w_ss[:, :, 0] h(r-1, j) + w_ss[:, :, 1] h(r, j-1)` (`w_ss` is
    /// `[4h, h, 2, 1]`: the 2x1 column convolution over rows r-1 and r of the previous skewed
    /// column), the cell state comes from `(r, j-1)` (the previous column, same row), and
    /// positions outside the image (the skew's padding) hold `h = c = 0`.
    fn diag_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>>;

    /// Backward through time of [`Backend::diag_lstm_forward`]; returns `(d_is, d_w_ss)`.
    fn diag_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)>;

    /// Skew `[n, H, W, C]` to `[n, H, Ws, C]`: `S[r, r + j] = x[r, j]`, zero elsewhere, with
    /// `Ws = 2W-1` (the paper's width) or `H+W-1` for images taller than wide, where the last
    /// row reaches further: `Ws = max(2W-1, H+W-1)` ([`skewed_width`]).
    fn skew(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Unskew `[n, H, Ws, C]` to `[n, H, W, C]`: `out[r, j] = S[r, r + j]` (the adjoint of
    /// [`Backend::skew`], hence also its backward); `W` is the one width with
    /// `skewed_width(H, W) = Ws` ([`unskewed_width`]).
    fn unskew(&self, s: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Mirror left-right: `out[r, j] = x[r, W-1-j]` (its own backward).
    fn mirror_width(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Shift down one row: `out[r] = x[r-1]`, row 0 zero.
    fn shift_down(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;
    /// Shift up one row: `out[r] = x[r+1]`, last row zero (the backward of
    /// [`Backend::shift_down`]).
    fn shift_up(&self, x: &Tensor<Self>) -> Result<Tensor<Self>>;

    /// The output write of a Diagonal BiLSTM layer: `left + shift_down(mirror_width(right))`,
    /// where `right` is the hidden map of the direction that ran on the mirrored image.
    /// Provided as the composition of the three ops (the reference); a backend may fuse it.
    fn diag_bilstm_combine(
        &self,
        left: &Tensor<Self>,
        right: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        geometry::pointwise::map_pair("diag_bilstm_combine", left, right)?;
        let moved = self.shift_down(&self.mirror_width(right)?)?;
        self.add(left, &moved)
    }

    /// Backward of [`Backend::diag_bilstm_combine`] w.r.t. `right`:
    /// `mirror_width(shift_up(dh))` (the gradient w.r.t. `left` is `dh` itself).
    fn diag_bilstm_combine_backward(&self, dh: &Tensor<Self>) -> Result<Tensor<Self>> {
        self.mirror_width(&self.shift_up(dh)?)
    }

    /// Sum of all elements, accumulated in f64.
    fn sum(&self, x: &Tensor<Self>) -> Result<f64>;
    /// Sum of squares of all elements, accumulated in f64 (global-norm clipping).
    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64>;
    /// Sum of squares of every element of every tensor of `xs`, accumulated in f64: the
    /// global gradient norm's square. By default the sum of [`Backend::sum_squares`]; CUDA
    /// reduces all of them on the device and synchronises with the host once.
    fn sum_squares_all(&self, xs: &[&Tensor<Self>]) -> Result<f64> {
        xs.iter().map(|x| self.sum_squares(x)).sum()
    }
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

    // ---- one position at a time (incremental sampling, src/sample/) ----

    /// The features of map `x` `[n, H, W, F]` at position `(i, j)`: `[n, F]`.
    fn read_position(&self, x: &Tensor<Self>, i: usize, j: usize) -> Result<Tensor<Self>>;

    /// Writes `v` `[n, F]` into map `x` `[n, H, W, F]` at position `(i, j)`.
    fn write_position(
        &self,
        x: &mut Tensor<Self>,
        i: usize,
        j: usize,
        v: &Tensor<Self>,
    ) -> Result<()>;

    /// A masked convolution's `[cout, cin, kh, kw]` weight in the layout that
    /// [`Backend::masked_conv2d_forward_at`] reads (packed once, used at every position).
    fn masked_conv2d_pack(&self, w: &Tensor<Self>, spec: &ConvSpec) -> Result<Tensor<Self>>;

    /// [`Backend::masked_conv2d_forward`] at one output position only: `x` `[n, H, W, cin]`,
    /// `packed` from [`Backend::masked_conv2d_pack`], `b` `[cout]` -> `[n, cout]`, the
    /// output at `(i, j)`. Reads only the input positions under the live taps.
    fn masked_conv2d_forward_at(
        &self,
        x: &Tensor<Self>,
        packed: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
        i: usize,
        j: usize,
    ) -> Result<Tensor<Self>>;

    /// One position `(i, j)` of [`Backend::row_lstm_forward`]: from its input-to-state
    /// pre-activation `is` `[n, 4h]` and the states of row `i - 1` already in the maps `h`,
    /// `c` (`[n, H, W, h]`), writes the hidden and cell states of `(i, j)` into `h` and `c`.
    /// Same arithmetic as the fused recurrence.
    fn row_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
    ) -> Result<()>;

    /// One position `(i, j)` of [`Backend::diag_lstm_forward`] (state from the pixel above
    /// and the pixel to the left, already in the maps), written into `h` and `c` like
    /// [`Backend::row_lstm_forward_at`].
    fn diag_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
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

    /// One RMSProp update of every parameter `params[k]` from `grads[k]` with running mean
    /// square `ms[k]`, each gradient first multiplied by `grad_scale` in place unless it is 1
    /// (global-norm clipping). By default [`Backend::scale_inplace`] and
    /// [`Backend::rmsprop_update`] per tensor; CUDA: one launch for all of them
    /// (cuda/multi_tensor.rs), the same floats.
    fn rmsprop_update_all(
        &self,
        params: &mut [&mut Tensor<Self>],
        grads: &mut [&mut Tensor<Self>],
        ms: &mut [&mut Tensor<Self>],
        grad_scale: f32,
        step: RmsPropStep,
    ) -> Result<()> {
        geometry::pointwise::parameter_lists("rmsprop_update_all", params, &[grads, ms])?;
        for ((p, g), s) in params.iter_mut().zip(grads.iter_mut()).zip(ms.iter_mut()) {
            if grad_scale != 1.0 {
                self.scale_inplace(g, grad_scale)?;
            }
            self.rmsprop_update(p, g, s, step)?;
        }
        Ok(())
    }

    /// One Adam update of every parameter `params[k]` from `grads[k]` with moments `m[k]`,
    /// `v[k]`, each gradient first multiplied by `grad_scale` in place unless it is 1. By
    /// default per tensor, as [`Backend::rmsprop_update_all`]; CUDA: one launch.
    fn adam_update_all(
        &self,
        params: &mut [&mut Tensor<Self>],
        grads: &mut [&mut Tensor<Self>],
        m: &mut [&mut Tensor<Self>],
        v: &mut [&mut Tensor<Self>],
        grad_scale: f32,
        step: AdamStep,
    ) -> Result<()> {
        geometry::pointwise::parameter_lists("adam_update_all", params, &[grads, m, v])?;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads.iter_mut())
            .zip(m.iter_mut())
            .zip(v.iter_mut())
        {
            if grad_scale != 1.0 {
                self.scale_inplace(g, grad_scale)?;
            }
            self.adam_update(p, g, m, v, step)?;
        }
        Ok(())
    }

    /// Draws values from the output head's logits by inverting the CDF with `uniforms`
    /// (`[n, c]`, each in `[0, 1)`); returns the drawn values `[n, c]` as floats.
    ///
    /// 256-way (`binary` false): `logits` `[n, 256 * c]`, interleaved as in
    /// [`Backend::softmax_nll`]. With `w_k = exp(l_k - max l)` and the running sums
    /// `W_k = w_0 + ... + w_k` in f32, the value is the smallest `k` with `u * W_255 < W_k`,
    /// i.e. the smallest `k` with `u < cdf(k)`: a value of zero probability is never drawn.
    /// If no `k` qualifies (`u >= 1`), 255.
    ///
    /// Binary: `logits` `[n, c]`; 1 if `u < sigmoid(l)`, else 0.
    ///
    /// Non-finite logits: where one of the logits a value is drawn from is NaN or infinite
    /// (256-way: any of that channel's 256; binary: its one), the drawn value is NaN, which the
    /// sampler refuses with an error. Design: the drawn values are the only thing that comes
    /// back to the host, so they carry the verdict; the kernel already holds every logit of
    /// the row in registers, and one comparison each plus a warp vote costs nothing next to
    /// the 256 exponentials, where a separate check would be another pass over the logits or
    /// a download of all of them. Refusing every non-finite logit, not only those that leave
    /// the CDF undefined (NaN, +inf, all -inf), keeps the rule one line and the same on both
    /// backends: finite weights and inputs never give an infinite logit unless the forward
    /// overflowed, and that result is not a distribution to sample.
    fn sample_logits(
        &self,
        logits: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        binary: bool,
    ) -> Result<Tensor<Self>>;
}
