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

mod backend_impl;
mod bernoulli_nll;
mod class_bias;
mod conv_transpose2d;
pub mod device;
mod diag_bilstm_combine;
mod diag_lstm_skewed;
mod elementwise;
mod emu_counters;
pub mod emulator;
mod executor;
mod gated;
mod launch_args;
mod logistic_mixture;
mod loss_targets;
mod lstm;
mod lstm_at;
mod lstm_mma;
mod lstm_persistent;
mod lstm_persistent_mma;
mod lstm_precision;
mod lstm_steps;
mod lstm_weight;
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
    AccessOp, EmuOptions, Emulator, LaunchCounters, MemSpace, SiteCounters, SyncCounters,
    COUNTERS_ENV,
};
pub use executor::{
    Arg, Executor, LaunchCfg, DEFAULT_SHARED_BYTES, MAX_CLUSTER_BLOCKS, MAX_SHARED_BYTES,
};
pub use variants::{
    persistent_kernel_version, stepwise_kernel_version, DiagLstm, DiagLstmLayout, LstmMma,
    LstmPersistentProduct, LstmWeight, LstmWeightFp32, MaskedConv2d, MaskedConv2dAt,
    MaskedConv2dMma, MaskedConv2dPack, MaskedConv2dWeight, RowLstm, Selected, Variants,
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
