//! NVRTC through libloading: cudarc's loader only searches the dynamic linker's path, which a
//! build script cannot extend for itself, and the toolchain folder is not on it.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

type NvrtcProgram = *mut c_void;
type NvrtcResult = c_int;

/// A loaded libnvrtc: the entry points this build uses.
pub struct Nvrtc {
    // Keeps the function pointers below valid.
    _lib: libloading::Library,
    /// `nvrtcVersion`: (major, minor).
    pub version: (i32, i32),
    get_error_string: unsafe extern "C" fn(NvrtcResult) -> *const c_char,
    create_program: unsafe extern "C" fn(
        *mut NvrtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> NvrtcResult,
    compile_program: unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> NvrtcResult,
    get_program_log_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> NvrtcResult,
    get_program_log: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> NvrtcResult,
    get_ptx_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> NvrtcResult,
    get_ptx: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> NvrtcResult,
    destroy_program: unsafe extern "C" fn(*mut NvrtcProgram) -> NvrtcResult,
}

impl Nvrtc {
    /// Loads `name` (a path, or a name for the dynamic linker) and checks `nvrtcVersion`.
    pub fn load(name: &str) -> Result<Nvrtc, String> {
        // SAFETY: loading libnvrtc runs only its (benign) initialisers; every symbol is looked up
        // with the signature of nvrtc.h, which has been stable since CUDA 11.
        unsafe {
            let lib = libloading::Library::new(name).map_err(|e| e.to_string())?;
            macro_rules! sym {
                ($name:literal) => {
                    *lib.get($name).map_err(|e| e.to_string())?
                };
            }
            let version_fn: unsafe extern "C" fn(*mut c_int, *mut c_int) -> NvrtcResult =
                sym!("nvrtcVersion");
            let (mut major, mut minor) = (0, 0);
            if version_fn(&mut major, &mut minor) != 0 {
                return Err("nvrtcVersion failed".into());
            }
            Ok(Nvrtc {
                version: (major, minor),
                get_error_string: sym!("nvrtcGetErrorString"),
                create_program: sym!("nvrtcCreateProgram"),
                compile_program: sym!("nvrtcCompileProgram"),
                get_program_log_size: sym!("nvrtcGetProgramLogSize"),
                get_program_log: sym!("nvrtcGetProgramLog"),
                get_ptx_size: sym!("nvrtcGetPTXSize"),
                get_ptx: sym!("nvrtcGetPTX"),
                destroy_program: sym!("nvrtcDestroyProgram"),
                _lib: lib,
            })
        }
    }

    fn error(&self, what: &str, code: NvrtcResult) -> String {
        // SAFETY: nvrtcGetErrorString returns a static C string for any code.
        let text = unsafe {
            let p = (self.get_error_string)(code);
            if p.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        format!("{what} failed: {text} ({code})")
    }

    /// Returns (ptx, log) on success, the log on failure.
    pub fn compile(
        &self,
        source: &str,
        file_name: &str,
        options: &[String],
    ) -> Result<(String, String), String> {
        let source = CString::new(source).map_err(|_| "source contains a NUL byte")?;
        let file_name = CString::new(file_name).map_err(|_| "file name contains a NUL byte")?;
        let options: Vec<CString> = options
            .iter()
            .map(|o| CString::new(o.as_str()).map_err(|_| "option contains a NUL byte"))
            .collect::<Result<_, _>>()?;
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();

        // SAFETY: every pointer passed lives until the end of this block; the program is
        // destroyed on every path after it was created.
        unsafe {
            let mut prog: NvrtcProgram = std::ptr::null_mut();
            let code = (self.create_program)(
                &mut prog,
                source.as_ptr(),
                file_name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            );
            if code != 0 {
                return Err(self.error("nvrtcCreateProgram", code));
            }
            let compile_code =
                (self.compile_program)(prog, option_ptrs.len() as c_int, option_ptrs.as_ptr());
            let mut log_size = 0usize;
            let mut log = String::new();
            if (self.get_program_log_size)(prog, &mut log_size) == 0 && log_size > 1 {
                let mut buf = vec![0u8; log_size];
                if (self.get_program_log)(prog, buf.as_mut_ptr().cast()) == 0 {
                    log = CStr::from_bytes_until_nul(&buf)
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                }
            }
            let result = if compile_code != 0 {
                Err(format!(
                    "{log}\n{}\noptions: {}",
                    self.error("nvrtcCompileProgram", compile_code),
                    options
                        .iter()
                        .map(|o| o.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            } else {
                let mut ptx_size = 0usize;
                let code = (self.get_ptx_size)(prog, &mut ptx_size);
                if code != 0 {
                    Err(self.error("nvrtcGetPTXSize", code))
                } else {
                    let mut buf = vec![0u8; ptx_size.max(1)];
                    let code = (self.get_ptx)(prog, buf.as_mut_ptr().cast());
                    if code != 0 {
                        Err(self.error("nvrtcGetPTX", code))
                    } else {
                        let ptx = CStr::from_bytes_until_nul(&buf)
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        Ok((ptx, log))
                    }
                }
            };
            (self.destroy_program)(&mut prog);
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_not_a_crash() {
        let err = Nvrtc::load("/nonexistent/libnvrtc.so.12")
            .err()
            .expect("no such library");
        assert!(!err.is_empty());
    }

    /// Compiles a one-line kernel when some libnvrtc is loadable (the CI toolchain).
    #[test]
    fn compiles_a_kernel_when_nvrtc_is_present() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let toolchain =
            crate::toolchain::Toolchain::locate(std::env::var_os("PIXELRNN_CUDA_TOOLCHAIN"), &repo);
        let lib = toolchain.nvrtc_lib().join("libnvrtc.so.12");
        let Ok(nvrtc) = Nvrtc::load(&lib.display().to_string()) else {
            eprintln!("no {}: skipped", lib.display());
            return;
        };
        assert!(nvrtc.version.0 >= 11, "{:?}", nvrtc.version);
        let src = "extern \"C\" __global__ void probe(float* x) { x[threadIdx.x] = 1.0f; }\n";
        let options = ["--gpu-architecture=compute_80".to_string()];
        let (ptx, _log) = nvrtc.compile(src, "probe.cu", &options).expect("compiles");
        assert!(ptx.contains(".entry probe("), "{ptx}");
        let err = nvrtc
            .compile("this is not CUDA", "bad.cu", &options)
            .expect_err("does not compile");
        assert!(err.contains("nvrtcCompileProgram failed"), "{err}");
        assert!(
            err.contains("options: --gpu-architecture=compute_80"),
            "{err}"
        );
    }
}
