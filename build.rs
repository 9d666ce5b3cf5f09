//! Build script: compiles every `kernels/*.cu` to PTX (one module per file, virtual arch
//! compute_80) and writes `$OUT_DIR/kernels_registry.rs`, which `src/kernels.rs` includes.
//!
//! Compiler, first that works:
//! 1. nvcc: `$NVCC`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin`, `PATH`, the toolchain folder,
//!    `/usr/local/cuda/bin`. Each candidate must first compile a one-line probe kernel, so an
//!    nvcc whose host compiler is unsupported is skipped (with a warning) rather than trusted.
//! 2. NVRTC, loaded here with libloading: `libnvrtc.so*` of the toolchain folder, then
//!    `$CUDA_HOME`/`$CUDA_PATH`/`/usr/local/cuda` lib64, then the dynamic linker's search path.
//!
//! The toolchain folder is `$PIXELRNN_CUDA_TOOLCHAIN`, or `.cuda-toolchain/` in the crate
//! root, as filled by `scripts/install-cuda-toolchain.sh` (pip wheels nvidia-cuda-nvrtc-cu12,
//! nvidia-cuda-runtime-cu12 for the headers, nvidia-cuda-nvcc-cu12 for ptxas).
//!
//! When ptxas is found, each PTX is also assembled for sm_90 with `-v`, and the report
//! (registers, spills, shared memory per kernel) is embedded next to the PTX.
//!
//! Without a compiler the build succeeds, CPU-only, with a cargo warning. With
//! `PIXELRNN_REQUIRE_KERNELS=1` a missing compiler, a kernel that does not compile or a ptxas
//! error fails the build and prints the compiler's log.

use std::env;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Virtual architecture of the embedded PTX. The driver JIT-compiles it for the device at
/// module load; compute_80 runs on A100 and H100/H200 alike.
const PTX_ARCH: &str = "compute_80";
/// Real architecture of the ptxas resource reports (the H200 of the device machine).
const REPORT_ARCH: &str = "sm_90";
const CPU_ONLY: &str = "this build is CPU-only";
/// Kept in sync with scripts/install-cuda-toolchain.sh.
const TOOLCHAIN_STAMP: &str = ".pixelrnn-toolchain-stamp";
const INSTALL_HINT: &str = "install the CUDA compiler toolchain with `bash scripts/install-cuda-toolchain.sh` (pip wheels into .cuda-toolchain/), or set NVCC or CUDA_HOME";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let kernels_dir = manifest_dir.join("kernels");

    println!("cargo::rustc-check-cfg=cfg(pixelrnn_kernels)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    for var in [
        "NVCC",
        "CUDA_HOME",
        "CUDA_PATH",
        "PIXELRNN_REQUIRE_KERNELS",
        "PIXELRNN_CUDA_TOOLCHAIN",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let require = env::var("PIXELRNN_REQUIRE_KERNELS").is_ok_and(|v| v == "1");
    let toolchain = Toolchain::locate(&manifest_dir);
    if toolchain.root.join(TOOLCHAIN_STAMP).is_file() {
        // A reinstall (other versions) rewrites the stamp; a first install touches build.rs.
        println!(
            "cargo::rerun-if-changed={}",
            toolchain.root.join(TOOLCHAIN_STAMP).display()
        );
    }

    let ptx_dir = out_dir.join("kernels");
    // Stale PTX of a deleted or renamed kernel must not survive.
    let _ = fs::remove_dir_all(&ptx_dir);
    fs::create_dir_all(&ptx_dir).expect("create OUT_DIR/kernels");

    let ctx = Ctx {
        require,
        manifest_dir,
        kernels_dir,
        ptx_dir,
        toolchain,
    };
    let outcome = build_kernels(&ctx);
    write_registry(&out_dir, &outcome);
    build_emulator(&ctx.manifest_dir, &ctx.kernels_dir, &out_dir);
    if outcome.compiled {
        println!("cargo::rustc-cfg=pixelrnn_kernels");
    }
}

struct Ctx {
    require: bool,
    manifest_dir: PathBuf,
    kernels_dir: PathBuf,
    ptx_dir: PathBuf,
    toolchain: Toolchain,
}

/// What `src/kernels.rs` gets to see.
struct Outcome {
    compiled: bool,
    compiler: String,
    modules: Vec<BuiltModule>,
}

struct BuiltModule {
    name: String,
    ptx_path: PathBuf,
    entry_points: Vec<String>,
    report_path: Option<PathBuf>,
    /// The sm_90 cubin ptxas wrote while reporting (embedded: a device of that architecture
    /// loads it without JIT-compiling the PTX, so a driver older than the PTX ISA still works).
    cubin_path: Option<PathBuf>,
}

/// With `PIXELRNN_REQUIRE_KERNELS=1`, ends the build with the headline and the full log on
/// stderr (cargo prints it). Otherwise shows the headline, what happens instead
/// (`consequence`) and a shortened log as cargo warnings, and lets the build go on.
fn fail_or_warn(ctx: &Ctx, headline: &str, consequence: &str, log: &str) {
    if ctx.require {
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
    const MAX_LINES: usize = 30;
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in lines.iter().take(MAX_LINES) {
        warn(&format!("  {line}"));
    }
    if lines.len() > MAX_LINES {
        warn(&format!("  ... {} more lines", lines.len() - MAX_LINES));
    }
}

fn warn(message: &str) {
    // One directive per line: a newline would end the warning.
    for line in message.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo::warning={line}");
    }
}

