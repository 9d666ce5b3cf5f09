//! The CPU emulation of the CUDA execution model: the very kernels of `kernels/*.cu`, compiled
//! for the host by the kernels crate's build script (g++, `PIXELRNN_EMU`), run by the runtime
//! of `kernels/emu/`.
//!
//! One fiber per GPU thread; the fibers of a block run on one host thread in an order drawn
//! from [`EmuOptions::seed`] between synchronisation points; `__syncthreads()` is a barrier
//! across the block's fibers, warp intrinsics exchange values in lockstep across the lanes of
//! their mask; blocks run on [`EmuOptions::workers`] host threads. With
//! [`EmuOptions::bounds_check`] every buffer ends flush against a guard page, and an access
//! past its end is reported with the kernel, the buffer, the index, the block and the thread.
//! A deadlock (a barrier or warp operation that cannot complete) is an error, not a hang.
//!
//! Memory counters (opt-in: [`Emulator::with_counters`], [`Emulator::set_counters`], or
//! `PIXELRNN_EMU_COUNTERS=1` in the environment): every launch then runs the instrumented copy
//! of its kernel and records, per access site, warp requests, 32-byte sectors, bytes and
//! shared-memory bank conflicts ([`LaunchCounters`], [`SiteCounters`], taken with
//! [`Emulator::take_counters`]). See docs/emulator.md.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::executor::{check_args, check_opt_in, Arg, Executor, LaunchCfg};
use crate::error::{Error, Result};
// The C interface of kernels/emu/runtime/, linked by the kernels crate.
use crate::kernels::emu as ffi;

pub use super::emu_counters::{AccessOp, LaunchCounters, MemSpace, SiteCounters, SyncCounters};

/// Options of the emulator.
#[derive(Clone, Copy, Debug)]
pub struct EmuOptions {
    /// Seed of the order in which the threads of a block run between barriers.
    pub seed: u64,
    /// Host threads running blocks in parallel.
    pub workers: usize,
    /// Guard pages around every buffer: an out-of-bounds access is reported with the kernel,
    /// the thread and the index.
    pub bounds_check: bool,
}

impl Default for EmuOptions {
    fn default() -> Self {
        EmuOptions {
            seed: 0,
            workers: 2,
            bounds_check: false,
        }
    }
}

/// The environment variable that turns the memory counters on for every [`Emulator`] made
/// while it is `1`.
pub const COUNTERS_ENV: &str = "PIXELRNN_EMU_COUNTERS";

/// Runs `kernels/*.cu` on the CPU under an emulation of CUDA's execution model.
pub struct Emulator {
    options: EmuOptions,
    counting: AtomicBool,
    sample_blocks: AtomicU64,
    counted_launches: AtomicU64,
    counters: Mutex<Vec<LaunchCounters>>,
    /// The dynamic shared memory each kernel opted in to ([`Executor::opt_in_shared`]).
    shared_opt_in: Mutex<HashMap<String, u32>>,
}

impl Emulator {
    /// An emulator with `options` (`workers` 0 counts as 1). Memory counters are on when
    /// `PIXELRNN_EMU_COUNTERS=1` ([`COUNTERS_ENV`]).
    pub fn new(options: EmuOptions) -> Result<Self> {
        let counting = std::env::var(COUNTERS_ENV).is_ok_and(|v| v == "1");
        Ok(Emulator {
            options,
            counting: AtomicBool::new(counting),
            sample_blocks: AtomicU64::new(0),
            counted_launches: AtomicU64::new(0),
            counters: Mutex::new(Vec::new()),
            shared_opt_in: Mutex::new(HashMap::new()),
        })
    }

    /// This emulator with memory counters on or off.
    pub fn with_counters(self, on: bool) -> Self {
        self.set_counters(on);
        self
    }

    /// Turns memory counters on or off for the launches that follow.
    pub fn set_counters(&self, on: bool) {
        self.counting.store(on, Ordering::Relaxed);
    }

    /// Profiling at large shapes: with counters on, each launch runs only `blocks` of its
    /// blocks, evenly spread over the grid, and its counters are scaled up to the whole grid
    /// ([`LaunchCounters::blocks_run`]); `None` runs every block. The skipped blocks do not run
    /// at all, so **the results are wrong** (their outputs are never written): for a profile,
    /// never for a result. Efficiency and conflict figures are those of the sampled blocks.
    pub fn set_block_sample(&self, blocks: Option<u64>) {
        self.sample_blocks
            .store(blocks.unwrap_or(0), Ordering::Relaxed);
    }

