//! What the build script of `pixelrnn-kernels` (kernels/build.rs) does, as ordinary,
//! unit-tested code: it compiles every `kernels/*.cu` to PTX (one module per file, virtual arch
//! [`PTX_ARCH`]), assembles each PTX for [`REPORT_ARCH`] with `ptxas -v` (cubin and resource
//! report), parses every kernel's launch signature, and compiles the same sources for the CPU
//! emulator of the CUDA execution model.
//!
//! - [`toolchain`]: where nvcc, libnvrtc and ptxas may be (the pip toolchain folder, CUDA
//!   installs, `PATH`);
//! - [`nvrtc`]: libnvrtc loaded at build time with libloading;
//! - [`compiler`]: the compiler that works (nvcc after a probe, else NVRTC) and one file's PTX;
//! - [`ptxas`]: the sm_90 cubin and `-v` report of a PTX, and the report's parser;
//! - [`ptx`]: every kernel file to PTX, cubins and reports, with the build's error policy;
//! - [`tokens`] and [`signatures`]: the `PIXELRNN_KERNEL` declarations of the sources;
//! - [`registry`]: the Rust tables `pixelrnn_kernels` includes from `$OUT_DIR`;
//! - [`emulator`]: the generated C++ units and the static library `pixelrnn_emu`.
//!
//! Without a CUDA compiler the build succeeds, CPU-only, with a cargo warning. With
//! `PIXELRNN_REQUIRE_KERNELS=1` a missing compiler, a kernel that does not compile or a ptxas
//! error fails the build and prints the compiler's log. The emulator needs no CUDA toolchain
//! and is always built; a kernel it cannot compile always fails the build.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

pub mod compiler;
pub mod emulator;
pub mod nvrtc;
// The one definition, shared with the kernels crate (whose build script cannot use it).
#[path = "../../src/param_kind.rs"]
pub mod param_kind;
pub mod ptx;
pub mod ptxas;
pub mod registry;
// The one definition, shared with the kernels crate.
#[path = "../../src/resources.rs"]
pub mod resources;
pub mod signatures;
pub mod tokens;
pub mod toolchain;

/// Virtual architecture of the embedded PTX. The driver JIT-compiles it for the device at
/// module load; compute_80 runs on A100 and H100/H200 alike.
pub const PTX_ARCH: &str = "compute_80";
/// Real architecture of the ptxas resource reports and cubins (the H200 of the device machine).
pub const REPORT_ARCH: &str = "sm_90";
/// What a failure to compile the kernels leaves: a build without them.
pub const CPU_ONLY: &str = "this build is CPU-only";
/// What to do about a missing compiler.
pub const INSTALL_HINT: &str = "install the CUDA compiler toolchain with `bash scripts/install-cuda-toolchain.sh` (pip wheels into .cuda-toolchain/), or set NVCC or CUDA_HOME";

/// The environment variables that change what the build finds or how strict it is.
pub const WATCHED_ENV: &[&str] = &[
    "NVCC",
    "CUDA_HOME",
    "CUDA_PATH",
    "PIXELRNN_REQUIRE_KERNELS",
    "PIXELRNN_CUDA_TOOLCHAIN",
];

/// Where the build reads and writes, and how strict it is.
#[derive(Debug)]
pub struct Ctx {
    /// `PIXELRNN_REQUIRE_KERNELS=1`: a kernel that does not build fails the build.
    pub require: bool,
    /// The repository root: paths inside it are shown relative to it (".cuda-toolchain/...",
    /// "kernels/fill.cu").
    pub repo_root: PathBuf,
    /// The kernel sources (`kernels/`, the kernels crate's root).
    pub kernels_dir: PathBuf,
    /// Where PTX, cubins and reports go (`$OUT_DIR/kernels`).
    pub ptx_dir: PathBuf,
    /// The pip toolchain folder.
    pub toolchain: toolchain::Toolchain,
}