fn build_kernels(ctx: &Ctx) -> Outcome {
    let not_compiled = |compiler: &str| Outcome {
        compiled: false,
        compiler: compiler.to_string(),
        modules: Vec::new(),
    };

    let sources = match kernel_sources(&ctx.kernels_dir) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            fail_or_warn(
                ctx,
                &format!("pixelrnn: no kernels/*.cu in {}", ctx.kernels_dir.display()),
                CPU_ONLY,
                "",
            );
            return not_compiled("none");
        }
        Err(e) => {
            fail_or_warn(
                ctx,
                &format!("pixelrnn: cannot read {}: {e}", ctx.kernels_dir.display()),
                CPU_ONLY,
                "",
            );
            return not_compiled("none");
        }
    };
    for src in &sources {
        println!("cargo::rerun-if-changed={}", src.display());
    }
    if let Ok(dir) = fs::read_dir(&ctx.kernels_dir) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "cuh" || e == "h") {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }

    let mut tried = Vec::new();
    let Some(compiler) = find_compiler(ctx, &mut tried) else {
        let headline = format!(
            "pixelrnn: CUDA kernels were NOT compiled: no nvcc or libnvrtc found. To fix: {INSTALL_HINT}"
        );
        // The list of places searched is for the failing CI log, not for every CPU-only build.
        let log = if ctx.require {
            tried.join("\n")
        } else {
            String::new()
        };
        fail_or_warn(ctx, &headline, CPU_ONLY, &log);
        return not_compiled("none");
    };
    for note in &tried {
        // Candidates that exist but failed their probe are worth knowing about.
        if note.contains("probe failed") {
            warn(&format!("pixelrnn: {note}"));
        }
    }

    // Compile all files in parallel: NVRTC programs are independent, nvcc is a process.
    let results: Vec<Result<Compiled, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|src| scope.spawn(|| compile_one(ctx, &compiler, src)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("compiler thread panicked".into()))
            })
            .collect()
    });

    let mut failures = String::new();
    let mut compiled = Vec::new();
    for (src, result) in sources.iter().zip(results) {
        match result {
            Ok(c) => compiled.push(c),
            Err(log) => {
                let _ = writeln!(failures, "==> {} <==\n{}\n", src.display(), log.trim_end());
            }
        }
    }
    if !failures.is_empty() {
        fail_or_warn(
            ctx,
            &format!(
                "pixelrnn: CUDA kernels failed to compile with {}",
                compiler.describe()
            ),
            CPU_ONLY,
            &failures,
        );
        return not_compiled("none");
    }
    for c in &compiled {
        if !c.log.trim().is_empty() {
            warn(&format!(
                "pixelrnn: {} compiled with messages:\n{}",
                c.name,
                c.log.trim_end()
            ));
        }
        for note in &c.notes {
            warn(&format!("pixelrnn: {}: {note}", c.name));
        }
    }

    // Resource reports: optional, but a ptxas that rejects our PTX is a real error.
    let ptxas = find_ptxas(ctx, &compiler);
    let mut modules = Vec::new();
    let mut ptxas_failures = String::new();
    for c in compiled {
        let mut report_path = None;
        let mut cubin_path = None;
        if let Some(ptxas) = &ptxas {
            match run_ptxas(ptxas, &c.ptx_path, &ctx.ptx_dir, &c.name) {
                Ok(report) => {
                    let path = ctx.ptx_dir.join(format!("{}.ptxas.txt", c.name));
                    fs::write(&path, report).expect("write ptxas report");
                    report_path = Some(path);
                    let cubin = ctx.ptx_dir.join(format!("{}.{REPORT_ARCH}.cubin", c.name));
                    cubin_path = cubin.is_file().then_some(cubin);
                }
                Err(log) => {
                    let _ = writeln!(ptxas_failures, "==> {} <==\n{}\n", c.name, log.trim_end());
                }
            }
        }
        modules.push(BuiltModule {
            name: c.name,
            ptx_path: c.ptx_path,
            entry_points: c.entry_points,
            report_path,
            cubin_path,
        });
    }
    if !ptxas_failures.is_empty() {
        fail_or_warn(
            ctx,
            &format!("pixelrnn: ptxas -arch={REPORT_ARCH} rejected the PTX"),
            "the PTX is embedded without resource reports",
            &ptxas_failures,
        );
    }

    Outcome {
        compiled: true,
        compiler: compiler.describe(),
        modules,
    }
}

fn kernel_sources(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut sources: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    Ok(sources)
}

// ---------------------------------------------------------------------------------------------
// Locating the toolchain

/// The pip-installed toolchain folder (it may not exist).
struct Toolchain {
    root: PathBuf,
}

