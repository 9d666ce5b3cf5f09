//! The CUDA compiler of this build and one kernel file's PTX.
//!
//! The first that works of the candidates of [`crate::toolchain`]: an nvcc that compiles a
//! one-line probe kernel (so an nvcc whose host compiler is unsupported is skipped, with a
//! warning, rather than trusted), else NVRTC.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::nvrtc::Nvrtc;
use crate::toolchain::{cuda_version_of, Search};
use crate::{warn, Ctx, PTX_ARCH};

/// A compiler that produced PTX from the probe.
pub enum Compiler {
    /// nvcc, run as a process.
    Nvcc {
        /// Its path.
        path: PathBuf,
        /// `12.9.86`.
        version: String,
        /// Its path as shown by `pixelrnn info`.
        shown: String,
        /// Extra include paths (the runtime wheel's headers for a pip nvcc).
        includes: Vec<PathBuf>,
    },
    /// libnvrtc, loaded in the build script.
    Nvrtc {
        /// The library.
        lib: Box<Nvrtc>,
        /// Where it was loaded from, as shown by `pixelrnn info`.
        shown: String,
        /// Include paths of the CUDA headers.
        includes: Vec<PathBuf>,
    },
}

impl Compiler {
    /// `"nvcc 12.9.86 (/usr/local/cuda/bin/nvcc)"`, `"nvrtc 12.9 (.cuda-toolchain/...)"`.
    pub fn describe(&self) -> String {
        match self {
            Compiler::Nvcc { version, shown, .. } => format!("nvcc {version} ({shown})"),
            Compiler::Nvrtc { lib, shown, .. } => {
                format!("nvrtc {}.{} ({shown})", lib.version.0, lib.version.1)
            }
        }
    }

    /// The nvcc binary, when this is nvcc (its ptxas is preferred).
    pub fn nvcc_path(&self) -> Option<&Path> {
        match self {
            Compiler::Nvcc { path, .. } => Some(path),
            Compiler::Nvrtc { .. } => None,
        }
    }
}

/// The first compiler that works; every candidate that did not is noted in `tried`.
pub fn find(ctx: &Ctx, search: &Search, tried: &mut Vec<String>) -> Option<Compiler> {
    for nvcc in search.nvcc_candidates(&ctx.toolchain) {
        if !nvcc.is_file() {
            if search.nvcc_var.as_ref() == Some(&nvcc) {
                warn(&format!("pixelrnn: NVCC={} does not exist", nvcc.display()));
            }
            tried.push(format!("nvcc: {} does not exist", nvcc.display()));
            continue;
        }
        match probe_nvcc(ctx, &nvcc) {
            Ok(c) => return Some(c),
            Err(e) => tried.push(format!(
                "nvcc at {} probe failed, skipped: {e}",
                nvcc.display()
            )),
        }
    }

    for candidate in search.nvrtc_candidates(ctx, tried) {
        if candidate.lib.contains('/') && !Path::new(&candidate.lib).is_file() {
            continue;
        }
        match Nvrtc::load(&candidate.lib) {
            Ok(nvrtc) => {
                return Some(Compiler::Nvrtc {
                    lib: Box::new(nvrtc),
                    shown: candidate.shown,
                    includes: candidate.includes,
                })
            }
            Err(e) => tried.push(format!("nvrtc: {}: {e}", candidate.shown)),
        }
    }
    None
}

/// Checks that this nvcc really produces PTX (it runs the host compiler's preprocessor, which
/// can be missing or unsupported) on a one-line kernel.
fn probe_nvcc(ctx: &Ctx, nvcc: &Path) -> Result<Compiler, String> {
    let out = Command::new(nvcc)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = cuda_version_of(&text).ok_or_else(|| {
        format!(
            "unexpected `--version` output: {}",
            text.lines().last().unwrap_or("")
        )
    })?;

    let mut includes = Vec::new();
    // A pip nvcc lacks cuda_runtime.h next to it; the runtime wheel has it.
    if nvcc.starts_with(&ctx.toolchain.root) && ctx.toolchain.include().is_dir() {
        includes.push(ctx.toolchain.include());
    }
    let probe_dir = ctx.ptx_dir.join("probe");
    fs::create_dir_all(&probe_dir).map_err(|e| e.to_string())?;
    let src = probe_dir.join("probe.cu");
    fs::write(
        &src,
        "extern \"C\" __global__ void probe(float* x) { x[threadIdx.x] = 1.0f; }\n",
    )
    .map_err(|e| e.to_string())?;
    let ptx = probe_dir.join("probe.ptx");
    let result = nvcc_command(nvcc, &includes, &src, &ptx)
        .output()
        .map_err(|e| format!("cannot run: {e}"))?;
    let ok = result.status.success() && ptx.is_file();
    let log = output_log(&result);
    let _ = fs::remove_dir_all(&probe_dir);
    if !ok {
        return Err(log.trim().replace('\n', " | "));
    }
    Ok(Compiler::Nvcc {
        path: nvcc.to_path_buf(),
        version,
        shown: ctx.display_path(nvcc),
        includes,
    })
}

