//! What runs a kernel: the [`Executor`] trait, implemented by the real GPU
//! ([`super::device::Device`], cudarc) and by the CPU emulation of the CUDA execution model
//! ([`super::emulator::Emulator`]). The backend's ops are written once against this trait, so
//! every host-side launch and every kernel runs in CI (emulated) and on a device unchanged.

use crate::error::{Error, Result};

/// Grid and block dimensions plus dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCfg {
    /// Blocks per grid, `[x, y, z]`.
    pub grid: [u32; 3],
    /// Threads per block, `[x, y, z]`.
    pub block: [u32; 3],
    /// Bytes of `extern __shared__` memory per block. Above [`DEFAULT_SHARED_BYTES`] the
    /// kernel must have opted in first ([`Executor::opt_in_shared`]), as on the hardware.
    pub shared_bytes: u32,
    /// Blocks per thread-block cluster, `[x, y, z]` (sm_90; each divides `grid`; at most
    /// [`MAX_CLUSTER_BLOCKS`] in all): the blocks of a cluster are co-scheduled and can wait
    /// for each other at a cluster barrier (kernels/cluster.cuh). `[1, 1, 1]`: no cluster.
    pub cluster: [u32; 3],
    /// The launch's useful FLOPs by the host-side formula of its op (2 per multiply-add of
    /// the GEMM-shaped work: convolutions and the recurrences' state-to-state products, over
    /// live taps only); 0 for kernels whose cost is their memory traffic (pointwise ops,
    /// reductions, losses, the optimizer). A device ignores it; the emulator's memory
    /// counters carry it into [`super::LaunchCounters::flops`] for the profile report.
    pub flops: u64,
}

impl LaunchCfg {
    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        LaunchCfg {
            grid: [blocks.max(1), 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
            cluster: [1, 1, 1],
            flops: 0,
        }
    }

    /// A 1-D launch with one thread per element of `n` (rounded up to whole blocks of
    /// `threads`), the grid capped at `max_blocks` (kernels with grid-stride loops).
    pub fn for_elements(n: usize, threads: u32, max_blocks: u32) -> Self {
        let blocks = n.div_ceil(threads as usize).clamp(1, max_blocks as usize) as u32;
        Self::linear(blocks, threads)
    }

    /// The same launch with `bytes` of dynamic shared memory.
    pub fn with_shared(mut self, bytes: u32) -> Self {
        self.shared_bytes = bytes;
        self
    }

    /// The same launch in clusters of `blocks` blocks along x ([`LaunchCfg::cluster`]).
    pub fn with_cluster(mut self, blocks: u32) -> Self {
        self.cluster = [blocks, 1, 1];
        self
    }

    /// Blocks per cluster (1 without clusters).
    pub fn cluster_size(&self) -> u32 {
        self.cluster.iter().product()
    }

    /// The same launch doing `flops` useful FLOPs ([`LaunchCfg::flops`]).
    pub fn with_flops(mut self, flops: u64) -> Self {
        self.flops = flops;
        self
    }

    /// Total threads in the grid.
    pub fn threads(&self) -> u64 {
        self.grid
            .iter()
            .chain(&self.block)
            .map(|&d| d as u64)
            .product()
    }
}

/// Dynamic shared memory a kernel may use without opting in to more (every CUDA device).
pub const DEFAULT_SHARED_BYTES: u32 = 48 * 1024;

/// Most dynamic shared memory a kernel may opt in to: the 227 KiB per block of the H100/H200.
pub const MAX_SHARED_BYTES: u32 = 227 * 1024;

/// Most blocks of a portable thread-block cluster (the non-portable 16 are not used).
pub const MAX_CLUSTER_BLOCKS: u32 = 8;

/// One kernel argument, in the order of the kernel's parameter list.
pub enum Arg<'a, E: Executor> {
    /// A device buffer, passed as a pointer (`const float*`, `float*`, `double*`...).
    Buf(&'a E::Buffer),
    /// An `int` parameter.
    I32(i32),
    /// An `unsigned int` parameter.
    U32(u32),
    /// A `long long` parameter (`pixelrnn_index_t`).
    I64(i64),
    /// An `unsigned long long` parameter (seeds).
    U64(u64),
    /// A `float` parameter.
    F32(f32),
}

// Manual impls: a derive would demand `E: Clone`, but only the reference is copied.
impl<E: Executor> Clone for Arg<'_, E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: Executor> Copy for Arg<'_, E> {}