impl Toolchain {
    fn locate(manifest_dir: &Path) -> Self {
        let root = match env::var_os("PIXELRNN_CUDA_TOOLCHAIN") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => manifest_dir.join(".cuda-toolchain"),
        };
        Toolchain { root }
    }
    fn nvidia(&self) -> PathBuf {
        self.root.join("nvidia")
    }
    fn nvcc_bin(&self) -> PathBuf {
        self.nvidia().join("cuda_nvcc").join("bin")
    }
    fn nvrtc_lib(&self) -> PathBuf {
        self.nvidia().join("cuda_nvrtc").join("lib")
    }
    fn include(&self) -> PathBuf {
        self.nvidia().join("cuda_runtime").join("include")
    }
}

fn exe(name: &str) -> String {
    format!("{name}{}", env::consts::EXE_SUFFIX)
}

/// `$CUDA_HOME` and `$CUDA_PATH` when set, then `/usr/local/cuda`; those that exist.
fn cuda_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(|var| env::var_os(var).filter(|d| !d.is_empty()))
        .map(PathBuf::from)
        .collect();
    roots.push(PathBuf::from("/usr/local/cuda"));
    roots.retain(|r| r.is_dir());
    roots.dedup();
    roots
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(exe(name)))
        .find(|p| p.is_file())
}

/// A path relative to the crate root when it is inside it (shorter, and says ".cuda-toolchain").
fn display_path(ctx: &Ctx, path: &Path) -> String {
    path.strip_prefix(&ctx.manifest_dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

enum Compiler {
    Nvcc {
        path: PathBuf,
        version: String,
        shown: String,
        includes: Vec<PathBuf>,
    },
    Nvrtc {
        lib: Box<Nvrtc>,
        shown: String,
        includes: Vec<PathBuf>,
    },
}

impl Compiler {
    fn describe(&self) -> String {
        match self {
            Compiler::Nvcc { version, shown, .. } => format!("nvcc {version} ({shown})"),
            Compiler::Nvrtc { lib, shown, .. } => {
                format!("nvrtc {}.{} ({shown})", lib.version.0, lib.version.1)
            }
        }
    }
}

fn find_compiler(ctx: &Ctx, tried: &mut Vec<String>) -> Option<Compiler> {
    // nvcc candidates, in order of precedence.
    let mut nvccs: Vec<PathBuf> = Vec::new();
    if let Some(nvcc) = env::var_os("NVCC").filter(|v| !v.is_empty()) {
        nvccs.push(PathBuf::from(nvcc));
    }
    let default_root = Path::new("/usr/local/cuda");
    for root in cuda_roots().iter().filter(|r| r.as_path() != default_root) {
        nvccs.push(root.join("bin").join(exe("nvcc")));
    }
    nvccs.extend(on_path("nvcc"));
    nvccs.push(ctx.toolchain.nvcc_bin().join(exe("nvcc")));
    nvccs.push(default_root.join("bin").join(exe("nvcc")));
    let mut seen = Vec::new();
    nvccs.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });

    for nvcc in nvccs {
        if !nvcc.is_file() {
            if env::var_os("NVCC").is_some_and(|v| Path::new(&v) == nvcc) {
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

    // NVRTC candidates: absolute files first, then names for the dynamic linker.
    let mut libs: Vec<(String, String, Vec<PathBuf>)> = Vec::new();
    let toolchain_include = ctx.toolchain.include();
    let toolchain_includes: Vec<PathBuf> = Some(toolchain_include.clone())
        .filter(|p| p.is_dir())
        .into_iter()
        .collect();
    if let Ok(dir) = fs::read_dir(ctx.toolchain.nvrtc_lib()) {
        let mut found: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                n.starts_with("libnvrtc.so") || (n.starts_with("nvrtc64") && n.ends_with(".dll"))
            })
            .collect();
        found.sort();
        for lib in found {
            libs.push((
                lib.display().to_string(),
                display_path(ctx, &lib),
                toolchain_includes.clone(),
            ));
        }
    } else {
        tried.push(format!(
            "nvrtc: no toolchain at {} (scripts/install-cuda-toolchain.sh)",
            ctx.toolchain.root.display()
        ));
    }
    for root in cuda_roots() {
        let mut includes = vec![root.join("include")];
        includes.extend(toolchain_includes.iter().cloned());
        for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
            let lib = root.join("lib64").join(name);
            libs.push((
                lib.display().to_string(),
                lib.display().to_string(),
                includes.clone(),
            ));
        }
    }
    for name in ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"] {
        libs.push((
            name.to_string(),
            format!("{name}, system"),
            toolchain_includes.clone(),
        ));
    }

    for (lib, shown, includes) in libs {
        if lib.contains('/') && !Path::new(&lib).is_file() {
            continue;
        }
        match Nvrtc::load(&lib) {
            Ok(nvrtc) => {
                return Some(Compiler::Nvrtc {
                    lib: Box::new(nvrtc),
                    shown,
                    includes,
                })
            }
            Err(e) => tried.push(format!("nvrtc: {shown}: {e}")),
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
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let _ = fs::remove_dir_all(&probe_dir);
    if !ok {
        return Err(log.trim().replace('\n', " | "));
    }
    Ok(Compiler::Nvcc {
        path: nvcc.to_path_buf(),
        version,
        shown: display_path(ctx, nvcc),
        includes,
    })
}

fn nvcc_command(nvcc: &Path, includes: &[PathBuf], src: &Path, ptx: &Path) -> Command {
    let mut cmd = Command::new(nvcc);
    cmd.arg("--ptx")
        .arg(format!("-arch={PTX_ARCH}"))
        .arg("-std=c++17");
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg("-o").arg(ptx).arg(src);
    cmd
}

/// "Cuda compilation tools, release 12.9, V12.9.86" -> "12.9.86".
fn cuda_version_of(version_output: &str) -> Option<String> {
    version_output
        .lines()
        .rev()
        .find_map(|l| l.split(", V").nth(1))
        .map(|v| v.trim().to_string())
}

fn find_ptxas(ctx: &Ctx, compiler: &Compiler) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    // The ptxas that ships with the compiler understands its PTX version.
    if let Compiler::Nvcc { path, .. } = compiler {
        if let Some(dir) = path.parent() {
            candidates.push(dir.join(exe("ptxas")));
        }
    }
    candidates.push(ctx.toolchain.nvcc_bin().join(exe("ptxas")));
    for root in cuda_roots() {
        candidates.push(root.join("bin").join(exe("ptxas")));
    }
    candidates.extend(on_path("ptxas"));
    candidates.into_iter().find(|p| p.is_file())
}