/// `nvcc --ptx -arch=compute_80 -std=c++17 [-I ...] -o ptx src`.
pub fn nvcc_command(nvcc: &Path, includes: &[PathBuf], src: &Path, ptx: &Path) -> Command {
    nvcc_command_for(nvcc, includes, src, ptx, PTX_ARCH)
}

/// The line that makes a kernel file's module compute_90 PTX instead of [`PTX_ARCH`]: for
/// kernels that use sm_90 features (thread-block clusters, kernels/cluster.cuh).
pub const ARCH_90_MARKER: &str = "// pixelrnn: arch compute_90";

/// The virtual architecture of a kernel file's PTX: compute_90 when a line of `source` is
/// [`ARCH_90_MARKER`], else [`PTX_ARCH`].
pub fn ptx_arch_of(source: &str) -> &'static str {
    if source.lines().any(|l| l.trim() == ARCH_90_MARKER) {
        "compute_90"
    } else {
        PTX_ARCH
    }
}

/// `nvcc --ptx -arch=<arch> -std=c++17 [-I ...] -o ptx src`.
pub fn nvcc_command_for(
    nvcc: &Path,
    includes: &[PathBuf],
    src: &Path,
    ptx: &Path,
    arch: &str,
) -> Command {
    let mut cmd = Command::new(nvcc);
    cmd.arg("--ptx")
        .arg(format!("-arch={arch}"))
        .arg("-std=c++17");
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg("-o").arg(ptx).arg(src);
    cmd
}