impl Ctx {
    /// With `PIXELRNN_REQUIRE_KERNELS=1`, ends the build with the headline and the full log on
    /// stderr (cargo prints it). Otherwise shows the headline, what happens instead
    /// (`consequence`) and a shortened log as cargo warnings, and lets the build go on.
    pub fn fail_or_warn(&self, headline: &str, consequence: &str, log: &str) {
        if self.require {
            eprintln!("error: {headline}");
            if !log.trim().is_empty() {
                eprintln!("{}", log.trim_end());
            }
            eprintln!("(an error because PIXELRNN_REQUIRE_KERNELS=1)");
            std::process::exit(1);
        }
        warn(&format!(
            "{headline}; {consequence} (PIXELRNN_REQUIRE_KERNELS=1 makes this an error)"
        ));
        for line in shortened(log, 30) {
            warn(&format!("  {line}"));
        }
    }

    /// `path` relative to the repository root when it is inside it (shorter, and says
    /// ".cuda-toolchain").
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.repo_root)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string())
    }
}

/// The non-blank lines of `log`, at most `max` of them and then a line saying how many more.
fn shortened(log: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out: Vec<String> = lines.iter().take(max).map(|l| l.to_string()).collect();
    if lines.len() > max {
        out.push(format!("... {} more lines", lines.len() - max));
    }
    out
}

/// A cargo warning (one directive per line: a newline would end the warning).
pub fn warn(message: &str) {
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo::warning={line}");
    }
}

/// Appends one file's log to a list of failures, under a `==> name <==` header.
pub fn push_failure(failures: &mut String, name: &str, log: &str) {
    let _ = writeln!(failures, "==> {name} <==\n{}\n", log.trim_end());
}

/// The top-level `*.cu` files of `dir`, sorted (the kernel modules; `emu/` is not scanned).
pub fn kernel_sources(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut sources: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    Ok(sources)
}

/// The headers next to the kernel sources (`*.cuh`, `*.h`) in `dir`: a change recompiles.
pub fn headers_in(dir: &Path) -> Vec<PathBuf> {
    let mut headers: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "cuh" || e == "h"))
                .collect()
        })
        .unwrap_or_default();
    headers.sort();
    headers
}

/// A fresh scratch directory for one unit test.
#[cfg(test)]
pub(crate) fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pixelrnn-kernels-build-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create test dir");
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_the_top_level_cu_files_sorted() {
        let dir = test_dir("sources");
        for f in ["b.cu", "a.cu", "common.cuh", "notes.txt"] {
            fs::write(dir.join(f), "").unwrap();
        }
        fs::create_dir_all(dir.join("emu")).unwrap();
        fs::write(dir.join("emu").join("selftest.cu"), "").unwrap();
        let names: Vec<String> = kernel_sources(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.cu", "b.cu"]);
        let headers: Vec<PathBuf> = headers_in(&dir);
        assert_eq!(headers, [dir.join("common.cuh")]);
        assert!(kernel_sources(&dir.join("missing")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn logs_are_shortened_for_warnings() {
        let log: String = (0..35).map(|i| format!("line {i}\n\n")).collect();
        let lines = shortened(&log, 30);
        assert_eq!(lines.len(), 31);
        assert_eq!(lines[29], "line 29");
        assert_eq!(lines[30], "... 5 more lines");
        assert!(shortened("", 30).is_empty());
    }

    #[test]
    fn paths_inside_the_repository_are_shown_relative() {
        let ctx = Ctx {
            require: false,
            repo_root: PathBuf::from("/repo"),
            kernels_dir: PathBuf::from("/repo/kernels"),
            ptx_dir: PathBuf::from("/out/kernels"),
            toolchain: toolchain::Toolchain::at(PathBuf::from("/repo/.cuda-toolchain")),
        };
        assert_eq!(
            ctx.display_path(Path::new("/repo/.cuda-toolchain/nvidia/x.so")),
            ".cuda-toolchain/nvidia/x.so"
        );
        assert_eq!(
            ctx.display_path(Path::new("/usr/bin/nvcc")),
            "/usr/bin/nvcc"
        );
    }
}
