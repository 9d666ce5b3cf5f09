//! The CUDA backend: the kernels of `kernels/*.cu` behind the [`Backend`] trait.
//!
//! [`CudaBackend`] is generic over what runs the kernels ([`Executor`]): the real GPU
//! ([`Device`], through cudarc) or the CPU emulation of the CUDA execution model
//! ([`Emulator`]), which runs the very same kernel sources in `cargo test` on machines without
//! a GPU. Each op lives in its own module under the op's name (`masked_conv2d.rs` next to
//! `kernels/masked_conv2d.cu` and `cpu/masked_conv2d.rs`): shapes checked (one call into
//! `backend::geometry`, as on the CPU), launch configuration computed, kernel version chosen
//! ([`Variants`]), launch.
//!
//! Memory: a caching allocator keeps freed buffers by length and hands them out again, so a
//! training loop, which allocates the same shapes every step, stops calling the driver's
//! allocator after its first step. Buffers are shared by [`Tensor`] clones (`Arc`) and copied
//! on write by the in-place ops.

mod bernoulli_nll;
mod class_bias;
mod conv_transpose2d;
pub mod device;
mod diag_bilstm_combine;
mod diag_lstm_skewed;
mod elementwise;
pub mod emulator;
mod executor;
mod gated;
mod launch_args;
mod logistic_mixture;
mod loss_targets;
mod lstm;
mod lstm_at;
mod lstm_persistent;
mod masked_conv2d;
mod masked_conv2d_at;
mod mirror_shift;
mod multi_tensor;
mod optim;
mod position;
mod reduce;
mod sample_logits;
mod skew;
mod softmax_nll;
pub mod variants;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::ThreadId;

pub use device::Device;
pub use emulator::{
    AccessOp, EmuOptions, Emulator, LaunchCounters, MemSpace, SiteCounters, COUNTERS_ENV,
};
pub use executor::{
    Arg, Executor, LaunchCfg, DEFAULT_SHARED_BYTES, MAX_CLUSTER_BLOCKS, MAX_SHARED_BYTES,
};
pub use variants::{
    DiagLstm, DiagLstmLayout, MaskedConv2d, MaskedConv2dAt, MaskedConv2dMma, MaskedConv2dWeight,
    RowLstm, Selected, Variants,
};

use crate::backend::{
    AdamStep, Backend, ConvGrads, ConvSpec, LstmState, Precision, Recurrence, RmsPropStep,
};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Threads per block of the 1-D kernels (`PIXELRNN_BLOCK` in kernels/common.cuh).
pub const BLOCK: u32 = 256;
/// Cap on the grid of grid-stride kernels: enough blocks to fill any current GPU.
pub const MAX_BLOCKS: u32 = 65_535;

/// The CUDA backend over executor `E` (cheap to clone: clones share the device state).
pub struct CudaBackend<E: Executor> {
    inner: Arc<Inner<E>>,
}

