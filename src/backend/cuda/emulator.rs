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
//! See docs/emulator.md.

use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr::NonNull;

use super::executor::{check_args, Arg, Executor, LaunchCfg};
use crate::error::{Error, Result};
// The C interface of kernels/emu/runtime/, linked by the kernels crate.
use crate::kernels::emu as ffi;

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

/// Runs `kernels/*.cu` on the CPU under an emulation of CUDA's execution model.
pub struct Emulator {
    options: EmuOptions,
}

impl Emulator {
    /// An emulator with `options` (`workers` 0 counts as 1).
    pub fn new(options: EmuOptions) -> Result<Self> {
        Ok(Emulator { options })
    }

    /// Its options.
    pub fn options(&self) -> EmuOptions {
        self.options
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
            "cuda emulator ({} workers, seed {}{})",
            self.options.workers.max(1),
            self.options.seed,
            if self.options.bounds_check {
                ", bounds checked"
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
        Ok(EmuBuffer { ptr, len, guarded })
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

    fn copy(&self, src: &EmuBuffer, dst: &mut EmuBuffer, len: usize) -> Result<()> {
        check_len("copy from", len, src.len)?;
        check_len("copy to", len, dst.len)?;
        dst.as_mut_slice()[..len].copy_from_slice(&src.as_slice()[..len]);
        Ok(())
    }

    fn launch(&self, kernel: &str, cfg: &LaunchCfg, args: &[Arg<'_, Self>]) -> Result<()> {
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
        let mut arg_ptrs: Vec<*mut c_void> = slots
            .iter_mut()
            .map(|s| (s as *mut ffi::ArgSlot).cast())
            .collect();
        let mut err = ffi::EmuError::default();
        let workers = u32::try_from(self.options.workers.max(1)).unwrap_or(u32::MAX);
        // SAFETY: every pointer passed lives until the call returns (the launch is
        // synchronous); buffer arguments point to live allocations of the lengths given in
        // `bufs`; the signature check above made the argument count and kinds match.
        let code = unsafe {
            ffi::pixelrnn_emu_launch(
                name.as_ptr(),
                cfg.grid.as_ptr(),
                cfg.block.as_ptr(),
                cfg.shared_bytes,
                arg_ptrs.as_mut_ptr(),
                arg_ptrs.len(),
                bufs.as_ptr(),
                bufs.len(),
                self.options.seed,
                workers,
                c_int::from(self.options.bounds_check),
                &mut err,
            )
        };
        if code == 0 {
            return Ok(());
        }
        Err(Error::Device(describe_error(kernel, sig, args, &err)))
    }

    fn synchronize(&self) -> Result<()> {
        // Launches run to completion before they return.
        Ok(())
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
