//! The CPU emulator's library (kernels/emu/, src/backend/cuda/emulator.rs, docs/emulator.md).
//!
//! Always built, with or without a CUDA compiler, from the parsed [`KernelFile`]s: one
//! generated C++ unit per kernel file (PIXELRNN_EMU defined, the .cu included inside a namespace
//! of its own so that same-named helpers of two files cannot collide, then one entry wrapper
//! per kernel), compiled with the host C++ compiler into the static library `pixelrnn_emu`
//! together with the runtime (kernels/emu/runtime/, [`RUNTIME_SOURCES`]) and the kernel table.
//! Kernels marked GPU-only are left out. A C++ compile error fails the build with the
//! compiler's message: a kernel that the emulator cannot run would otherwise go untested.
//!
//! Every kernel file is compiled twice: the normal unit (what parity runs execute) and the
//! counted unit ([`generated_counted_unit`], [`COUNTED_CXX_FLAGS`]), instrumented with
//! `-fsanitize=thread` so that every memory access calls the memory counters of
//! kernels/emu/runtime/counters.cpp; a launch with counters on runs the counted copy. The
//! normal units are compiled exactly as before, so the counters cost nothing when off. The
//! counted units include copies of the kernel sources whose `#pragma unroll` GCC obeys
//! ([`counted_source`]): the counters' load rounds depend on which loads are separate
//! instructions, as they are in nvcc's unrolled code.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::signatures::KernelFile;
use crate::warn;

