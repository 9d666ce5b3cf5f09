//! The real GPU as an [`Executor`]: one cudarc context and stream, the embedded PTX modules
//! loaded on first use, launches in order on the stream.
//!
//! Debug builds (and any build with `PIXELRNN_SYNC_LAUNCHES=1`) synchronise after every launch
//! so that a faulting kernel is reported by name instead of at the next transfer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::executor::{check_opt_in, launch_error, Arg, Executor, LaunchCfg};
use crate::error::{Error, Result};

/// A CUDA device driven through cudarc.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    sync_launches: bool,
    compute_capability: (i32, i32),
}

fn driver_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Device(format!("CUDA {what}: {e}"))
}

impl Device {
    /// Opens device `ordinal`. Fails with a clear error (never panics) when there is no
    /// driver, no such device, or no kernels in this build.
    pub fn new(ordinal: usize) -> Result<Self> {
        let devices = crate::device::cuda_devices()
            .map_err(|why| Error::Unsupported(format!("no CUDA device: {why}")))?;
        let info = devices.get(ordinal).ok_or_else(|| {
            Error::Unsupported(format!(
                "no CUDA device {ordinal}: this machine has {} device(s)",
                devices.len()
            ))
        })?;
        if !crate::kernels::KERNELS_COMPILED {
            return Err(Error::Unsupported(
                "this build has no compiled CUDA kernels (no CUDA compiler at build time; run \
                 scripts/install-cuda-toolchain.sh and rebuild)"
                    .into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("context", e))?;
        // One stream: cudarc's per-buffer read/write events are not needed and cost a record
        // per argument per launch.
        // SAFETY: no buffer of this context exists yet, and all work goes to one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let sync_launches = cfg!(debug_assertions)
            || std::env::var("PIXELRNN_SYNC_LAUNCHES").is_ok_and(|v| v == "1");
        Ok(Device {
            ctx,
            stream,
            name: format!("cuda:{ordinal} {}", info.name),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
            sync_launches,
            compute_capability: info.compute_capability,
        })
    }

    /// The cudarc context (events for timing).
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launch goes to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    fn function(&self, kernel: &str) -> Result<CudaFunction> {
        let mut functions = self
            .functions
            .lock()
            .map_err(|_| Error::Device("kernel cache poisoned".into()))?;
        if let Some(f) = functions.get(kernel) {
            return Ok(f.clone());
        }
        let module = crate::kernels::modules()
            .iter()
            .find(|m| m.has_entry_point(kernel))
            .ok_or_else(|| launch_error(kernel, "no such kernel in this build's PTX"))?;
        let loaded = {
            let mut modules = self
                .modules
                .lock()
                .map_err(|_| Error::Device("module cache poisoned".into()))?;
            match modules.get(module.name) {
                Some(m) => Arc::clone(m),
                None => {
                    let m = self.load(module).map_err(|e| launch_error(kernel, e))?;
                    modules.insert(module.name, Arc::clone(&m));
                    m
                }
            }
        };
        let f = loaded
            .load_function(kernel)
            .map_err(|e| launch_error(kernel, format!("load_function: {e}")))?;
        functions.insert(kernel.to_string(), f.clone());
        Ok(f)
    }
}

impl Device {
    /// Loads `module`: its embedded sm_90 cubin on a device of exactly that architecture (no
    /// JIT, so a driver older than the PTX ISA of the build still works), else its PTX, which
    /// the driver JIT-compiles; if the first image fails to load the other is tried, and the
    /// error names both. `PIXELRNN_KERNEL_IMAGE=ptx` or `=cubin` forces one.
    fn load(
        &self,
        module: &crate::kernels::KernelModule,
    ) -> std::result::Result<Arc<CudaModule>, String> {
        let forced = std::env::var("PIXELRNN_KERNEL_IMAGE").ok();
        let cubin_fits = module.cubin.is_some()
            && format!(
                "sm_{}{}",
                self.compute_capability.0, self.compute_capability.1
            ) == crate::kernels::RESOURCE_REPORT_ARCH;
        let prefer_cubin = match forced.as_deref() {
            Some("ptx") => false,
            Some("cubin") => module.cubin.is_some(),
            _ => cubin_fits,
        };
        let from_cubin = || match module.cubin {
            Some(bytes) => self
                .ctx
                .load_module(Ptx::from_binary(bytes.to_vec()))
                .map_err(|e| {
                    format!(
                        "loading the {} cubin: {e}",
                        crate::kernels::RESOURCE_REPORT_ARCH
                    )
                }),
            None => Err("no cubin in this build".to_string()),
        };
        let from_ptx = || {
            self.ctx
                .load_module(Ptx::from_src(module.ptx))
                .map_err(|e| {
                    format!(
                        "loading the PTX (ISA {}, {}): {e}",
                        module.ptx_version().unwrap_or("?"),
                        module.ptx_target().unwrap_or("?")
                    )
                })
        };
        let first = if prefer_cubin {
            from_cubin()
        } else {
            from_ptx()
        };
        match first {
            Ok(m) => Ok(m),
            Err(e1) => {
                let retry = if prefer_cubin {
                    from_ptx()
                } else {
                    from_cubin()
                };
                retry.map_err(|e2| format!("module {}: {e1}; then {e2}", module.name))
            }
        }
    }
}

impl Executor for Device {
    type Buffer = CudaSlice<f32>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&self, len: usize) -> Result<CudaSlice<f32>> {
        // SAFETY: the caching allocator hands uninitialised buffers only to kernels that write
        // them in full, or zeroes them first.
        unsafe { self.stream.alloc::<f32>(len.max(1)) }
            .map_err(|e| driver_error(&format!("alloc of {len} floats"), e))
    }

    fn memset_zero(&self, buf: &mut CudaSlice<f32>, _len: usize) -> Result<()> {
        self.stream
            .memset_zeros(buf)
            .map_err(|e| driver_error("memset", e))
    }

    fn upload_into(&self, buf: &mut CudaSlice<f32>, data: &[f32]) -> Result<()> {
        let mut view = buf.slice_mut(0..data.len());
        self.stream
            .memcpy_htod(data, &mut view)
            .map_err(|e| driver_error("host-to-device copy", e))
    }

    fn download(&self, buf: &CudaSlice<f32>, len: usize) -> Result<Vec<f32>> {
        let view = buf.slice(0..len);
        self.stream
            .clone_dtoh(&view)
            .map_err(|e| driver_error("device-to-host copy", e))
    }

    fn address(&self, buf: &CudaSlice<f32>) -> u64 {
        // One stream orders every use, so the guard's event bookkeeping has nothing to add.
        let (ptr, _guard) = buf.device_ptr(&self.stream);
        ptr
    }

    fn copy(&self, src: &CudaSlice<f32>, dst: &mut CudaSlice<f32>, len: usize) -> Result<()> {
        let from = src.slice(0..len);
        let mut to = dst.slice_mut(0..len);
        self.stream
            .memcpy_dtod(&from, &mut to)
            .map_err(|e| driver_error("device-to-device copy", e))
    }

    fn launch_touching(
        &self,
        kernel: &str,
        cfg: &LaunchCfg,
        args: &[Arg<'_, Self>],
        _touched: &[&CudaSlice<f32>],
    ) -> Result<()> {
        super::executor::check_args(kernel, args)?;
        let f = self.function(kernel)?;
        let mut builder = self.stream.launch_builder(&f);
        for a in args {
            match a {
                Arg::Buf(b) => builder.arg(*b),
                Arg::I32(v) => builder.arg(v),
                Arg::U32(v) => builder.arg(v),
                Arg::I64(v) => builder.arg(v),
                Arg::U64(v) => builder.arg(v),
                Arg::F32(v) => builder.arg(v),
            };
        }
        if cfg.cluster_size() > 1 {
            return self.launch_cluster(kernel, &f, cfg, args);
        }
        let config = LaunchConfig {
            grid_dim: (cfg.grid[0], cfg.grid[1], cfg.grid[2]),
            block_dim: (cfg.block[0], cfg.block[1], cfg.block[2]),
            shared_mem_bytes: cfg.shared_bytes,
        };
        // SAFETY: the argument list was checked against the kernel's parameter list
        // (`check_args`), and the host side of each op sizes the buffers for the launch.
        unsafe { builder.launch(config) }.map_err(|e| launch_error(kernel, e))?;
        if self.sync_launches {
            self.stream
                .synchronize()
                .map_err(|e| launch_error(kernel, format!("failed while running: {e}")))?;
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| driver_error("synchronize", e))
    }

    fn opt_in_shared(&self, kernel: &str, bytes: u32) -> Result<()> {
        check_opt_in(kernel, bytes)?;
        let f = self.function(kernel)?;
        f.set_attribute(
            cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            bytes as i32,
        )
        .map_err(|e| launch_error(kernel, format!("opting in to {bytes} bytes of shared memory: {e}")))
    }
}

impl Device {
    /// A launch in thread-block clusters: cudarc 0.19 has no safe API for launch attributes,
    /// so this calls `cuLaunchKernelEx` with `CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION`
    /// directly, with the argument array in cuLaunchKernel's convention.
    fn launch_cluster(
        &self,
        kernel: &str,
        f: &CudaFunction,
        cfg: &LaunchCfg,
        args: &[Arg<'_, Self>],
    ) -> Result<()> {
        use cudarc::driver::sys;
        use cudarc::driver::DevicePtr;
        /// One argument's value, which the argument array points to.
        #[repr(C)]
        #[derive(Clone, Copy)]
        union Slot {
            ptr: sys::CUdeviceptr,
            i32: i32,
            u32: u32,
            i64: i64,
            u64: u64,
            f32: f32,
        }
        let mut guards = Vec::new();
        let mut slots: Vec<Slot> = args
            .iter()
            .map(|a| match a {
                Arg::Buf(b) => {
                    let (ptr, guard) = b.device_ptr(&self.stream);
                    guards.push(guard);
                    Slot { ptr }
                }
                Arg::I32(v) => Slot { i32: *v },
                Arg::U32(v) => Slot { u32: *v },
                Arg::I64(v) => Slot { i64: *v },
                Arg::U64(v) => Slot { u64: *v },
                Arg::F32(v) => Slot { f32: *v },
            })
            .collect();
        let mut params: Vec<*mut std::ffi::c_void> =
            slots.iter_mut().map(|s| (s as *mut Slot).cast()).collect();
        // SAFETY: a zeroed attribute is a valid bit pattern (plain integers and a union).
        let mut attr: sys::CUlaunchAttribute = unsafe { std::mem::zeroed() };
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attr.value.clusterDim.x = cfg.cluster[0];
        attr.value.clusterDim.y = cfg.cluster[1];
        attr.value.clusterDim.z = cfg.cluster[2];
        let config = sys::CUlaunchConfig {
            gridDimX: cfg.grid[0],
            gridDimY: cfg.grid[1],
            gridDimZ: cfg.grid[2],
            blockDimX: cfg.block[0],
            blockDimY: cfg.block[1],
            blockDimZ: cfg.block[2],
            sharedMemBytes: cfg.shared_bytes,
            hStream: self.stream.cu_stream(),
            attrs: &mut attr,
            numAttrs: 1,
        };
        self.ctx
            .bind_to_thread()
            .map_err(|e| launch_error(kernel, e))?;
        // SAFETY: the argument list was checked against the kernel's parameter list
        // (`check_args`); `params` points at `slots`, which outlive the call, as do the
        // buffers (borrowed by `args`); the attribute array has the one element it says.
        let code = unsafe {
            sys::cuLaunchKernelEx(
                &config,
                f.cu_function(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        drop(guards);
        code.result()
            .map_err(|e| launch_error(kernel, format!("cluster launch: {e}")))?;
        if self.sync_launches {
            self.stream
                .synchronize()
                .map_err(|e| launch_error(kernel, format!("failed while running: {e}")))?;
        }
        Ok(())
    }
}
