//! The CUDA kernels embedded in this build: one PTX module per `kernels/<name>.cu`.
//!
//! `build.rs` compiles every kernel source to PTX for the virtual architecture [`PTX_ARCH`]
//! (nvcc or NVRTC, see its header) and generates the registry included below. A build without
//! a CUDA compiler has no modules ([`KERNELS_COMPILED`] is false) and runs on the CPU only;
//! `cfg(pixelrnn_kernels)` is set exactly when kernels were compiled.
//!
//! The host side (`backend::cuda`) loads [`KernelModule::ptx`] with the driver, which
//! JIT-compiles it for the device, and looks kernels up by their entry-point names.

/// One compiled kernel source file, `kernels/<name>.cu`, as a PTX module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelModule {
    /// The source file's stem, which is also the op name: `"softmax_nll"`.
    pub name: &'static str,
    /// The PTX text (targets [`PTX_ARCH`]).
    pub ptx: &'static str,
    /// The kernels (`.entry` names) the module defines, in PTX order:
    /// `["softmax_nll_fwd_bwd_v1"]`.
    pub entry_points: &'static [&'static str],
    /// The output of `ptxas -arch=sm_90 -v` on this PTX (registers, spills, shared memory per
    /// kernel), when ptxas was available at build time.
    pub resource_report: Option<&'static str>,
}

impl KernelModule {
    /// Whether the module defines the kernel `entry`.
    pub fn has_entry_point(&self, entry: &str) -> bool {
        self.entry_points.contains(&entry)
    }

    /// The PTX ISA version from the `.version` directive (`"8.8"` from NVRTC 12.9).
    pub fn ptx_version(&self) -> Option<&'static str> {
        ptx_directive(self.ptx, ".version")
    }

    /// The PTX target from the `.target` directive (`"sm_80"` for compute_80).
    pub fn ptx_target(&self) -> Option<&'static str> {
        ptx_directive(self.ptx, ".target")
    }
}

/// The first word after `directive` at the start of a PTX line.
fn ptx_directive(ptx: &'static str, directive: &str) -> Option<&'static str> {
    ptx.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(directive)?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        rest.split(|c: char| c.is_whitespace() || c == ',')
            .find(|w| !w.is_empty())
    })
}

// Defines GENERATED_COMPILED, GENERATED_COMPILER, GENERATED_PTX_ARCH, GENERATED_REPORT_ARCH and
// GENERATED_MODULES.
include!(concat!(env!("OUT_DIR"), "/kernels_registry.rs"));

/// Whether this build embeds compiled kernels (false: CPU-only build, [`modules`] is empty).
pub const KERNELS_COMPILED: bool = GENERATED_COMPILED;

/// The compiler that produced the PTX, for `pixelrnn info`: `"nvrtc 12.9 (.cuda-toolchain/...)"`,
/// `"nvcc 12.9.86 (/usr/local/cuda/bin/nvcc)"`, or `"none"`.
pub const KERNEL_COMPILER: &str = GENERATED_COMPILER;

/// The virtual architecture the PTX was generated for (`"compute_80"`).
pub const PTX_ARCH: &str = GENERATED_PTX_ARCH;

/// The real architecture of the ptxas resource reports (`"sm_90"`).
pub const RESOURCE_REPORT_ARCH: &str = GENERATED_REPORT_ARCH;

/// Every embedded module, sorted by name; empty when built without a CUDA compiler.
pub fn modules() -> &'static [KernelModule] {
    GENERATED_MODULES
}

/// The module compiled from `kernels/<name>.cu`, if this build has it.
pub fn module(name: &str) -> Option<&'static KernelModule> {
    GENERATED_MODULES.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent() {
        assert_eq!(modules().is_empty(), !KERNELS_COMPILED);
        assert_eq!(KERNEL_COMPILER == "none", !KERNELS_COMPILED);
        for m in modules() {
            assert_eq!(module(m.name), Some(m));
            assert!(!m.entry_points.is_empty(), "{} has no kernels", m.name);
            for e in m.entry_points {
                assert!(m.has_entry_point(e));
            }
        }
        assert!(module("no_such_kernel").is_none());
    }

    #[test]
    fn ptx_directives_are_parsed() {
        const PTX: &str = "//\n.version 8.8\n.target sm_80\n.address_size 64\n";
        assert_eq!(ptx_directive(PTX, ".version"), Some("8.8"));
        assert_eq!(ptx_directive(PTX, ".target"), Some("sm_80"));
        assert_eq!(ptx_directive(PTX, ".entry"), None);
    }
}