    /// The block sample of [`Emulator::set_block_sample`] (`None`: every block).
    pub fn block_sample(&self) -> Option<u64> {
        Some(self.sample_blocks.load(Ordering::Relaxed)).filter(|&b| b > 0)
    }

    /// Whether launches record memory counters.
    pub fn counters_enabled(&self) -> bool {
        self.counting.load(Ordering::Relaxed)
    }

    /// The counters of every counted launch since the last call, in launch order (the
    /// record is emptied).
    pub fn take_counters(&self) -> Vec<LaunchCounters> {
        std::mem::take(&mut *self.counters.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Its options.
    pub fn options(&self) -> EmuOptions {
        self.options
    }

    /// Bytes of static shared memory the emulator holds per worker for the `PIXELRNN_SHARED`
    /// arrays that have run so far (kernels/common.cuh; 128-byte aligned each).
    pub fn static_shared_bytes() -> usize {
        // SAFETY: reads an atomic counter of the runtime.
        unsafe { ffi::pixelrnn_emu_static_shared_bytes() }
    }

    /// The program's static thread-local storage in bytes, which glibc takes from every
    /// thread's stack: the emulator keeps its shared arrays out of it (kernels/emu/cuda_emu.h).
    pub fn static_tls_bytes() -> usize {
        // SAFETY: walks the loaded objects' program headers (dl_iterate_phdr), read-only.
        unsafe { ffi::pixelrnn_emu_static_tls_bytes() }
    }

    /// Names of the kernels this build can emulate (those of `kernels/*.cu` not marked
    /// GPU-only, plus the emulator's self-test kernels).
    pub fn kernels() -> Vec<String> {
        // SAFETY: the runtime's table is immutable; names are static NUL-terminated strings.
        unsafe {
            (0..ffi::pixelrnn_emu_count())
                .filter_map(|i| {
                    let p = ffi::pixelrnn_emu_name(i);
                    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
                })
                .collect()
        }
    }
}

/// An emulator allocation of `len` floats (guarded by PROT_NONE pages when it was made with
/// bounds checking on).
pub struct EmuBuffer {
    ptr: NonNull<f32>,
    len: usize,
    guarded: bool,
}

// SAFETY: the buffer is plain host memory owned by this value; kernels and copies reach it only
// through the executor's methods, which the CUDA stream model orders (launches are synchronous).
unsafe impl Send for EmuBuffer {}
// SAFETY: as above; shared references only read it outside of launches.
unsafe impl Sync for EmuBuffer {}

impl EmuBuffer {
    /// Number of `f32` elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: ptr points to len initialised-or-not floats (any bit pattern is an f32) that
        // this value owns; no launch runs while a Rust reference exists (launch is synchronous).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in as_slice, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for EmuBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr came from pixelrnn_emu_alloc with this len and mode, freed once.
        unsafe { ffi::pixelrnn_emu_free(self.ptr.as_ptr(), self.len, c_int::from(self.guarded)) }
    }
}

fn check_len(what: &str, len: usize, have: usize) -> Result<()> {
    if len > have {
        return Err(Error::Device(format!(
            "cuda emulator: {what} of {len} elements on a buffer of {have}"
        )));
    }
    Ok(())
}

impl Executor for Emulator {
    type Buffer = EmuBuffer;

    fn name(&self) -> String {
        format!(
            "cuda emulator ({} workers, seed {}{}{})",
            self.options.workers.max(1),
            self.options.seed,
            if self.options.bounds_check {
                ", bounds checked"
            } else {
                ""
            },
            if self.counters_enabled() {
                ", memory counters"
            } else {
                ""
            }
        )
    }

    fn alloc(&self, len: usize) -> Result<EmuBuffer> {
        let guarded = self.options.bounds_check;
        // SAFETY: plain allocation; null is handled below.
        let p = unsafe { ffi::pixelrnn_emu_alloc(len, c_int::from(guarded)) };
        let ptr = NonNull::new(p).ok_or_else(|| {
            Error::Device(format!(
                "cuda emulator: out of host memory for {len} floats"
            ))
        })?;
        let mut buf = EmuBuffer { ptr, len, guarded };
        if self.block_sample().is_some() {
            // Under block sampling the skipped blocks never write their outputs: zeros (not
            // whatever the heap held, possibly NaN patterns) keep the step's later arithmetic
            // finite, so the optimizer's launches are reached and counted.
            buf.as_mut_slice().fill(0.0);
        }
        Ok(buf)
    }

