//! The [`Backend`] trait's implementation for [`CudaBackend`]: one call per op into its host
//! module (the op's shape check, launch configuration and kernel version live there, never
//! here), kept apart from the backend's state and allocator in cuda/mod.rs.

use super::*;

impl<E: Executor> Backend for CudaBackend<E> {
    type Storage = Arc<GpuBuffer<E>>;

    fn name(&self) -> String {
        self.inner.exec.name()
    }

    fn alloc_zeros(&self, len: usize) -> Result<Self::Storage> {
        self.alloc_zeroed(len)
    }

    fn upload(&self, data: &[f32]) -> Result<Self::Storage> {
        let mut buffer = self.take(data.len())?;
        if !data.is_empty() {
            self.inner.exec.upload_into(buffer.raw_mut(), data)?;
        }
        Ok(Arc::new(buffer))
    }

    fn download(&self, data: &Self::Storage) -> Result<Vec<f32>> {
        if data.is_empty() {
            return Ok(Vec::new());
        }
        loss_targets::resolve(self)?;
        self.count_sync();
        self.inner.exec.download(data.raw(), data.len())
    }

    fn synchronize(&self) -> Result<()> {
        loss_targets::resolve(self)?;
        self.count_sync();
        self.inner.exec.synchronize()
    }

    fn precision(&self) -> Precision {
        Precision::from_code(self.inner.precision.load(Ordering::Relaxed))
    }

    fn set_precision(&self, precision: Precision) {
        self.inner
            .precision
            .store(precision.code(), Ordering::Relaxed);
    }