impl<E: Executor> Clone for CudaBackend<E> {
    fn clone(&self) -> Self {
        CudaBackend {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<E: Executor> {
    exec: E,
    /// Free buffers by length (elements): the caching allocator.
    free: Mutex<HashMap<usize, Vec<E::Buffer>>>,
    stats: Mutex<PoolStats>,
    /// The kernel variants in force ([`CudaBackend::select`]).
    variants: RwLock<Variants>,
    /// [`Backend::precision`] as [`Precision::code`]: tf32 and bf16 run `masked_conv2d` on the
    /// tensor-core kernels ([`Variants::masked_conv2d_mma`]).
    precision: AtomicU8,
    /// Fill fresh output buffers with NaN, so an output element that a kernel forgets to
    /// write shows up in the parity tests.
    poison: bool,
    /// Host synchronisations so far ([`CudaBackend::host_syncs`]).
    syncs: AtomicU64,
    /// Each thread's loss-target check, read at its next synchronisation (cuda/loss_targets.rs).
    checks: Mutex<HashMap<ThreadId, loss_targets::ThreadCheck<E>>>,
}

/// Counters of the caching allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests that called the executor's allocator.
    pub misses: u64,
    /// Bytes held in the cache, free.
    pub cached_bytes: usize,
    /// Bytes handed out and not yet returned.
    pub live_bytes: usize,
}

/// A device buffer of `len` `f32`s that returns to the backend's cache when dropped.
pub struct GpuBuffer<E: Executor> {
    buf: Option<E::Buffer>,
    len: usize,
    owner: Arc<Inner<E>>,
}

impl<E: Executor> GpuBuffer<E> {
    /// The executor's buffer, for a kernel argument.
    pub fn raw(&self) -> &E::Buffer {
        self.buf
            .as_ref()
            .expect("a live GpuBuffer always holds its buffer")
    }

    pub(crate) fn raw_mut(&mut self) -> &mut E::Buffer {
        self.buf
            .as_mut()
            .expect("a live GpuBuffer always holds its buffer")
    }

    /// Number of `f32` elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<E: Executor> Drop for GpuBuffer<E> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let bytes = self.len * 4;
            if let Ok(mut stats) = self.owner.stats.lock() {
                stats.live_bytes = stats.live_bytes.saturating_sub(bytes);
                stats.cached_bytes += bytes;
            }
            if let Ok(mut free) = self.owner.free.lock() {
                free.entry(self.len).or_default().push(buf);
            }
        }
    }
}

/// The kernel argument for tensor `t`'s buffer.
pub fn arg<E: Executor>(t: &Tensor<CudaBackend<E>>) -> Arg<'_, E> {
    Arg::Buf(t.data.raw())
}

impl<E: Executor> CudaBackend<E> {
    /// A backend running on `exec`.
    pub fn new(exec: E) -> Self {
        Self::with_options(exec, false)
    }