    fn memset_zero(&self, buf: &mut EmuBuffer, len: usize) -> Result<()> {
        check_len("memset", len, buf.len)?;
        buf.as_mut_slice()[..len].fill(0.0);
        Ok(())
    }

    fn upload_into(&self, buf: &mut EmuBuffer, data: &[f32]) -> Result<()> {
        check_len("upload", data.len(), buf.len)?;
        buf.as_mut_slice()[..data.len()].copy_from_slice(data);
        Ok(())
    }

    fn download(&self, buf: &EmuBuffer, len: usize) -> Result<Vec<f32>> {
        check_len("download", len, buf.len)?;
        Ok(buf.as_slice()[..len].to_vec())
    }

    fn address(&self, buf: &EmuBuffer) -> u64 {
        // Emulated kernels run on the host: a device address is the host address.
        buf.ptr.as_ptr() as usize as u64
    }

    fn copy(&self, src: &EmuBuffer, dst: &mut EmuBuffer, len: usize) -> Result<()> {
        check_len("copy from", len, src.len)?;
        check_len("copy to", len, dst.len)?;
        dst.as_mut_slice()[..len].copy_from_slice(&src.as_slice()[..len]);
        Ok(())
    }

    fn launch_touching(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        args: &[Arg<'_, Self>],
        touched: &[&EmuBuffer],
    ) -> Result<()> {
        check_args(kernel, args)?;
        let sig = crate::kernels::launch_signature(kernel)
            .ok_or_else(|| Error::Device(format!("emulated kernel {kernel}: no such kernel")))?;
        if !sig.emulated {
            return Err(Error::Unsupported(format!(
                "kernel {kernel} is GPU-only (`// pixelrnn: gpu-only` in kernels/{}.cu): the \
                 CUDA emulator cannot run it; run it on a device",
                sig.module
            )));
        }
        let name = CString::new(kernel)
            .map_err(|_| Error::Device(format!("kernel name {kernel:?} contains NUL")))?;

        // cuLaunchKernel convention: one pointer per argument, to the argument's value.
        let mut slots: Vec<ffi::ArgSlot> = Vec::with_capacity(args.len());
        let mut bufs = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            slots.push(match arg {
                Arg::Buf(b) => {
                    bufs.push(ffi::EmuBuf {
                        ptr: b.ptr.as_ptr().cast_const().cast(),
                        len: b.len,
                        guarded: c_int::from(b.guarded),
                        arg: i as c_int,
                    });
                    ffi::ArgSlot {
                        ptr: b.ptr.as_ptr().cast(),
                    }
                }
                Arg::I32(v) => ffi::ArgSlot { i32: *v },
                Arg::U32(v) => ffi::ArgSlot { u32: *v },
                Arg::I64(v) => ffi::ArgSlot { i64: *v },
                Arg::U64(v) => ffi::ArgSlot { u64: *v },
                Arg::F32(v) => ffi::ArgSlot { f32: *v },
            });
        }
        bufs.extend(touched.iter().map(|b| ffi::EmuBuf {
            ptr: b.ptr.as_ptr().cast_const().cast(),
            len: b.len,
            guarded: c_int::from(b.guarded),
            arg: -1,
        }));
        let mut arg_ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| (s as *mut ffi::ArgSlot).cast())
            .collect();
        let mut err = ffi::EmuError::default();
        let workers = u32::try_from(self.options.workers.max(1)).unwrap_or(u32::MAX);
        let counting = self.counters_enabled();
        let max_shared = self
            .shared_opt_in
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kernel)
            .copied()
            .unwrap_or(0); // 0: not opted in (the runtime's limits, c_api.cpp)
        let mut counters: *mut ffi::EmuCounters = std::ptr::null_mut();
        // SAFETY: every pointer passed lives until the call returns (the launch is
        // synchronous); buffer arguments point to live allocations of the lengths given in
        // `bufs`; the signature check above made the argument count and kinds match.
        let code = unsafe {
            ffi::pixelrnn_emu_launch(
                name.as_ptr(),
                cfg.grid.as_ptr(),
                cfg.block.as_ptr(),
                cfg.cluster.as_ptr(),
                cfg.shared_bytes,
                max_shared,
                arg_ptrs.as_mut_ptr(),
                arg_ptrs.len(),
                bufs.as_ptr(),
                bufs.len(),
                self.options.seed,
                workers,
                c_int::from(self.options.bounds_check),
                &mut err,
                if counting {
                    &mut counters
                } else {
                    std::ptr::null_mut()
                },
                self.sample_blocks.load(Ordering::Relaxed),
            )
        };
        if !counters.is_null() {
            let record = self.read_counters(kernel, cfg, counters);
            self.counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record);
        }
        if code == 0 {
            return Ok(());
        }
        Err(Error::Device(describe_error(kernel, sig, args, &err)))
    }

    fn synchronize(&self) -> Result<()> {
        // Launches run to completion before they return.
        Ok(())
    }

    fn opt_in_shared(&self, kernel: &str, bytes: u32) -> Result<()> {
        check_opt_in(kernel, bytes)?;
        if crate::kernels::launch_signature(kernel).is_none() {
            return Err(Error::Device(format!(
                "emulated kernel {kernel}: no such kernel"
            )));
        }
        self.shared_opt_in
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kernel.to_string(), bytes);
        Ok(())
    }
}