/// `ptxas -arch=sm_90 -v`: its report (stderr) with a header line saying which ptxas made it.
fn run_ptxas(ptxas: &Path, ptx: &Path, out_dir: &Path, name: &str) -> Result<String, String> {
    let version = Command::new(ptxas)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| cuda_version_of(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| "?".into());
    let cubin = out_dir.join(format!("{name}.{REPORT_ARCH}.cubin"));
    let out = Command::new(ptxas)
        .arg(format!("-arch={REPORT_ARCH}"))
        .arg("-v")
        .arg("-o")
        .arg(&cubin)
        .arg(ptx)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(log);
    }
    // "Compile time = ..." changes on every build and says nothing about the kernel.
    let report: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("Compile time"))
        .collect();
    Ok(format!(
        "ptxas {version} -arch={REPORT_ARCH} -v {name}.ptx\n{}\n",
        report.join("\n").trim_end()
    ))
}

// ---------------------------------------------------------------------------------------------
// Compiling one file

struct Compiled {
    name: String,
    ptx_path: PathBuf,
    entry_points: Vec<String>,
    /// Compiler messages on success (warnings).
    log: String,
    /// Our own remarks (naming convention).
    notes: Vec<String>,
}

fn compile_one(ctx: &Ctx, compiler: &Compiler, src: &Path) -> Result<Compiled, String> {
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
            let out = nvcc_command(path, &incs, src, &ptx_path)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() {
                return Err(log);
            }
            let ptx = fs::read_to_string(&ptx_path).map_err(|e| format!("{e}\n{log}"))?;
            (ptx, log)
        }
        Compiler::Nvrtc { lib, includes, .. } => {
            let source = fs::read_to_string(src).map_err(|e| e.to_string())?;
            let mut options = vec![
                format!("--gpu-architecture={PTX_ARCH}"),
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

    let entry_points = entry_points(&ptx);
    let mut notes = Vec::new();
    if entry_points.is_empty() {
        return Err(format!("{log}\n{name}.ptx has no kernel (.entry)"));
    }
    for entry in &entry_points {
        if entry.starts_with("_Z") {
            return Err(format!(
                "{log}\nkernel {entry} is C++-mangled: declare it extern \"C\" (PIXELRNN_KERNEL)"
            ));
        }
        if !follows_naming(&name, entry) {
            notes.push(format!(
                "kernel {entry} does not follow the naming <op>_<pass>_v<N> with op = {name}"
            ));
        }
    }
    Ok(Compiled {
        name,
        ptx_path,
        entry_points,
        log,
        notes,
    })
}

/// `.visible .entry softmax_nll_fwd_bwd_v1(` -> `softmax_nll_fwd_bwd_v1`.
fn entry_points(ptx: &str) -> Vec<String> {
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

fn follows_naming(op: &str, entry: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// NVRTC through libloading (cudarc's loader only searches the dynamic linker's path, which a
// build script cannot extend for itself; the toolchain folder is not on it).

type NvrtcProgram = *mut c_void;
type NvrtcResult = c_int;

struct Nvrtc {
    // Keeps the function pointers below valid.
    _lib: libloading::Library,
    version: (i32, i32),
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
    fn load(name: &str) -> Result<Nvrtc, String> {
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
    fn compile(
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

// ---------------------------------------------------------------------------------------------
// The generated registry

fn write_registry(out_dir: &Path, outcome: &Outcome) {
    let mut rs = String::new();
    rs.push_str("// @generated by build.rs: the kernels embedded in this build.\n");
    let _ = writeln!(rs, "const GENERATED_COMPILED: bool = {};", outcome.compiled);
    let _ = writeln!(
        rs,
        "const GENERATED_COMPILER: &str = {:?};",
        outcome.compiler
    );
    let _ = writeln!(rs, "const GENERATED_PTX_ARCH: &str = {PTX_ARCH:?};");
    let _ = writeln!(rs, "const GENERATED_REPORT_ARCH: &str = {REPORT_ARCH:?};");
    rs.push_str("static GENERATED_MODULES: &[KernelModule] = &[\n");
    for m in &outcome.modules {
        let ptx = m.ptx_path.display().to_string();
        let entries: Vec<String> = m.entry_points.iter().map(|e| format!("{e:?}")).collect();
        let report = match &m.report_path {
            Some(p) => format!("Some(include_str!({:?}))", p.display().to_string()),
            None => "None".to_string(),
        };
        let cubin = match &m.cubin_path {
            Some(p) => format!("Some(include_bytes!({:?}))", p.display().to_string()),
            None => "None".to_string(),
        };
        let _ = writeln!(
            rs,
            "    KernelModule {{\n        name: {:?},\n        ptx: include_str!({ptx:?}),\n        entry_points: &[{}],\n        resource_report: {report},\n        cubin: {cubin},\n    }},",
            m.name,
            entries.join(", "),
        );
    }
    rs.push_str("];\n");
    fs::write(out_dir.join("kernels_registry.rs"), rs).expect("write kernels_registry.rs");
}

// ---------------------------------------------------------------------------------------------
// The CPU emulator (kernels/emu/, src/backend/cuda/emulator.rs, docs/emulator.md)
//
// Always built, with or without a CUDA compiler: the kernels' launch signatures are parsed from
// every top-level kernels/*.cu (plus the emulator's self-test kernels, kernels/emu/selftest.cu)
// and give
// - `$OUT_DIR/kernel_signatures.rs`, the table of `src/kernels.rs` (argument checks, versions);
// - one generated C++ unit per kernel file (PIXELRNN_EMU defined, the .cu included inside a
//   namespace of its own so that same-named helpers of two files cannot collide, then one
//   entry wrapper per kernel), compiled with the host C++ compiler into the static library
//   `pixelrnn_emu` together with kernels/emu/runtime.cpp and the kernel table.
// A kernel marked `// pixelrnn: gpu-only` on the line above `PIXELRNN_KERNEL` is left out of
// the emulator (`emulated: false`). A parse or C++ compile error fails the build with the
// compiler's message: a kernel that the emulator cannot run would otherwise go untested.

/// The marker, alone on the line right above `PIXELRNN_KERNEL`, of a kernel the emulator skips.
const GPU_ONLY_MARKER: &str = "// pixelrnn: gpu-only";

/// Kinds of kernel parameters, named as the variants of `kernels::ParamKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EmuParamKind {
    ConstPtr,
    Ptr,
    I32,
    U32,
    I64,
    U64,
    F32,
}

impl EmuParamKind {
    fn rust_name(self) -> &'static str {
        match self {
            EmuParamKind::ConstPtr => "ConstPtr",
            EmuParamKind::Ptr => "Ptr",
            EmuParamKind::I32 => "I32",
            EmuParamKind::U32 => "U32",
            EmuParamKind::I64 => "I64",
            EmuParamKind::U64 => "U64",
            EmuParamKind::F32 => "F32",
        }
    }
    /// The code of `pixelrnn_emu::param_kind` (kernels/emu/launch.h).
    fn cpp_code(self) -> i32 {
        self as i32
    }
}

/// One `PIXELRNN_KERNEL` found in a kernel source.
#[derive(Debug)]
struct ParsedKernel {
    name: String,
    params: Vec<(String, EmuParamKind)>,
    /// The text inside `__launch_bounds__(...)`, if any.
    launch_bounds: Option<String>,
    gpu_only: bool,
}

/// One kernel source for the emulator.
struct EmuModule {
    /// File stem (`softmax_nll`), or `selftest` for kernels/emu/selftest.cu.
    name: String,
    path: PathBuf,
    kernels: Vec<ParsedKernel>,
    /// Self-test kernels: in the emulator and the signature table, never in PTX.
    selftest: bool,
}

fn build_emulator(manifest_dir: &Path, kernels_dir: &Path, out_dir: &Path) {
    let mut sources: Vec<(PathBuf, bool)> = kernel_sources(kernels_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p, false))
        .collect();
    let selftest = kernels_dir.join("emu").join("selftest.cu");
    if selftest.is_file() {
        sources.push((selftest, true));
    }

    let mut modules = Vec::new();
    let mut errors = String::new();
    for (path, is_selftest) in sources {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("kernel")
            .to_string();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(errors, "{}: {e}", path.display());
                continue;
            }
        };
        let label = path
            .strip_prefix(manifest_dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        match parse_kernel_signatures(&text, &label) {
            Ok(kernels) => modules.push(EmuModule {
                name,
                path,
                kernels,
                selftest: is_selftest,
            }),
            Err(e) => errors.push_str(&e),
        }
    }
    // Kernel names are C symbols: two files must not define the same one.
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for m in &modules {
        for k in &m.kernels {
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == k.name) {
                let _ = writeln!(
                    errors,
                    "kernel {} is defined in both {other}.cu and {}.cu",
                    k.name, m.name
                );
            }
            seen.push((&k.name, &m.name));
        }
    }
    if !errors.is_empty() {
        emu_fail("cannot parse the kernel signatures", &errors);
    }

    write_signature_table(out_dir, &modules);
    compile_emulator(kernels_dir, out_dir, &modules);
}

/// Ends the build with `headline` and `log` (the emulator is not optional).
fn emu_fail(headline: &str, log: &str) -> ! {
    eprintln!("error: pixelrnn emulator: {headline}");
    if !log.trim().is_empty() {
        eprintln!("{}", log.trim_end());
    }
    std::process::exit(1);
}

/// `text` with comments and string literals blanked out (newlines kept, so lines still match).
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            if i < bytes.len() {
                out.extend_from_slice(b"  ");
                i += 2;
            }
        } else if c == b'"' || c == b'\'' {
            out.push(c);
            i += 1;
            while i < bytes.len() && bytes[i] != c && bytes[i] != b'\n' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    out.push(b' ');
                    i += 1;
                }
                out.push(b' ');
                i += 1;
            }
            if i < bytes.len() && bytes[i] == c {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// C-like tokens: identifiers/numbers, and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || c == '_' {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(word);
        } else {
            tokens.push(c.to_string());
            chars.next();
        }
    }
    tokens
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every `PIXELRNN_KERNEL void [__launch_bounds__(...)] name(params)` of a kernel source.
/// Errors name the file and line (`label:line`).
fn parse_kernel_signatures(text: &str, label: &str) -> Result<Vec<ParsedKernel>, String> {
    let raw_lines: Vec<&str> = text.lines().collect();
    let stripped = strip_comments(text);
    let stripped_lines: Vec<&str> = stripped.lines().collect();
    // Byte offset of each stripped line.
    let mut offsets = Vec::with_capacity(stripped_lines.len());
    let mut at = 0;
    for line in stripped.split_inclusive('\n') {
        offsets.push(at);
        at += line.len();
    }

    let mut kernels = Vec::new();
    let mut errors = String::new();
    for (i, line) in stripped_lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("PIXELRNN_KERNEL") else {
            continue;
        };
        if rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let gpu_only = i > 0 && raw_lines[i - 1].trim() == GPU_ONLY_MARKER;
        let start = offsets[i] + (line.len() - trimmed.len()) + "PIXELRNN_KERNEL".len();
        match parse_one_kernel(&stripped[start..]) {
            Ok((name, params, launch_bounds)) => kernels.push(ParsedKernel {
                name,
                params,
                launch_bounds,
                gpu_only,
            }),
            Err(e) => {
                let _ = writeln!(errors, "{label}:{}: {e}", i + 1);
            }
        }
    }
    if errors.is_empty() {
        Ok(kernels)
    } else {
        Err(errors)
    }
}