/// A process's stdout then stderr, as text.
pub fn output_log(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One kernel file compiled to PTX.
#[derive(Debug)]
pub struct Compiled {
    /// The file stem (the op name).
    pub name: String,
    /// `$OUT_DIR/kernels/<name>.ptx`.
    pub ptx_path: PathBuf,
    /// The `.entry` names of the PTX, in PTX order.
    pub entry_points: Vec<String>,
    /// Compiler messages on success (warnings).
    pub log: String,
    /// Our own remarks (naming convention).
    pub notes: Vec<String>,
}

/// Compiles `src` to `$OUT_DIR/kernels/<stem>.ptx`; the error is the compiler's log.
pub fn compile_one(ctx: &Ctx, compiler: &Compiler, src: &Path) -> Result<Compiled, String> {
    let name = src
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("kernel file name is not UTF-8")?
        .to_string();
    let ptx_path = ctx.ptx_dir.join(format!("{name}.ptx"));
    let (ptx, log) = match compiler {
        Compiler::Nvcc { path, includes, .. } => {
            let mut incs = vec![ctx.kernels_dir.clone()];
            incs.extend(includes.iter().cloned());
            let source = fs::read_to_string(src).map_err(|e| e.to_string())?;
            let out = nvcc_command_for(path, &incs, src, &ptx_path, ptx_arch_of(&source))
                .output()
                .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
            let log = output_log(&out);
            if !out.status.success() {
                return Err(log);
            }
            let ptx = fs::read_to_string(&ptx_path).map_err(|e| format!("{e}\n{log}"))?;
            (ptx, log)
        }
        Compiler::Nvrtc { lib, includes, .. } => {
            let source = fs::read_to_string(src).map_err(|e| e.to_string())?;
            let mut options = vec![
                format!("--gpu-architecture={}", ptx_arch_of(&source)),
                "--std=c++17".to_string(),
                format!("--include-path={}", ctx.kernels_dir.display()),
            ];
            for inc in includes {
                options.push(format!("--include-path={}", inc.display()));
            }
            let file_name = format!("{name}.cu");
            let (ptx, log) = lib.compile(&source, &file_name, &options)?;
            fs::write(&ptx_path, &ptx).map_err(|e| e.to_string())?;
            (ptx, log)
        }
    };
    let (entry_points, notes) =
        check_entry_points(&name, &ptx).map_err(|e| format!("{log}\n{e}"))?;
    Ok(Compiled {
        name,
        ptx_path,
        entry_points,
        log,
        notes,
    })
}

/// The entry points of module `name`'s PTX and remarks on their names; an error when there
/// is none or one is C++-mangled (the host side looks kernels up by their plain names).
pub fn check_entry_points(name: &str, ptx: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let entry_points = entry_points(ptx);
    if entry_points.is_empty() {
        return Err(format!("{name}.ptx has no kernel (.entry)"));
    }
    let mut notes = Vec::new();
    for entry in &entry_points {
        if entry.starts_with("_Z") {
            return Err(format!(
                "kernel {entry} is C++-mangled: declare it extern \"C\" (PIXELRNN_KERNEL)"
            ));
        }
        if !follows_naming(name, entry) {
            notes.push(format!(
                "kernel {entry} does not follow the naming <op>_<pass>_v<N> with op = {name} \
                 (or, in a file <op>_<part>.cu of a split op, its op)"
            ));
        }
    }
    Ok((entry_points, notes))
}

/// `.visible .entry softmax_nll_fwd_bwd_v1(` -> `softmax_nll_fwd_bwd_v1`.
pub fn entry_points(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.position(|w| w == ".entry")?;
            let name = words.next()?;
            let name = name.split('(').next()?;
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// Whether `entry` is `<op>_<pass>_v<N>`, where the op is the module's name or, for one of
/// an op's further files (kernels/masked_conv2d_mma.cu beside kernels/masked_conv2d.cu: one op,
/// one name, its kernels in several files), the part of the name before one of its
/// underscores.
pub fn follows_naming(name: &str, entry: &str) -> bool {
    std::iter::once(name)
        .chain(name.match_indices('_').map(|(i, _)| &name[..i]))
        .any(|op| follows_op_naming(op, entry))
}

/// Whether `entry` is `<op>_<pass>_v<N>` for exactly this op.
fn follows_op_naming(op: &str, entry: &str) -> bool {
    let Some(rest) = entry.strip_prefix(op).and_then(|r| r.strip_prefix('_')) else {
        return false;
    };
    match rest.rsplit_once("_v") {
        Some((pass, n)) => {
            !pass.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "//\n.version 8.8\n.target sm_80\n\n\t// .globl\tfill_fwd_v1\n.visible .entry fill_fwd_v1(\n\t.param .u64 fill_fwd_v1_param_0\n)\n.visible .entry fill_odd(\n)\n";

    #[test]
    fn entry_points_are_read_from_ptx() {
        assert_eq!(entry_points(PTX), ["fill_fwd_v1", "fill_odd"]);
        assert!(entry_points(".version 8.8\n").is_empty());
    }

    #[test]
    fn kernel_names_follow_op_pass_version() {
        assert!(follows_naming("softmax_nll", "softmax_nll_fwd_bwd_v1"));
        assert!(follows_naming("fill", "fill_fwd_v12"));
        assert!(!follows_naming("fill", "fill_v1"));
        assert!(!follows_naming("fill", "fill_fwd_vx"));
        assert!(!follows_naming("fill", "fill_fwd"));
        assert!(!follows_naming("fill", "other_fwd_v1"));
        // A further file of an op: its kernels keep the op's name.
        assert!(follows_naming(
            "masked_conv2d_mma",
            "masked_conv2d_fwd_tf32_v1"
        ));
        assert!(follows_naming(
            "masked_conv2d_mma_weight",
            "masked_conv2d_bwd_weight_bf16_v1"
        ));
        assert!(!follows_naming("masked_conv2d_mma", "other_fwd_v1"));
    }

    #[test]
    fn a_split_op_names_its_kernels_after_the_op() {
        assert!(follows_naming("masked_conv2d", "masked_conv2d_fwd_v1"));
        assert!(follows_naming(
            "masked_conv2d_weight",
            "masked_conv2d_bwd_weight_v2"
        ));
        assert!(follows_naming(
            "masked_conv2d_packed",
            "masked_conv2d_pack_v1"
        ));
        assert!(!follows_naming("masked_conv2d_packed", "masked_fwd_v1x"));
        assert!(!follows_naming("masked_conv2d_packed", "other_fwd_v1"));
    }

    #[test]
    fn entry_points_are_checked() {
        let (entries, notes) = check_entry_points("fill", PTX).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("fill_odd"), "{notes:?}");
        let err = check_entry_points("fill", ".version 8.8\n").unwrap_err();
        assert!(err.contains("fill.ptx has no kernel"), "{err}");
        let err = check_entry_points("fill", ".visible .entry _Z4fillPf(\n").unwrap_err();
        assert!(err.contains("C++-mangled"), "{err}");
    }

    #[test]
    fn the_arch_marker_selects_compute_90() {
        assert_eq!(ptx_arch_of("#include \"common.cuh\"\n"), PTX_ARCH);
        assert_eq!(
            ptx_arch_of("// a.cu\n// pixelrnn: arch compute_90\n#include \"x.cuh\"\n"),
            "compute_90"
        );
        // Only the exact line counts (not a mention inside another comment).
        assert_eq!(
            ptx_arch_of("// see `// pixelrnn: arch compute_90`\n"),
            PTX_ARCH
        );
    }

    #[test]
    fn nvcc_is_asked_for_compute_80_ptx() {
        let cmd = nvcc_command(
            Path::new("/cuda/bin/nvcc"),
            &[PathBuf::from("/inc")],
            Path::new("a.cu"),
            Path::new("a.ptx"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--ptx",
                "-arch=compute_80",
                "-std=c++17",
                "-I",
                "/inc",
                "-o",
                "a.ptx",
                "a.cu"
            ]
        );
    }
}