/// Ends the build with `headline` and `log` (the emulator is not optional).
pub fn fail(headline: &str, log: &str) -> ! {
    eprintln!("error: pixelrnn emulator: {headline}");
    if !log.trim().is_empty() {
        eprintln!("{}", log.trim_end());
    }
    std::process::exit(1);
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

/// Extra flags of the counted units: GCC's ThreadSanitizer instrumentation (only its calls; the
/// runtime defines the `__tsan_*` callbacks and libtsan is not linked), no function entry/exit
/// calls, and no scalar replacement of aggregates, so that a `float4` copy stays one 16-byte
/// access instead of four 4-byte ones.
pub const COUNTED_CXX_FLAGS: &[&str] = &[
    "-fsanitize=thread",
    "--param=tsan-instrument-func-entry-exit=0",
    "-fno-tree-sra",
];

/// The runtime's sources in kernels/emu/runtime/, one job each (its runtime.h lists them).
pub const RUNTIME_SOURCES: &[&str] = &[
    "context.cpp",
    "scheduler.cpp",
    "intrinsics.cpp",
    "async_copy.cpp",
    "memory.cpp",
    "faults.cpp",
    "grid.cpp",
    "counters.cpp",
    "c_api.cpp",
];

/// How far GCC unrolls a loop marked `#pragma unroll` in the counted copies: every
/// constant-trip loop of the kernels (tile loops of at most 32) fully, as nvcc does.
const COUNTED_UNROLL: u32 = 32;

/// `source` with each `#pragma unroll [N]` (which GCC ignores) turned into GCC's `#pragma GCC
/// unroll N` (bare: [`COUNTED_UNROLL`]); everything else, line numbers included, unchanged.
pub fn counted_source(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 256);
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("#pragma unroll") else {
            out.push_str(line);
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        let count = rest.trim();
        let count = if count.is_empty() {
            COUNTED_UNROLL.to_string()
        } else {
            count.to_string()
        };
        out.push_str(&format!("{indent}#pragma GCC unroll {count}"));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Writes [`counted_source`] copies of the kernel sources of `kernels_dir` (its `.cu` and
/// `.cuh` files; a copy's quoted includes find the other copies first) into `dir`.
fn write_counted_sources(kernels_dir: &Path, dir: &Path) {
    fs::create_dir_all(dir).expect("create the counted sources' directory");
    let entries =
        fs::read_dir(kernels_dir).unwrap_or_else(|e| panic!("read {}: {e}", kernels_dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let is_source = path.extension().is_some_and(|x| x == "cu" || x == "cuh");
        if !is_source {
            continue;
        }
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        write_if_changed(&dir.join(entry.file_name()), &counted_source(&text));
    }
}

/// One generated unit and its object.
struct Unit {
    /// The generated C++ (`$OUT_DIR/emu/emu_<name>.cpp`).
    tu: PathBuf,
    /// Its object file.
    obj: PathBuf,
    /// The object is newer than the unit, the kernel source and every header.
    fresh: bool,
    /// The kernel source.
    src: PathBuf,
    /// The counted copy (compiled with [`COUNTED_CXX_FLAGS`] too).
    counted: bool,
}

/// Compiles the emulator units of `modules` (stale ones only), the runtime and the kernel
/// table into `$OUT_DIR/libpixelrnn_emu.a`, and links it (cargo directives from `cc`).
pub fn compile(kernels_dir: &Path, out_dir: &Path, modules: &[KernelFile]) {
    let emu_dir = kernels_dir.join("emu");
    let build_dir = out_dir.join("emu");
    fs::create_dir_all(&build_dir).expect("create OUT_DIR/emu");

    let newest_header = newest_header(kernels_dir);
    let counted_dir = build_dir.join("counted-src");
    write_counted_sources(kernels_dir, &counted_dir);
    let mut units = Vec::new();
    for m in modules {
        for counted in [false, true] {
            let stem = if counted {
                format!("emu_counted_{}", m.name)
            } else {
                format!("emu_{}", m.name)
            };
            let tu = build_dir.join(format!("{stem}.cpp"));
            let contents = if counted {
                // Sources outside kernels/ itself (the emulator's self-tests) as they are.
                let copy = m
                    .path
                    .file_name()
                    .map(|f| counted_dir.join(f))
                    .filter(|c| m.path.parent() == Some(kernels_dir) && c.exists());
                generated_counted_unit(m, copy.as_deref().unwrap_or(&m.path))
            } else {
                generated_unit(m)
            };
            write_if_changed(&tu, &contents);
            let obj = build_dir.join(format!("{stem}.o"));
            let inputs_newest = [modified(&tu), modified(&m.path), newest_header]
                .into_iter()
                .flatten()
                .max();
            let fresh = match (modified(&obj), inputs_newest) {
                (Some(o), Some(i)) => o > i,
                _ => false,
            };
            units.push(Unit {
                tu,
                obj,
                fresh,
                src: m.path.clone(),
                counted,
            });
        }
    }
    let table_path = build_dir.join("emu_table.cpp");
    write_if_changed(&table_path, &kernel_table(modules));

    let compiler = cc::Build::new().cpp(true).get_compiler();
    let failures = compile_stale(&compiler, kernels_dir, &units);
    if !failures.is_empty() {
        fail(
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
        .files(
            RUNTIME_SOURCES
                .iter()
                .map(|f| emu_dir.join("runtime").join(f)),
        )
        .file(&table_path);
    for unit in &units {
        build.object(&unit.obj);
    }
    if let Err(e) = build.try_compile("pixelrnn_emu") {
        fail("the emulator runtime does not compile", &e.to_string());
    }
}

/// The newest modification time of the headers every unit depends on (a change recompiles
/// all of them): kernels/*.cuh, kernels/emu/*.h, kernels/emu/include/*.h.
fn newest_header(kernels_dir: &Path) -> Option<std::time::SystemTime> {
    let emu_dir = kernels_dir.join("emu");
    let mut headers = vec![emu_dir.join("cuda_emu.h"), emu_dir.join("launch.h")];
    for dir in [
        kernels_dir.to_path_buf(),
        emu_dir.clone(),
        emu_dir.join("include"),
    ] {
        headers.extend(crate::headers_in(&dir));
    }
    headers.iter().filter_map(|h| modified(h)).max()
}

/// The C++ table of the emulated kernels (`pixelrnn_emu_kernels`, `pixelrnn_emu_kernel_count`).
pub fn kernel_table(modules: &[KernelFile]) -> String {
    let mut table = String::from(
        "// @generated by build.rs: the emulated kernels.\n#include \"emu/launch.h\"\n",
    );
    let mut entries = Vec::new();
    for m in modules {
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
    table
}

/// Compiles the stale units in parallel (g++ processes; cc alone would compile one at a
/// time); returns the failures' logs, empty when all compiled.
fn compile_stale(compiler: &cc::Tool, kernels_dir: &Path, units: &[Unit]) -> String {
    let stale: Vec<&Unit> = units.iter().filter(|u| !u.fresh).collect();
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
                let Some(unit) = stale.get(i) else {
                    break;
                };
                let result = compile_unit(compiler, kernels_dir, unit);
                let mut failures = failures.lock().unwrap_or_else(|e| e.into_inner());
                failures.push_str(&result);
            });
        }
    });
    failures.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Compiles one unit; returns its failure log, empty on success (warnings become cargo
/// warnings).
fn compile_unit(compiler: &cc::Tool, kernels_dir: &Path, unit: &Unit) -> String {
    let mut cmd = compiler.to_command();
    cmd.args(EMU_CXX_FLAGS);
    if unit.counted {
        cmd.args(COUNTED_CXX_FLAGS);
    }
    cmd.arg("-I")
        .arg(kernels_dir.join("emu").join("include"))
        .arg("-I")
        .arg(kernels_dir)
        .arg("-c")
        .arg(&unit.tu)
        .arg("-o")
        .arg(&unit.obj);
    let mut failure = String::new();
    match cmd.output() {
        Ok(out) => {
            let log = crate::compiler::output_log(&out);
            if !out.status.success() {
                let _ = fs::remove_file(&unit.obj);
                let _ = writeln!(
                    failure,
                    "==> {} (emulator build of {}) <==\n{}\n",
                    unit.src.display(),
                    unit.tu.display(),
                    log.trim_end()
                );
            } else if !log.trim().is_empty() {
                warn(&format!(
                    "pixelrnn emulator: {} compiled with messages:\n{}",
                    unit.src.display(),
                    log.trim_end()
                ));
            }
        }
        Err(e) => {
            let _ = writeln!(failure, "cannot run the C++ compiler: {e}");
        }
    }
    failure
}

/// The C++ unit that compiles kernel source `m` for the emulator.
pub fn generated_unit(m: &KernelFile) -> String {
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
                "static_assert(::pixelrnn_emu::param_kind<{traits}::param<{i}>>() == {}, \"build.rs parsed parameter {pname} of kernel {} as {kind:?}, but its C++ type differs\");",
                kind.cpp_code(),
                k.name,
            );
        }
        let bounds = match &k.launch_bounds {
            Some(b) => format!("PIXELRNN_EMU_FIRST({b})"),
            None => "0".to_string(),
        };
        let _ = writeln!(
            s,
            "static void pixelrnn_emu_entry_{name}(void** args) {{ ::pixelrnn_emu::invoke(&{f}, args); }}\nextern \"C\" void pixelrnn_emu_counted_entry_{name}(void** args);\nextern \"C\" const PixelrnnEmuKernel pixelrnn_emu_kernel_{name} = {{\"{name}\", &pixelrnn_emu_entry_{name}, {n}, {bounds}, &pixelrnn_emu_counted_entry_{name}}};",
            name = k.name,
            n = k.params.len()
        );
    }
    s
}

/// The counted copy of unit [`generated_unit`]: the same source in a namespace of its own,
/// every kernel renamed `pixelrnn_emu_counted_<name>` (a macro before the include, so that the
/// extern "C" names of the two copies differ), and one extern "C" entry per kernel,
/// `pixelrnn_emu_counted_entry_<name>`, that the normal unit's table entry points to. Compiled
/// with [`COUNTED_CXX_FLAGS`] as well, from `source` (the [`counted_source`] copy of
/// `m.path`, or `m.path` itself).
pub fn generated_counted_unit(m: &KernelFile, source: &Path) -> String {
    let ns = format!("pixelrnn_emu_counted_module_{}", m.name);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// @generated by build.rs: {} for the CPU emulator's memory counters.\n// flags: {} {}",
        m.path.display(),
        EMU_CXX_FLAGS.join(" "),
        COUNTED_CXX_FLAGS.join(" ")
    );
    s.push_str("#define PIXELRNN_EMU 1\n#define PIXELRNN_EMU_COUNTED 1\n#include \"emu/cuda_emu.h\"\n#include \"emu/launch.h\"\n");
    let kernels: Vec<_> = m.kernels.iter().filter(|k| !k.gpu_only).collect();
    for k in &kernels {
        let _ = writeln!(s, "#define {0} pixelrnn_emu_counted_{0}", k.name);
    }
    let _ = writeln!(
        s,
        "namespace {ns} {{\n#include {:?}\n}}  // namespace {ns}",
        source.display().to_string()
    );
    for k in &kernels {
        let _ = writeln!(s, "#undef {}", k.name);
    }
    for k in &kernels {
        let _ = writeln!(
            s,
            "extern \"C\" void pixelrnn_emu_counted_entry_{name}(void** args) {{ ::pixelrnn_emu::invoke(&{ns}::pixelrnn_emu_counted_{name}, args); }}",
            name = k.name
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signatures::{ParamKind, ParsedKernel};

    fn file() -> KernelFile {
        KernelFile {
            name: "fill".into(),
            path: PathBuf::from("/repo/kernels/fill.cu"),
            kernels: vec![
                ParsedKernel {
                    name: "fill_fwd_v1".into(),
                    params: vec![("x".into(), ParamKind::Ptr), ("v".into(), ParamKind::F32)],
                    launch_bounds: Some("256".into()),
                    gpu_only: false,
                },
                ParsedKernel {
                    name: "fill_tc_v2".into(),
                    params: Vec::new(),
                    launch_bounds: None,
                    gpu_only: true,
                },
            ],
            selftest: false,
        }
    }

    #[test]
    fn a_unit_includes_its_source_in_a_namespace_and_checks_the_parsed_types() {
        let unit = generated_unit(&file());
        assert!(unit.starts_with("// @generated by build.rs: /repo/kernels/fill.cu for the CPU emulator.\n// flags: -std=c++17 -O2"), "{unit}");
        assert!(unit.contains("#define PIXELRNN_EMU 1\n"), "{unit}");
        assert!(unit.contains("namespace pixelrnn_emu_module_fill {\n#include \"/repo/kernels/fill.cu\"\n}  // namespace pixelrnn_emu_module_fill\n"), "{unit}");
        assert!(unit.contains("static_assert(::pixelrnn_emu::kernel_traits<decltype(&pixelrnn_emu_module_fill::fill_fwd_v1)>::arity == 2,"), "{unit}");
        assert!(
            unit.contains(
                "param<1>>() == 6, \"build.rs parsed parameter v of kernel fill_fwd_v1 as F32"
            ),
            "{unit}"
        );
        assert!(unit.contains("pixelrnn_emu_kernel_fill_fwd_v1 = {\"fill_fwd_v1\", &pixelrnn_emu_entry_fill_fwd_v1, 2, PIXELRNN_EMU_FIRST(256), &pixelrnn_emu_counted_entry_fill_fwd_v1};"), "{unit}");
        assert!(
            !unit.contains("fill_tc_v2"),
            "GPU-only kernels are left out:\n{unit}"
        );
    }

    #[test]
    fn the_counted_copies_turn_pragma_unroll_into_gccs_and_keep_every_line() {
        let src = "a\n    #pragma unroll\n  for (;;) {}\n#pragma unroll 4\n#pragma unroll 1\n// #pragma unroll\nend";
        let want = "a\n    #pragma GCC unroll 32\n  for (;;) {}\n#pragma GCC unroll 4\n#pragma GCC unroll 1\n// #pragma unroll\nend";
        assert_eq!(counted_source(src), want);
        assert_eq!(counted_source(src).lines().count(), src.lines().count());
    }

    #[test]
    fn the_counted_unit_renames_the_kernels_and_defines_their_counted_entries() {
        let unit = generated_counted_unit(&file(), Path::new("/out/emu/counted-src/fill.cu"));
        assert!(unit.contains("-fsanitize=thread"), "{unit}");
        assert!(unit.contains("#define PIXELRNN_EMU_COUNTED 1\n"), "{unit}");
        assert!(
            unit.contains("#define fill_fwd_v1 pixelrnn_emu_counted_fill_fwd_v1\nnamespace pixelrnn_emu_counted_module_fill {\n#include \"/out/emu/counted-src/fill.cu\"\n}  // namespace pixelrnn_emu_counted_module_fill\n#undef fill_fwd_v1\n"),
            "{unit}"
        );
        assert!(unit.contains("extern \"C\" void pixelrnn_emu_counted_entry_fill_fwd_v1(void** args) { ::pixelrnn_emu::invoke(&pixelrnn_emu_counted_module_fill::pixelrnn_emu_counted_fill_fwd_v1, args); }"), "{unit}");
        assert!(
            !unit.contains("fill_tc_v2"),
            "GPU-only kernels are left out:\n{unit}"
        );
    }

    #[test]
    fn the_table_lists_the_emulated_kernels() {
        let table = kernel_table(&[file()]);
        assert!(
            table.contains(
                "extern \"C\" const PixelrnnEmuKernel pixelrnn_emu_kernel_fill_fwd_v1;\n"
            ),
            "{table}"
        );
        assert!(
            table.contains("pixelrnn_emu_kernels[] = {&pixelrnn_emu_kernel_fill_fwd_v1};\n"),
            "{table}"
        );
        assert!(
            table.ends_with("pixelrnn_emu_kernel_count = 1;\n"),
            "{table}"
        );
        let empty = kernel_table(&[]);
        assert!(
            empty.contains("pixelrnn_emu_kernels[] = {nullptr};\n"),
            "{empty}"
        );
        assert!(
            empty.ends_with("pixelrnn_emu_kernel_count = 0;\n"),
            "{empty}"
        );
    }

    #[test]
    fn every_runtime_source_is_compiled() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../emu/runtime");
        let mut found: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".cpp"))
            .collect();
        found.sort();
        let mut listed: Vec<String> = RUNTIME_SOURCES.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(
            found,
            listed,
            "RUNTIME_SOURCES and {} differ",
            dir.display()
        );
    }

    #[test]
    fn files_are_rewritten_only_when_their_contents_change() {
        let dir = crate::test_dir("write-if-changed");
        let path = dir.join("unit.cpp");
        write_if_changed(&path, "a");
        let first = modified(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_if_changed(&path, "a");
        assert_eq!(modified(&path), Some(first));
        write_if_changed(&path, "b");
        assert_eq!(fs::read_to_string(&path).unwrap(), "b");
        assert!(newest_header(&dir).is_none(), "no headers there");
        fs::remove_dir_all(&dir).unwrap();
    }
}