type KernelHead = (String, Vec<(String, EmuParamKind)>, Option<String>);

/// Parses `void [__launch_bounds__(...)] name(params)` at the start of `text`.
fn parse_one_kernel(text: &str) -> Result<KernelHead, String> {
    // The head ends at the parameter list's closing parenthesis: tokenize a bounded prefix.
    let head: String = text.chars().take(4000).collect();
    let tokens = tokenize(&head);
    let mut i = 0;
    let mut launch_bounds = None;
    let mut name = None;
    let mut saw_void = false;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        if t == "void" {
            saw_void = true;
            i += 1;
        } else if t == "__launch_bounds__" {
            let (inner, next) = balanced(&tokens, i + 1)?;
            launch_bounds = Some(inner.join(" "));
            i = next;
        } else if t == "__global__" || t == "extern" || t == "\"" || t == "C" {
            i += 1;
        } else if is_identifier(t) && tokens.get(i + 1).is_some_and(|n| n == "(") {
            name = Some(t.to_string());
            i += 1;
            break;
        } else {
            return Err(format!(
                "expected `void [__launch_bounds__(...)] name(parameters)` after PIXELRNN_KERNEL, found `{t}`"
            ));
        }
    }
    let name = name.ok_or("PIXELRNN_KERNEL without a kernel name and parameter list")?;
    if !saw_void {
        return Err(format!("kernel {name} must return void"));
    }
    let (inner, _) = balanced(&tokens, i)?;
    let mut params = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut depth = 0;
    for t in inner.iter().chain(std::iter::once(&",".to_string())) {
        match t.as_str() {
            "(" | "<" | "[" => depth += 1,
            ")" | ">" | "]" => depth -= 1,
            _ => {}
        }
        if t == "," && depth == 0 {
            if !(current.is_empty()
                || (current.len() == 1 && current[0] == "void" && params.is_empty()))
            {
                params.push(parse_param(&name, &current)?);
            }
            current.clear();
        } else {
            current.push(t.clone());
        }
    }
    Ok((name, params, launch_bounds))
}