impl Emulator {
    /// Copies the runtime's counters of one launch into a [`LaunchCounters`] and frees them.
    fn read_counters(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        c: *mut ffi::EmuCounters,
    ) -> LaunchCounters {
        let mut n = 0usize;
        let (mut read, mut written) = (0u64, 0u64);
        let (mut run, mut total) = (0u64, 0u64);
        let mut sync = SyncCounters::default();
        // SAFETY: `c` came from a successful counted launch and is freed exactly once, here,
        // after its sites were copied.
        let raw: Vec<ffi::EmuSite> = unsafe {
            let p = ffi::pixelrnn_emu_counters_sites(c, &mut n);
            ffi::pixelrnn_emu_counters_sectors(c, &mut read, &mut written);
            ffi::pixelrnn_emu_counters_blocks(c, &mut run, &mut total);
            ffi::pixelrnn_emu_counters_sync(
                c,
                &mut sync.barriers,
                &mut sync.cluster_barriers,
                &mut sync.warp_ops,
            );
            let sites = if n == 0 || p.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, n).to_vec()
            };
            ffi::pixelrnn_emu_counters_free(c);
            sites
        };
        let sites = raw
            .iter()
            .enumerate()
            .map(|(index, s)| SiteCounters {
                index,
                pc: s.pc,
                module_offset: s.module_offset,
                space: if s.space == 1 {
                    MemSpace::Shared
                } else {
                    MemSpace::Global
                },
                op: match s.op {
                    0 => AccessOp::Load,
                    1 => AccessOp::Store,
                    _ => AccessOp::Atomic,
                },
                access_bytes: s.access_bytes,
                requests: s.requests,
                lane_accesses: s.lane_accesses,
                bytes: s.bytes,
                unique_bytes: s.unique_bytes,
                sectors: s.sectors,
                wavefronts: s.wavefronts,
                ideal_wavefronts: s.ideal_wavefronts,
                max_conflict: s.max_degree,
                rounds: s.rounds,
            })
            .collect();
        LaunchCounters {
            kernel: kernel.to_string(),
            launch: self.counted_launches.fetch_add(1, Ordering::Relaxed),
            grid: cfg.grid,
            block: cfg.block,
            shared_bytes: cfg.shared_bytes,
            flops: cfg.flops,
            blocks: total,
            blocks_run: run,
            sectors_read: read,
            sectors_written: written,
            sites,
            sync,
        }
    }
}

/// The message of a failed emulated launch.
fn describe_error(
    kernel: &str,
    sig: &crate::kernels::KernelSignature,
    args: &[Arg<'_, Emulator>],
    err: &ffi::EmuError,
) -> String {
    let message = {
        let bytes: Vec<u8> = err
            .message
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    if err.code != ffi::CODE_OUT_OF_BOUNDS {
        return format!("emulated kernel {kernel}: {message}");
    }
    let i = err.arg as usize;
    let param = sig.params.get(i).map_or("?", |p| p.name);
    let len = match args.get(i) {
        Some(Arg::Buf(b)) => b.len,
        _ => 0,
    };
    let access = match err.write {
        1 => "write to",
        0 => "read of",
        _ => "access to",
    };
    let [bx, by, bz] = err.block;
    let [tx, ty, tz] = err.thread;
    format!(
        "emulated kernel {kernel}: out-of-bounds {access} buffer #{i} (`{param}`, {len} floats) \
         at index {} by block ({bx}, {by}, {bz}) thread ({tx}, {ty}, {tz})",
        err.index
    )
}
