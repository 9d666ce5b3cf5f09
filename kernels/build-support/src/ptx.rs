//! Every `kernels/*.cu` to PTX, then to an sm_90 cubin and ptxas report when ptxas is found,
//! under the build's error policy ([`Ctx::fail_or_warn`]): without a compiler, or when a
//! kernel does not compile, the build goes on CPU-only unless `PIXELRNN_REQUIRE_KERNELS=1`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::compiler::{self, Compiled, Compiler};
use crate::ptxas;
use crate::resources::KernelResources;
use crate::toolchain::Search;
use crate::REPORT_ARCH;
use crate::{headers_in, kernel_sources, push_failure, warn, Ctx, CPU_ONLY, INSTALL_HINT};

/// What the registry of `pixelrnn_kernels` gets to see.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Whether every kernel file compiled (false: a CPU-only build, no modules).
    pub compiled: bool,
    /// [`Compiler::describe`], or `"none"`.
    pub compiler: String,
    /// One per kernel file, sorted by name.
    pub modules: Vec<BuiltModule>,
}

impl Outcome {
    /// A build without kernels.
    fn not_compiled() -> Self {
        Outcome {
            compiled: false,
            compiler: "none".to_string(),
            modules: Vec::new(),
        }
    }
}

/// One kernel file's outputs.
#[derive(Debug, Default)]
pub struct BuiltModule {
    /// The file stem.
    pub name: String,
    /// The PTX.
    pub ptx_path: PathBuf,
    /// Its `.entry` names, in PTX order.
    pub entry_points: Vec<String>,
    /// The ptxas report, when ptxas ran.
    pub report_path: Option<PathBuf>,
    /// The report, parsed.
    pub resources: BTreeMap<String, KernelResources>,
    /// The sm_90 cubin ptxas wrote while reporting (embedded: a device of that architecture
    /// loads it without JIT-compiling the PTX, so a driver older than the PTX ISA still works).
    pub cubin_path: Option<PathBuf>,
}

/// Compiles every kernel file of `ctx.kernels_dir` (printing the rerun directives for them
/// and the headers beside them).
pub fn build_kernels(ctx: &Ctx, search: &Search) -> Outcome {
    let sources = match kernel_sources(&ctx.kernels_dir) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            let headline = format!("pixelrnn: no kernels/*.cu in {}", ctx.kernels_dir.display());
            ctx.fail_or_warn(&headline, CPU_ONLY, "");
            return Outcome::not_compiled();
        }
        Err(e) => {
            let headline = format!("pixelrnn: cannot read {}: {e}", ctx.kernels_dir.display());
            ctx.fail_or_warn(&headline, CPU_ONLY, "");
            return Outcome::not_compiled();
        }
    };
    for path in sources.iter().chain(&headers_in(&ctx.kernels_dir)) {
        println!("cargo::rerun-if-changed={}", path.display());
    }

    let mut tried = Vec::new();
    let Some(compiler) = compiler::find(ctx, search, &mut tried) else {
        let headline = format!(
            "pixelrnn: CUDA kernels were NOT compiled: no nvcc or libnvrtc found. To fix: {INSTALL_HINT}"
        );
        // The list of places searched is for the failing CI log, not for every CPU-only build.
        let log = if ctx.require {
            tried.join("\n")
        } else {
            String::new()
        };
        ctx.fail_or_warn(&headline, CPU_ONLY, &log);
        return Outcome::not_compiled();
    };
    for note in &tried {
        // Candidates that exist but failed their probe are worth knowing about.
        if note.contains("probe failed") {
            warn(&format!("pixelrnn: {note}"));
        }
    }

    let Some(compiled) = compile_all(ctx, &compiler, &sources) else {
        return Outcome::not_compiled();
    };
    let ptxas = search.ptxas(&ctx.toolchain, compiler.nvcc_path());
    Outcome {
        compiled: true,
        compiler: compiler.describe(),
        modules: assemble_all(ctx, ptxas.as_deref(), compiled),
    }
}

/// Compiles all files in parallel (NVRTC programs are independent, nvcc is a process); `None`
/// when one failed (after [`Ctx::fail_or_warn`]).
fn compile_all(ctx: &Ctx, compiler: &Compiler, sources: &[PathBuf]) -> Option<Vec<Compiled>> {
    let results: Vec<Result<Compiled, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|src| scope.spawn(|| compiler::compile_one(ctx, compiler, src)))
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
            Err(log) => push_failure(&mut failures, &src.display().to_string(), &log),
        }
    }
    if !failures.is_empty() {
        let headline = format!(
            "pixelrnn: CUDA kernels failed to compile with {}",
            compiler.describe()
        );
        ctx.fail_or_warn(&headline, CPU_ONLY, &failures);
        return None;
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
    Some(compiled)
}