/// The tokens between the parenthesis at `tokens[open]` and its match, and the index after it.
fn balanced(tokens: &[String], open: usize) -> Result<(Vec<String>, usize), String> {
    if tokens.get(open).map(String::as_str) != Some("(") {
        return Err("expected `(`".into());
    }
    let mut depth = 0;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Ok((tokens[open + 1..j].to_vec(), j + 1));
                }
            }
            _ => {}
        }
    }
    Err("unbalanced parentheses (or a parameter list longer than 4000 characters)".into())
}

const ALLOWED_PARAMS: &str = "`const float* __restrict__ x`, `float* __restrict__ x` (also double, int, unsigned pointees), `int`, `unsigned`, `long long` / `pixelrnn_index_t`, `unsigned long long`, `float`";

fn parse_param(kernel: &str, tokens: &[String]) -> Result<(String, EmuParamKind), String> {
    let shown = tokens.join(" ");
    let tokens: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "__restrict__" && *t != "__restrict")
        .collect();
    let bad = || {
        format!("kernel {kernel}: parameter `{shown}` has a type the launch interface does not support; allowed: {ALLOWED_PARAMS}")
    };
    let Some((&name, ty)) = tokens.split_last() else {
        return Err(bad());
    };
    if !is_identifier(name) {
        return Err(format!("kernel {kernel}: parameter `{shown}` has no name"));
    }
    if let Some(star) = ty.iter().position(|t| *t == "*") {
        let after = &ty[star + 1..];
        if after.iter().any(|t| *t != "const") {
            return Err(bad());
        }
        let before = &ty[..star];
        let is_const = before.contains(&"const");
        let base: Vec<&str> = before.iter().copied().filter(|t| *t != "const").collect();
        let ok = matches!(
            base.as_slice(),
            ["float"] | ["double"] | ["int"] | ["unsigned"] | ["unsigned", "int"]
        );
        if !ok {
            return Err(bad());
        }
        let kind = if is_const {
            EmuParamKind::ConstPtr
        } else {
            EmuParamKind::Ptr
        };
        return Ok((name.to_string(), kind));
    }
    let base: Vec<&str> = ty.iter().copied().filter(|t| *t != "const").collect();
    let kind = match base.as_slice() {
        ["int"] => EmuParamKind::I32,
        ["unsigned"] | ["unsigned", "int"] => EmuParamKind::U32,
        ["long", "long"] | ["long", "long", "int"] | ["pixelrnn_index_t"] => EmuParamKind::I64,
        ["unsigned", "long", "long"] | ["unsigned", "long", "long", "int"] => EmuParamKind::U64,
        ["float"] => EmuParamKind::F32,
        _ => return Err(bad()),
    };
    Ok((name.to_string(), kind))
}