    /// A backend running on `exec` that fills every fresh output buffer with NaN first
    /// (`poison`), so that the parity tests catch outputs a kernel does not write.
    pub fn with_options(exec: E, poison: bool) -> Self {
        CudaBackend {
            inner: Arc::new(Inner {
                exec,
                free: Mutex::new(HashMap::new()),
                stats: Mutex::new(PoolStats::default()),
                variants: RwLock::new(Variants::default()),
                precision: AtomicU8::new(Precision::Fp32.code()),
                poison,
                syncs: AtomicU64::new(0),
                checks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The executor that runs the kernels.
    pub fn executor(&self) -> &E {
        &self.inner.exec
    }

    /// Host synchronisations since the backend was made: every download of a buffer to the
    /// host (which waits for all launched work: a loss, a norm, sampled pixels) and every
    /// explicit `synchronize`. The profile report counts them per training step; each one
    /// drains the GPU's queue, so a step that has many cannot hide launch latency.
    pub fn host_syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// Counts one host synchronisation (a download or a wait).
    pub(crate) fn count_sync(&self) {
        self.inner.syncs.fetch_add(1, Ordering::Relaxed);
    }

    /// The table of pending loss-target checks (cuda/loss_targets.rs); a poisoned lock is
    /// taken over (the table holds no invariant a panic could break).
    fn target_checks(&self) -> MutexGuard<'_, HashMap<ThreadId, loss_targets::ThreadCheck<E>>> {
        self.inner.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caching allocator's counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.inner.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Releases every cached free buffer back to the executor.
    pub fn empty_cache(&self) {
        if let Ok(mut free) = self.inner.free.lock() {
            free.clear();
        }
        if let Ok(mut stats) = self.inner.stats.lock() {
            stats.cached_bytes = 0;
        }
    }

    /// `<op>_<pass>_v1`: the kernel of an op whose kernels have one version. The op families
    /// with several ([`Variants`]) name theirs from the selected variant.
    pub fn kernel_name(&self, op: &str, pass: &str) -> String {
        format!("{op}_{pass}_v1")
    }

    /// Launches `kernel` on this backend's executor.
    pub fn launch(&self, kernel: &str, cfg: &LaunchCfg, args: &[Arg<'_, E>]) -> Result<()> {
        self.inner.exec.launch(kernel, cfg, args)
    }

    /// [`Executor::launch_touching`]: a launch that also reaches `touched` through a pointer
    /// table.
    pub fn launch_touching(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        args: &[Arg<'_, E>],
        touched: &[&Tensor<Self>],
    ) -> Result<()> {
        let touched: Vec<&E::Buffer> = touched.iter().map(|t| t.data.raw()).collect();
        self.inner.exec.launch_touching(kernel, cfg, args, &touched)
    }

    /// Lets `kernel` use `bytes` of dynamic shared memory ([`Executor::opt_in_shared`]).
    pub fn opt_in_shared(&self, kernel: &str, bytes: u32) -> Result<()> {
        self.inner.exec.opt_in_shared(kernel, bytes)
    }

    /// A buffer of `len` elements from the cache (or the executor), contents unspecified
    /// (NaN when poisoning): for outputs that a kernel writes in full.
    pub fn alloc_uninit(&self, len: usize) -> Result<Arc<GpuBuffer<E>>> {
        let mut buffer = self.take(len)?;
        if self.inner.poison && len > 0 {
            self.poison_fill(&mut buffer)?;
        }
        Ok(Arc::new(buffer))
    }

    /// A zero-filled buffer of `len` elements from the cache (or the executor).
    pub fn alloc_zeroed(&self, len: usize) -> Result<Arc<GpuBuffer<E>>> {
        let mut buffer = self.take(len)?;
        if len > 0 {
            self.inner.exec.memset_zero(buffer.raw_mut(), len)?;
        }
        Ok(Arc::new(buffer))
    }

    /// A tensor of `shape` whose every element the caller's kernel will write.
    pub fn tensor_uninit(&self, shape: &[usize]) -> Result<Tensor<Self>> {
        Ok(Tensor {
            shape: shape.to_vec(),
            data: self.alloc_uninit(shape.iter().product())?,
        })
    }

    /// A zero tensor of `shape` (for outputs that kernels accumulate into or write sparsely).
    pub fn tensor_zeroed(&self, shape: &[usize]) -> Result<Tensor<Self>> {
        Ok(Tensor {
            shape: shape.to_vec(),
            data: self.alloc_zeroed(shape.iter().product())?,
        })
    }

    /// Makes `t`'s buffer exclusive to `t` (copying it if a clone shares it), for in-place ops.
    pub fn make_unique(&self, t: &mut Tensor<Self>) -> Result<()> {
        if Arc::get_mut(&mut t.data).is_none() {
            let len = t.data.len();
            let mut copy = self.take(len)?;
            if len > 0 {
                self.inner.exec.copy(t.data.raw(), copy.raw_mut(), len)?;
            }
            t.data = Arc::new(copy);
        }
        Ok(())
    }

    fn take(&self, len: usize) -> Result<GpuBuffer<E>> {
        let cached = self
            .inner
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.get_mut(&len).and_then(Vec::pop));
        let bytes = len * 4;
        let buf = match cached {
            Some(buf) => {
                if let Ok(mut stats) = self.inner.stats.lock() {
                    stats.hits += 1;
                    stats.cached_bytes = stats.cached_bytes.saturating_sub(bytes);
                    stats.live_bytes += bytes;
                }
                buf
            }
            None => {
                let buf = match self.inner.exec.alloc(len) {
                    Ok(buf) => buf,
                    // Out of memory with buffers of other lengths cached: free them, retry once.
                    Err(_) => {
                        self.empty_cache();
                        self.inner.exec.alloc(len)?
                    }
                };
                if let Ok(mut stats) = self.inner.stats.lock() {
                    stats.misses += 1;
                    stats.live_bytes += bytes;
                }
                buf
            }
        };
        Ok(GpuBuffer {
            buf: Some(buf),
            len,
            owner: Arc::clone(&self.inner),
        })
    }

    fn poison_fill(&self, buffer: &mut GpuBuffer<E>) -> Result<()> {
        let len = buffer.len;
        let n = i64::try_from(len).map_err(|_| Error::Device("buffer too large".into()))?;
        self.launch(
            "fill_fwd_v1",
            &LaunchCfg::for_elements(len, BLOCK, MAX_BLOCKS),
            &[Arg::Buf(buffer.raw()), Arg::I64(n), Arg::F32(f32::NAN)],
        )
    }
}

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