/// Resource reports and cubins: optional, but a ptxas that rejects our PTX is a real error.
fn assemble_all(ctx: &Ctx, ptxas: Option<&Path>, compiled: Vec<Compiled>) -> Vec<BuiltModule> {
    let mut modules = Vec::new();
    let mut ptxas_failures = String::new();
    for c in compiled {
        let mut module = BuiltModule {
            name: c.name,
            ptx_path: c.ptx_path,
            entry_points: c.entry_points,
            ..BuiltModule::default()
        };
        if let Some(ptxas) = ptxas {
            match ptxas::run(ptxas, &module.ptx_path, &ctx.ptx_dir, &module.name) {
                Ok(report) => {
                    let path = ctx.ptx_dir.join(format!("{}.ptxas.txt", module.name));
                    fs::write(&path, &report).expect("write ptxas report");
                    module.report_path = Some(path);
                    module.resources = ptxas::parse_resource_report(&report);
                    let cubin = ptxas::cubin_path(&ctx.ptx_dir, &module.name);
                    module.cubin_path = cubin.is_file().then_some(cubin);
                }
                Err(log) => push_failure(&mut ptxas_failures, &module.name, &log),
            }
        }
        modules.push(module);
    }
    if !ptxas_failures.is_empty() {
        ctx.fail_or_warn(
            &format!("pixelrnn: ptxas -arch={REPORT_ARCH} rejected the PTX"),
            "the PTX is embedded without resource reports",
            &ptxas_failures,
        );
    }
    modules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::Toolchain;

    fn ctx(dir: &Path, toolchain: Toolchain) -> Ctx {
        let ptx_dir = dir.join("out");
        fs::create_dir_all(&ptx_dir).unwrap();
        Ctx {
            require: false,
            repo_root: dir.to_path_buf(),
            kernels_dir: dir.join("kernels"),
            ptx_dir,
            toolchain,
        }
    }

    #[test]
    fn no_kernel_sources_is_a_cpu_only_build() {
        let dir = crate::test_dir("ptx-none");
        fs::create_dir_all(dir.join("kernels")).unwrap();
        let c = ctx(&dir, Toolchain::at(dir.join("no-toolchain")));
        let outcome = build_kernels(&c, &Search::default());
        assert!(!outcome.compiled);
        assert_eq!(outcome.compiler, "none");
        assert!(outcome.modules.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The whole pipeline on a one-kernel file, with the repository's toolchain when it is
    /// installed (CI): PTX, entry points, and with ptxas a report, its parse and the cubin.
    #[test]
    fn one_kernel_file_is_compiled_with_the_repository_toolchain() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let toolchain = Toolchain::locate(std::env::var_os("PIXELRNN_CUDA_TOOLCHAIN"), &repo);
        if !toolchain.nvrtc_lib().is_dir() {
            eprintln!("no toolchain at {}: skipped", toolchain.root.display());
            return;
        }
        let dir = crate::test_dir("ptx-one");
        fs::create_dir_all(dir.join("kernels")).unwrap();
        fs::write(
            dir.join("kernels").join("tiny.cu"),
            "extern \"C\" __global__ void tiny_fwd_v1(float* x) { x[threadIdx.x] = 2.0f; }\n",
        )
        .unwrap();
        let c = ctx(&dir, toolchain);
        let search = Search {
            path: Vec::new(),
            ..Search::from_env()
        };
        let outcome = build_kernels(&c, &search);
        assert!(outcome.compiled, "{outcome:?}");
        assert_eq!(outcome.modules.len(), 1);
        let m = &outcome.modules[0];
        assert_eq!(m.name, "tiny");
        assert_eq!(m.entry_points, ["tiny_fwd_v1"]);
        let ptx = fs::read_to_string(&m.ptx_path).unwrap();
        assert!(ptx.contains(".target sm_80"), "{ptx}");
        let has_ptxas = c
            .toolchain
            .nvcc_bin()
            .join(crate::toolchain::exe("ptxas"))
            .is_file();
        assert_eq!(m.report_path.is_some(), has_ptxas, "{m:?}");
        if let Some(report) = &m.report_path {
            let text = fs::read_to_string(report).unwrap();
            assert!(text.starts_with("ptxas "), "{text}");
            assert!(m.resources["tiny_fwd_v1"].registers.is_some(), "{text}");
            let cubin = fs::read(m.cubin_path.as_ref().expect("cubin")).unwrap();
            assert_eq!(&cubin[..4], b"\x7fELF");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