fn write_signature_table(out_dir: &Path, modules: &[EmuModule]) {
    let mut rs = String::new();
    rs.push_str("// @generated by build.rs: the launch signature of every kernel.\n");
    for (table, selftest) in [
        ("GENERATED_SIGNATURES", false),
        ("GENERATED_SELFTEST_SIGNATURES", true),
    ] {
        let _ = writeln!(rs, "static {table}: &[KernelSignature] = &[");
        for m in modules.iter().filter(|m| m.selftest == selftest) {
            for k in &m.kernels {
                let params: Vec<String> = k
                    .params
                    .iter()
                    .map(|(n, kind)| {
                        format!(
                            "KernelParam {{ name: {n:?}, kind: ParamKind::{} }}",
                            kind.rust_name()
                        )
                    })
                    .collect();
                let _ = writeln!(
                    rs,
                    "    KernelSignature {{ name: {:?}, module: {:?}, params: &[{}], emulated: {} }},",
                    k.name,
                    m.name,
                    params.join(", "),
                    !k.gpu_only
                );
            }
        }
        rs.push_str("];\n");
    }
    fs::write(out_dir.join("kernel_signatures.rs"), rs).expect("write kernel_signatures.rs");
}

/// Writes `contents` to `path` unless it already holds exactly that (keeps mtimes for the
/// object cache).
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return;
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Flags of every emulator unit (the generated ones record them, so a change recompiles).
const EMU_CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-O2",
    "-fPIC",
    // Kernels view float buffers as float4/int/unsigned: no type-based alias analysis.
    "-fno-strict-aliasing",
    "-Wall",
    "-Wno-unknown-pragmas",
    "-Wno-sign-compare",
    "-Wno-unused-function",
    "-Wno-unused-variable",
    "-Wno-unused-but-set-variable",
    "-Werror=return-type",
];

