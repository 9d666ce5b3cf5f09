//! CUDA detection at run time, without panicking on machines that have no GPU or no driver.
//!
//! cudarc loads `libcuda` dynamically and panics if it is absent, so every query first checks
//! `cudarc::driver::sys::is_culib_present()`. The result is computed once per process.

use std::sync::OnceLock;

use cudarc::driver::{result, sys};

/// One CUDA device as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    /// The device ordinal (`cuDeviceGet`), 0-based.
    pub ordinal: usize,
    /// The marketing name: `"NVIDIA H200"`.
    pub name: String,
    /// Total global memory in bytes.
    pub total_memory_bytes: usize,
    /// (major, minor): `(9, 0)` for Hopper.
    pub compute_capability: (i32, i32),
}

/// The CUDA devices of this machine.
///
/// Never panics: `Err(reason)` when libcuda is missing (no NVIDIA driver), when the driver
/// fails to initialise, or when no device is found. The answer is cached for the process.
pub fn cuda_devices() -> Result<Vec<CudaDeviceInfo>, String> {
    static DEVICES: OnceLock<Result<Vec<CudaDeviceInfo>, String>> = OnceLock::new();
    DEVICES.get_or_init(detect).clone()
}

/// Whether at least one CUDA device is usable (shorthand for `cuda_devices().is_ok()`).
pub fn cuda_available() -> bool {
    cuda_devices().is_ok()
}

/// The CUDA version the driver supports, `(major, minor)` (e.g. `(12, 4)`), or `None` without a
/// usable driver. A driver older than the PTX ISA of this build cannot JIT the PTX; the CUDA
/// backend then loads the embedded sm_90 cubin where the device allows.
pub fn driver_version() -> Option<(i32, i32)> {
    cuda_devices().ok()?;
    let mut v: std::ffi::c_int = 0;
    // SAFETY: the driver library is present and initialised (cuda_devices succeeded); the call
    // only writes the version integer.
    let rc = unsafe { sys::cuDriverGetVersion(&mut v) };
    (rc == sys::CUresult::CUDA_SUCCESS).then_some((v / 1000, (v % 1000) / 10))
}

fn detect() -> Result<Vec<CudaDeviceInfo>, String> {
    // SAFETY: only tries to dlopen the candidate library names; nothing is called.
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver: libcuda.so could not be loaded".to_string());
    }
    // The library is there, but a driver older than the bindings may lack a symbol, which
    // cudarc reports by panicking: turn that into an error too.
    std::panic::catch_unwind(query_devices).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown error");
        Err(format!("the CUDA driver library is unusable: {what}"))
    })
}

fn query_devices() -> Result<Vec<CudaDeviceInfo>, String> {
    result::init().map_err(|e| format!("cuInit failed: {e}"))?;
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e}"))?;
    if count <= 0 {
        return Err("the CUDA driver found no device".to_string());
    }
    (0..count)
        .map(|ordinal| {
            let dev = result::device::get(ordinal)
                .map_err(|e| format!("cuDeviceGet({ordinal}) failed: {e}"))?;
            let name = result::device::get_name(dev)
                .map_err(|e| format!("cuDeviceGetName({ordinal}) failed: {e}"))?;
            let attribute = |attr, what: &str| {
                // SAFETY: `dev` was returned by cuDeviceGet above.
                unsafe { result::device::get_attribute(dev, attr) }
                    .map_err(|e| format!("{what} of device {ordinal}: {e}"))
            };
            let major = attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                "compute capability",
            )?;
            let minor = attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                "compute capability",
            )?;
            // SAFETY: `dev` was returned by cuDeviceGet above.
            let total_memory_bytes = unsafe { result::device::total_mem(dev) }
                .map_err(|e| format!("cuDeviceTotalMem of device {ordinal}: {e}"))?;
            Ok(CudaDeviceInfo {
                ordinal: ordinal as usize,
                name,
                total_memory_bytes,
                compute_capability: (major, minor),
            })
        })
        .collect()
}
