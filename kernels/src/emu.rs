//! The C interface of the CPU emulator's runtime (kernels/emu/runtime/), linked into this
//! crate as the static library `pixelrnn_emu` by the build script. `pixelrnn`'s
//! `backend::cuda::Emulator` is its only user; docs/emulator.md describes the emulator.

use std::ffi::{c_char, c_int, c_uint, c_void};

/// `PixelrnnEmuError::code` of an access outside an argument buffer.
pub const CODE_OUT_OF_BOUNDS: c_int = 2;

/// One argument's value; the runtime reads it with the kernel parameter's type.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(missing_docs)]
pub union ArgSlot {
    pub ptr: *mut c_void,
    pub i32: i32,
    pub u32: u32,
    pub i64: i64,
    pub u64: u64,
    pub f32: f32,
}

/// `PixelrnnEmuBuf`: one buffer argument of a launch, for the bounds check's diagnostics.
#[repr(C)]
pub struct EmuBuf {
    /// The buffer.
    pub ptr: *const c_void,
    /// Its length in elements of 4 bytes.
    pub len: usize,
    /// Whether it ends flush against a guard page.
    pub guarded: c_int,
    /// Its index in the kernel's parameter list.
    pub arg: c_int,
}

/// `PixelrnnEmuError`: what went wrong in a launch (code 0: nothing).
#[repr(C)]
pub struct EmuError {
    /// 0 ok, 1 see `message`, 2 ([`CODE_OUT_OF_BOUNDS`]) out of bounds of argument buffer
    /// `arg`, 3 unknown kernel.
    pub code: c_int,
    /// The argument (code 2).
    pub arg: c_int,
    /// 1 write, 0 read, -1 unknown (code 2).
    pub write: c_int,
    /// Element (4-byte) index of the access (code 2).
    pub index: i64,
    /// Whether `block` and `thread` say who failed.
    pub has_thread: c_int,
    /// `blockIdx` of the failing thread.
    pub block: [c_uint; 3],
    /// `threadIdx` of the failing thread.
    pub thread: [c_uint; 3],
    /// NUL-terminated message.
    pub message: [c_char; 1024],
}

impl Default for EmuError {
    fn default() -> Self {
        EmuError {
            code: 0,
            arg: 0,
            write: -1,
            index: 0,
            has_thread: 0,
            block: [0; 3],
            thread: [0; 3],
            message: [0; 1024],
        }
    }
}

/// `PixelrnnEmuSite`: the memory counters of one access site over a counted launch
/// (docs/emulator.md, "Memory counters"). A warp request is the k-th execution of the site by
/// the lanes of one warp.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EmuSite {
    /// The instruction address of the access (the return address of its counter callback).
    pub pc: u64,
    /// `pc` minus the load address of the binary that holds it (for `addr2line -e BINARY`).
    pub module_offset: u64,
    /// 0 global memory (an argument buffer), 1 shared memory.
    pub space: c_int,
    /// 0 load, 1 store, 2 atomic read-modify-write.
    pub op: c_int,
    /// The largest access of one lane, in bytes (4 for fp32, 16 for float4).
    pub access_bytes: c_uint,
    /// Shared memory: the largest bank-conflict degree of one request.
    pub max_degree: c_uint,
    /// Warp requests.
    pub requests: u64,
    /// Lane accesses (at most 32 per request).
    pub lane_accesses: u64,
    /// Bytes the lanes asked for, summed over lanes and requests.
    pub bytes: u64,
    /// Distinct bytes of each request, summed over requests.
    pub unique_bytes: u64,
    /// Global memory: distinct 32-byte sectors of each request, summed over requests.
    pub sectors: u64,
    /// Shared memory: the conflict degree of each request (the most distinct 4-byte words one
    /// of the 32 banks serves), summed over requests.
    pub wavefronts: u64,
    /// Shared memory: the conflict-free minimum, ceil(distinct words / 32), summed.
    pub ideal_wavefronts: u64,
    /// Global loads and atomics: the load rounds charged to this site, summed over warps
    /// (docs/emulator.md, "Load rounds").
    pub rounds: u64,
}

/// The counters of one counted launch, owned by the runtime until
/// [`pixelrnn_emu_counters_free`].
#[repr(C)]
pub struct EmuCounters {
    _opaque: [u8; 0],
}

extern "C" {
    /// A buffer of `len` floats: 128-byte aligned, or flush against a guard page (`guarded`).
    pub fn pixelrnn_emu_alloc(len: usize, guarded: c_int) -> *mut f32;
    /// Frees a buffer of [`pixelrnn_emu_alloc`] (same `len` and `guarded`).
    pub fn pixelrnn_emu_free(p: *mut f32, len: usize, guarded: c_int);
    /// The bytes of the static shared arena registered so far (every `PIXELRNN_SHARED`
    /// declaration that ran).
    pub fn pixelrnn_emu_static_shared_bytes() -> usize;
    /// The main program's static thread-local storage in bytes (its PT_TLS segment), which
    /// glibc takes from every thread's stack.
    pub fn pixelrnn_emu_static_tls_bytes() -> usize;
    /// The number of emulated kernels.
    pub fn pixelrnn_emu_count() -> usize;
    /// The name of emulated kernel `i` (a static NUL-terminated string).
    pub fn pixelrnn_emu_name(i: usize) -> *const c_char;
    /// Runs kernel `name` on `grid` x `block` threads; 0 on success, else `err` says why.
    /// With `counters_out` non-null the launch runs the counted build of the kernel and, on
    /// success, stores its counters there (free them with [`pixelrnn_emu_counters_free`]);
    /// then `sample_blocks` > 0 runs only that many blocks, evenly spread over the grid (the
    /// others do not run at all), and scales the counters up to the whole grid.
    #[allow(clippy::too_many_arguments)]
    pub fn pixelrnn_emu_launch(
        name: *const c_char,
        grid: *const c_uint,
        block: *const c_uint,
        cluster: *const c_uint,
        shared_bytes: c_uint,
        max_shared: c_uint,
        args: *mut *mut c_void,
        nargs: usize,
        bufs: *const EmuBuf,
        nbufs: usize,
        seed: u64,
        workers: c_uint,
        bounds_check: c_int,
        err: *mut EmuError,
        counters_out: *mut *mut EmuCounters,
        sample_blocks: u64,
    ) -> c_int;
    /// The sites of `c` (`*n` of them, ordered by address; valid until `c` is freed).
    pub fn pixelrnn_emu_counters_sites(c: *const EmuCounters, n: *mut usize) -> *const EmuSite;
    /// The distinct 32-byte sectors of global memory the launch read and wrote.
    pub fn pixelrnn_emu_counters_sectors(c: *const EmuCounters, read: *mut u64, written: *mut u64);
    /// The blocks that ran (and were counted) and the blocks of the grid.
    pub fn pixelrnn_emu_counters_blocks(c: *const EmuCounters, run: *mut u64, total: *mut u64);
    /// Synchronisation per warp, summed over the grid's warps (scaled like the sites): block
    /// barriers, cluster barriers, warp operations (docs/emulator.md, "Barriers and warp
    /// operations").
    pub fn pixelrnn_emu_counters_sync(
        c: *const EmuCounters,
        barriers: *mut u64,
        cluster_barriers: *mut u64,
        warp_ops: *mut u64,
    );
    /// Frees the counters of a launch.
    pub fn pixelrnn_emu_counters_free(c: *mut EmuCounters);
}