/// Runs kernels of `kernels/*.cu` on buffers of `f32`.
///
/// Buffers hold `len` elements of 4 bytes; a kernel may view one as another 4-byte type or, for
/// an even `len`, as `len / 2` doubles. All work is ordered on one stream: a launch sees every
/// earlier launch's writes, and `download` waits for them.
pub trait Executor: Send + Sync + Sized + 'static {
    /// A device allocation of `f32`s.
    type Buffer: Send + Sync;

    /// Human-readable name ("cuda:0 NVIDIA H200", "cuda emulator (2 workers)").
    fn name(&self) -> String;
    /// A fresh buffer of `len` elements with unspecified contents (the caching allocator in
    /// [`super::CudaBackend`] calls this only when it has no free buffer of that length).
    fn alloc(&self, len: usize) -> Result<Self::Buffer>;
    /// Sets every element of `buf` to zero.
    fn memset_zero(&self, buf: &mut Self::Buffer, len: usize) -> Result<()>;
    /// Copies `data` into the first `data.len()` elements of `buf`.
    fn upload_into(&self, buf: &mut Self::Buffer, data: &[f32]) -> Result<()>;
    /// Copies the first `len` elements of `buf` to the host (waits for pending work).
    fn download(&self, buf: &Self::Buffer, len: usize) -> Result<Vec<f32>>;
    /// Copies the first `len` elements of `src` into `dst`, on the device.
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer, len: usize) -> Result<()>;
    /// Launches `kernel` (an entry point of `kernels/*.cu`) with `args`.
    fn launch(&self, kernel: &str, cfg: &LaunchCfg, args: &[Arg<'_, Self>]) -> Result<()> {
        self.launch_touching(kernel, cfg, args, &[])
    }
    /// As [`Executor::launch`], for a kernel that also reaches buffers `touched` through
    /// pointers it reads from memory (a multi-tensor launch's chunk table): they are not
    /// arguments, but the emulator's memory counters and bounds checks treat them as the
    /// launch's buffers (fault reports name them as argument -1). A GPU ignores them.
    fn launch_touching(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        args: &[Arg<'_, Self>],
        touched: &[&Self::Buffer],
    ) -> Result<()>;
    /// Lets `kernel` use up to `bytes` of dynamic shared memory (at most [`MAX_SHARED_BYTES`]):
    /// `cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)` on a device.
    /// Without it a launch whose dynamic shared memory plus the kernel's static `__shared__`
    /// arrays exceed [`DEFAULT_SHARED_BYTES`] fails, on the emulator as on the hardware
    /// (`CUDA_ERROR_INVALID_VALUE` on an H200: the first device run, docs/benchmarks.md); with
    /// it, static plus `bytes` must fit [`MAX_SHARED_BYTES`].
    fn opt_in_shared(&self, kernel: &str, bytes: u32) -> Result<()>;
    /// Waits until all launched work is done.
    fn synchronize(&self) -> Result<()>;
    /// The device address of `buf`, for a kernel that reads buffer pointers from a table in
    /// device memory (the multi-tensor launches: cuda/multi_tensor.rs).
    fn address(&self, buf: &Self::Buffer) -> u64;
}

/// Checks an opt-in request of [`Executor::opt_in_shared`] against the device's limit.
pub fn check_opt_in(kernel: &str, bytes: u32) -> Result<()> {
    if bytes > MAX_SHARED_BYTES {
        return Err(launch_error(
            kernel,
            format!(
                "cannot opt in to {bytes} bytes of dynamic shared memory: the device has \
                 {MAX_SHARED_BYTES} per block"
            ),
        ));
    }
    Ok(())
}

/// Builds the error of a failed launch or transfer.
pub fn launch_error(kernel: &str, detail: impl std::fmt::Display) -> Error {
    Error::Device(format!("CUDA kernel {kernel}: {detail}"))
}

/// Checks `args` against the parameter list of `kernel` as parsed from `kernels/*.cu` by the
/// kernels crate's build (count, pointer vs scalar, and the scalar's type), so that a wrong
/// launch is an error naming the kernel and the parameter, not undefined behaviour.
pub fn check_args<E: Executor>(kernel: &str, args: &[Arg<'_, E>]) -> Result<()> {
    let sig = crate::kernels::launch_signature(kernel).ok_or_else(|| {
        launch_error(
            kernel,
            "no such kernel in kernels/*.cu (see kernels::signatures())",
        )
    })?;
    if sig.params.len() != args.len() {
        return Err(launch_error(
            kernel,
            format!(
                "takes {} arguments ({}), got {}",
                sig.params.len(),
                sig.params
                    .iter()
                    .map(|p| format!("{} {}", p.kind.c_type(), p.name))
                    .collect::<Vec<_>>()
                    .join(", "),
                args.len()
            ),
        ));
    }
    for (i, (param, arg)) in sig.params.iter().zip(args).enumerate() {
        use crate::kernels::ParamKind as K;
        let (ok, given) = match arg {
            Arg::Buf(_) => (param.kind.is_pointer(), "a buffer"),
            Arg::I32(_) => (param.kind == K::I32, "an i32"),
            Arg::U32(_) => (param.kind == K::U32, "a u32"),
            Arg::I64(_) => (param.kind == K::I64, "an i64"),
            Arg::U64(_) => (param.kind == K::U64, "a u64"),
            Arg::F32(_) => (param.kind == K::F32, "an f32"),
        };
        if !ok {
            return Err(launch_error(
                kernel,
                format!(
                    "argument {i} (`{} {}`) was given {given}",
                    param.kind.c_type(),
                    param.name
                ),
            ));
        }
    }
    Ok(())
}
