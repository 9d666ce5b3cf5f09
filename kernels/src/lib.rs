//! The CUDA kernels of pixelrnn, as built for this machine: one PTX module per
//! `kernels/<name>.cu`, the launch signature of every kernel, and the CPU emulator's library
//! (the same sources compiled for the host; its C interface is [`emu`]).
//!
//! The build script (kernels/build.rs, with `pixelrnn-kernels-build` in kernels/build-support/)
//! compiles every kernel source to PTX for the virtual architecture [`PTX_ARCH`] (nvcc or NVRTC)
//! and generates the registry included below. A build without a CUDA compiler has no modules
//! ([`KERNELS_COMPILED`] is false) and runs on the CPU only; `cfg(pixelrnn_kernels)` is set on
//! this crate exactly when kernels were compiled.
//!
//! The host side (`pixelrnn::backend::cuda`) loads [`KernelModule::ptx`] with the driver, which
//! JIT-compiles it for the device, and looks kernels up by their entry-point names.

pub mod emu;
mod param_kind;
mod resources;

pub use param_kind::ParamKind;
pub use resources::KernelResources;

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
    /// [`KernelModule::resource_report`] parsed at build time: `(kernel, resources)` for each
    /// kernel it names, sorted by kernel name (empty without a report).
    pub resources: &'static [(&'static str, KernelResources)],
    /// The same PTX assembled by ptxas for [`RESOURCE_REPORT_ARCH`] (sm_90), when ptxas was
    /// available: a device of exactly that architecture loads it directly, with no JIT and so
    /// no requirement that the driver know the PTX ISA version NVRTC emitted.
    pub cubin: Option<&'static [u8]>,
}

impl KernelModule {
    /// Whether the module defines the kernel `entry`.
    pub fn has_entry_point(&self, entry: &str) -> bool {
        self.entry_points.contains(&entry)
    }

    /// What ptxas reported for kernel `entry`, when it ran.
    pub fn resources(&self, entry: &str) -> Option<&'static KernelResources> {
        self.resources
            .iter()
            .find(|(kernel, _)| *kernel == entry)
            .map(|(_, r)| r)
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

/// One parameter of a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelParam {
    /// Its name in the source.
    pub name: &'static str,
    /// How it is passed.
    pub kind: ParamKind,
}

/// The launch signature of one kernel, parsed at build time from its `PIXELRNN_KERNEL`
/// declaration (available in every build, with or without a CUDA compiler).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSignature {
    /// Entry-point name, `<op>_<pass>_v<N>`.
    pub name: &'static str,
    /// The file stem of the source defining it (`"softmax_nll"`).
    pub module: &'static str,
    /// Parameters in order.
    pub params: &'static [KernelParam],
    /// Whether the CPU emulator runs it (false for kernels marked `// pixelrnn: gpu-only`).
    pub emulated: bool,
}

// Defines GENERATED_SIGNATURES and GENERATED_SELFTEST_SIGNATURES.
include!(concat!(env!("OUT_DIR"), "/kernel_signatures.rs"));

/// The signature of every kernel of `kernels/*.cu`, in file then source order.
pub fn signatures() -> &'static [KernelSignature] {
    GENERATED_SIGNATURES
}

/// The signature of kernel `name` in `kernels/*.cu`.
pub fn signature(name: &str) -> Option<&'static KernelSignature> {
    GENERATED_SIGNATURES.iter().find(|s| s.name == name)
}

/// The emulator's own test kernels (`kernels/emu/selftest.cu`, never compiled to PTX).
#[doc(hidden)]
pub fn selftest_signatures() -> &'static [KernelSignature] {
    GENERATED_SELFTEST_SIGNATURES
}

/// The signature of `name` among the kernels of `kernels/*.cu` and the emulator's self-test
/// kernels: what a launch is checked against.
pub fn launch_signature(name: &str) -> Option<&'static KernelSignature> {
    signature(name).or_else(|| {
        GENERATED_SELFTEST_SIGNATURES
            .iter()
            .find(|s| s.name == name)
    })
}

/// The versions `N` of the kernels `<op>_<pass>_v<N>` that exist, ascending.
pub fn versions(op: &str, pass: &str) -> Vec<u32> {
    let prefix = format!("{op}_{pass}_v");
    let mut v: Vec<u32> = GENERATED_SIGNATURES
        .iter()
        .filter_map(|s| s.name.strip_prefix(&prefix)?.parse().ok())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
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
    fn resources_are_those_of_the_module_s_kernels() {
        for m in modules() {
            for (kernel, r) in m.resources {
                assert!(m.has_entry_point(kernel), "{}: {kernel}", m.name);
                assert_eq!(m.resources(kernel), Some(r));
            }
            assert_eq!(m.resources.is_empty(), m.resource_report.is_none());
        }
        assert!(modules()
            .iter()
            .all(|m| m.resources("no_such_kernel").is_none()));
    }

    #[test]
    fn signatures_are_parsed() {
        let s = signature("fill_fwd_v1").expect("fill_fwd_v1 is in the table");
        assert_eq!(s.module, "fill");
        assert!(s.emulated);
        let kinds: Vec<ParamKind> = s.params.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ParamKind::Ptr, ParamKind::I64, ParamKind::F32]);
        assert_eq!(s.params[0].name, "x");
        let s = signature("softmax_nll_fwd_bwd_v1").expect("softmax_nll_fwd_bwd_v1");
        assert_eq!(s.params[0].kind, ParamKind::ConstPtr);
        assert_eq!(s.params.len(), 7);
        assert_eq!(versions("softmax_nll", "fwd_bwd").first(), Some(&1));
        assert!(versions("no_such_op", "fwd").is_empty());
        assert!(signature("no_such_kernel").is_none());
    }

    #[test]
    fn ptx_directives_are_parsed() {
        const PTX: &str = "//\n.version 8.8\n.target sm_80\n.address_size 64\n";
        assert_eq!(ptx_directive(PTX, ".version"), Some("8.8"));
        assert_eq!(ptx_directive(PTX, ".target"), Some("sm_80"));
        assert_eq!(ptx_directive(PTX, ".entry"), None);
    }
}