fn compile_emulator(kernels_dir: &Path, out_dir: &Path, modules: &[EmuModule]) {
    let emu_dir = kernels_dir.join("emu");
    let build_dir = out_dir.join("emu");
    fs::create_dir_all(&build_dir).expect("create OUT_DIR/emu");

    // Headers every unit depends on: a change recompiles all of them.
    let mut headers = vec![emu_dir.join("cuda_emu.h"), emu_dir.join("launch.h")];
    let emu_include = emu_dir.join("include");
    for dir in [kernels_dir, emu_dir.as_path(), emu_include.as_path()] {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "cuh" || x == "h") {
                    headers.push(p);
                }
            }
        }
    }
    let newest_header = headers.iter().filter_map(|h| modified(h)).max();

    let compiler = cc::Build::new().cpp(true).get_compiler();
    let mut units = Vec::new();
    let mut table = String::from(
        "// @generated by build.rs: the emulated kernels.\n#include \"emu/launch.h\"\n",
    );
    let mut entries = Vec::new();
    for m in modules {
        let tu = generated_unit(m);
        let tu_path = build_dir.join(format!("emu_{}.cpp", m.name));
        write_if_changed(&tu_path, &tu);
        let obj = build_dir.join(format!("emu_{}.o", m.name));
        let inputs_newest = [modified(&tu_path), modified(&m.path), newest_header]
            .into_iter()
            .flatten()
            .max();
        let fresh = match (modified(&obj), inputs_newest) {
            (Some(o), Some(i)) => o > i,
            _ => false,
        };
        units.push((tu_path, obj, fresh, m.path.clone()));
        for k in m.kernels.iter().filter(|k| !k.gpu_only) {
            let _ = writeln!(
                table,
                "extern \"C\" const PixelrnnEmuKernel pixelrnn_emu_kernel_{};",
                k.name
            );
            entries.push(format!("&pixelrnn_emu_kernel_{}", k.name));
        }
    }
    let _ = writeln!(
        table,
        "extern \"C\" const PixelrnnEmuKernel* const pixelrnn_emu_kernels[] = {{{}}};",
        if entries.is_empty() {
            "nullptr".to_string()
        } else {
            entries.join(", ")
        }
    );
    let _ = writeln!(
        table,
        "extern \"C\" const size_t pixelrnn_emu_kernel_count = {};",
        entries.len()
    );
    let table_path = build_dir.join("emu_table.cpp");
    write_if_changed(&table_path, &table);

    // Compile the stale units in parallel (g++ processes; cc alone would compile one at a time).
    let stale: Vec<&(PathBuf, PathBuf, bool, PathBuf)> = units.iter().filter(|u| !u.2).collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(stale.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(String::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((tu, obj, _, src)) = stale.get(i) else {
                    break;
                };
                let mut cmd = compiler.to_command();
                cmd.args(EMU_CXX_FLAGS)
                    .arg("-I")
                    .arg(kernels_dir.join("emu").join("include"))
                    .arg("-I")
                    .arg(kernels_dir)
                    .arg("-c")
                    .arg(tu)
                    .arg("-o")
                    .arg(obj);
                let result = cmd.output();
                let mut failures = failures.lock().unwrap_or_else(|e| e.into_inner());
                match result {
                    Ok(out) => {
                        let log = format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        );
                        if !out.status.success() {
                            let _ = fs::remove_file(obj);
                            let _ = writeln!(
                                failures,
                                "==> {} (emulator build of {}) <==\n{}\n",
                                src.display(),
                                tu.display(),
                                log.trim_end()
                            );
                        } else if !log.trim().is_empty() {
                            warn(&format!(
                                "pixelrnn emulator: {} compiled with messages:\n{}",
                                src.display(),
                                log.trim_end()
                            ));
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(failures, "cannot run the C++ compiler: {e}");
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failures.is_empty() {
        emu_fail(
            "a kernel does not compile for the CPU emulator (C++17, PIXELRNN_EMU; see kernels/emu/cuda_emu.h for what is supported, and mark GPU-only kernels with `// pixelrnn: gpu-only`)",
            &failures,
        );
    }

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .include(kernels_dir)
        .include(&emu_dir)
        .flag("-fno-strict-aliasing")
        .flag_if_supported("-Wno-unknown-pragmas")
        .warnings(true)
        .file(emu_dir.join("runtime.cpp"))
        .file(&table_path);
    for (_, obj, _, _) in &units {
        build.object(obj);
    }
    if let Err(e) = build.try_compile("pixelrnn_emu") {
        emu_fail("the emulator runtime does not compile", &e.to_string());
    }
}

/// The C++ unit that compiles kernel source `m` for the emulator.
fn generated_unit(m: &EmuModule) -> String {
    let ns = format!("pixelrnn_emu_module_{}", m.name);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// @generated by build.rs: {} for the CPU emulator.\n// flags: {}",
        m.path.display(),
        EMU_CXX_FLAGS.join(" ")
    );
    s.push_str("#define PIXELRNN_EMU 1\n#include \"emu/cuda_emu.h\"\n#include \"emu/launch.h\"\n");
    // The namespace keeps the file's helpers (inline or not) apart from other files' helpers of
    // the same name; the kernels are extern "C" and keep their names.
    let _ = writeln!(
        s,
        "namespace {ns} {{\n#include {:?}\n}}  // namespace {ns}",
        m.path.display().to_string()
    );
    for k in m.kernels.iter().filter(|k| !k.gpu_only) {
        let f = format!("{ns}::{}", k.name);
        let traits = format!("::pixelrnn_emu::kernel_traits<decltype(&{f})>");
        let _ = writeln!(
            s,
            "static_assert({traits}::arity == {n}, \"build.rs parsed {n} parameters of kernel {}\");",
            k.name,
            n = k.params.len()
        );
        for (i, (pname, kind)) in k.params.iter().enumerate() {
            let _ = writeln!(
                s,
                "static_assert(::pixelrnn_emu::param_kind<{traits}::param<{i}>>() == {}, \"build.rs parsed parameter {pname} of kernel {} as {}, but its C++ type differs\");",
                kind.cpp_code(),
                k.name,
                kind.rust_name()
            );
        }
        let bounds = match &k.launch_bounds {
            Some(b) => format!("PIXELRNN_EMU_FIRST({b})"),
            None => "0".to_string(),
        };
        let _ = writeln!(
            s,
            "static void pixelrnn_emu_entry_{name}(void** args) {{ ::pixelrnn_emu::invoke(&{f}, args); }}\nextern \"C\" const PixelrnnEmuKernel pixelrnn_emu_kernel_{name} = {{\"{name}\", &pixelrnn_emu_entry_{name}, {n}, {bounds}}};",
            name = k.name,
            n = k.params.len()
        );
    }
    s
}