    fn masked_conv2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
    ) -> Result<Tensor<Self>> {
        masked_conv2d::forward(self, x, w, b, spec)
    }

    fn masked_conv2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        spec: &ConvSpec,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>> {
        masked_conv2d::backward(self, x, w, dy, spec, need_dx)
    }

    fn conv_transpose2d_forward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        b: &Tensor<Self>,
        stride: usize,
    ) -> Result<Tensor<Self>> {
        conv_transpose2d::forward(self, x, w, b, stride)
    }

    fn conv_transpose2d_backward(
        &self,
        x: &Tensor<Self>,
        w: &Tensor<Self>,
        dy: &Tensor<Self>,
        stride: usize,
        need_dx: bool,
    ) -> Result<ConvGrads<Self>> {
        conv_transpose2d::backward(self, x, w, dy, stride, need_dx)
    }

    fn relu_forward(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        elementwise::relu_forward(self, x)
    }

    fn relu_backward(&self, y: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        elementwise::relu_backward(self, y, dy)
    }

    fn add(&self, a: &Tensor<Self>, b: &Tensor<Self>) -> Result<Tensor<Self>> {
        elementwise::add(self, a, b)
    }

    fn gated_forward(&self, pre: &Tensor<Self>) -> Result<Tensor<Self>> {
        gated::forward(self, pre)
    }

    fn gated_backward(&self, pre: &Tensor<Self>, dy: &Tensor<Self>) -> Result<Tensor<Self>> {
        gated::backward(self, pre, dy)
    }

    fn class_bias_forward(
        &self,
        x: &Tensor<Self>,
        t: &Tensor<Self>,
        l: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        class_bias::forward(self, x, t, l)
    }

    fn class_bias_backward(
        &self,
        dy: &Tensor<Self>,
        l: &Tensor<Self>,
        k: usize,
    ) -> Result<Tensor<Self>> {
        class_bias::backward(self, dy, l, k)
    }

    fn softmax_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        softmax_nll::softmax_nll(self, logits, targets, grad_scale)
    }

    fn bernoulli_nll(
        &self,
        logits: &Tensor<Self>,
        targets: &Tensor<Self>,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        bernoulli_nll::bernoulli_nll(self, logits, targets, grad_scale)
    }

    fn logistic_mixture_nll(
        &self,
        params: &Tensor<Self>,
        targets: &Tensor<Self>,
        mixtures: usize,
        grad_scale: f32,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        logistic_mixture::logistic_mixture_nll(self, params, targets, mixtures, grad_scale)
    }

    fn logistic_mixture_sample(
        &self,
        params: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        mixtures: usize,
        temperature: f32,
    ) -> Result<Tensor<Self>> {
        logistic_mixture::logistic_mixture_sample(self, params, uniforms, mixtures, temperature)
    }

    fn row_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm::row_forward(self, is, w_ss, rec)
    }

    fn row_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm::row_backward(self, state, w_ss, dh, rec)
    }

    fn diag_lstm_forward(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<LstmState<Self>> {
        lstm::diag_forward(self, is, w_ss, rec)
    }

    fn diag_lstm_backward(
        &self,
        state: &LstmState<Self>,
        w_ss: &Tensor<Self>,
        dh: &Tensor<Self>,
        rec: Recurrence,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        lstm::diag_backward(self, state, w_ss, dh, rec)
    }

    fn skew(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        skew::skew(self, x)
    }

    fn unskew(&self, s: &Tensor<Self>) -> Result<Tensor<Self>> {
        skew::unskew(self, s)
    }

    fn mirror_width(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        mirror_shift::mirror_width(self, x)
    }

    fn shift_down(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        mirror_shift::shift_down(self, x)
    }

    fn shift_up(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        mirror_shift::shift_up(self, x)
    }

    fn diag_bilstm_combine(
        &self,
        left: &Tensor<Self>,
        right: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        diag_bilstm_combine::forward(self, left, right)
    }

    fn diag_bilstm_combine_backward(&self, dh: &Tensor<Self>) -> Result<Tensor<Self>> {
        diag_bilstm_combine::backward(self, dh)
    }

    fn sum(&self, x: &Tensor<Self>) -> Result<f64> {
        reduce::sum(self, x)
    }

    fn sum_squares(&self, x: &Tensor<Self>) -> Result<f64> {
        reduce::sum_squares(self, x)
    }

    fn sum_squares_all(&self, xs: &[&Tensor<Self>]) -> Result<f64> {
        reduce::sum_squares_all(self, xs)
    }

    fn scale_inplace(&self, x: &mut Tensor<Self>, s: f32) -> Result<()> {
        elementwise::scale_inplace(self, x, s)
    }

    fn rmsprop_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        ms: &mut Tensor<Self>,
        step: RmsPropStep,
    ) -> Result<()> {
        optim::rmsprop_update(self, param, grad, ms, step)
    }

    fn read_position(&self, x: &Tensor<Self>, i: usize, j: usize) -> Result<Tensor<Self>> {
        position::read_position(self, x, i, j)
    }

    fn write_position(
        &self,
        x: &mut Tensor<Self>,
        i: usize,
        j: usize,
        v: &Tensor<Self>,
    ) -> Result<()> {
        position::write_position(self, x, i, j, v)
    }

    fn masked_conv2d_pack(&self, w: &Tensor<Self>, spec: &ConvSpec) -> Result<Tensor<Self>> {
        masked_conv2d_at::pack(self, w, spec)
    }

    fn masked_conv2d_forward_at(
        &self,
        x: &Tensor<Self>,
        packed: &Tensor<Self>,
        b: &Tensor<Self>,
        spec: &ConvSpec,
        i: usize,
        j: usize,
    ) -> Result<Tensor<Self>> {
        masked_conv2d_at::forward_at(self, x, packed, b, spec, i, j)
    }

    fn row_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
    ) -> Result<()> {
        lstm_at::row_forward_at(self, is, w_ss, h, c, i, j)
    }

    fn diag_lstm_forward_at(
        &self,
        is: &Tensor<Self>,
        w_ss: &Tensor<Self>,
        h: &mut Tensor<Self>,
        c: &mut Tensor<Self>,
        i: usize,
        j: usize,
    ) -> Result<()> {
        lstm_at::diag_forward_at(self, is, w_ss, h, c, i, j)
    }

    fn adam_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        step: AdamStep,
    ) -> Result<()> {
        optim::adam_update(self, param, grad, m, v, step)
    }

    fn rmsprop_update_all(
        &self,
        params: &mut [&mut Tensor<Self>],
        grads: &mut [&mut Tensor<Self>],
        ms: &mut [&mut Tensor<Self>],
        grad_scale: f32,
        step: RmsPropStep,
    ) -> Result<()> {
        optim::rmsprop_update_all(self, params, grads, ms, grad_scale, step)
    }

    fn adam_update_all(
        &self,
        params: &mut [&mut Tensor<Self>],
        grads: &mut [&mut Tensor<Self>],
        m: &mut [&mut Tensor<Self>],
        v: &mut [&mut Tensor<Self>],
        grad_scale: f32,
        step: AdamStep,
    ) -> Result<()> {
        optim::adam_update_all(self, params, grads, m, v, grad_scale, step)
    }

    fn sample_logits(
        &self,
        logits: &Tensor<Self>,
        uniforms: &Tensor<Self>,
        binary: bool,
    ) -> Result<Tensor<Self>> {
        sample_logits::sample_logits(self, logits, uniforms, binary)
    }
}
