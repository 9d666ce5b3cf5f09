//! The launch signatures of the kernels: every `PIXELRNN_KERNEL void [__launch_bounds__(...)]
//! name(params)` of every top-level `kernels/*.cu`, plus the emulator's self-test kernels
//! (`kernels/emu/selftest.cu`). They give the Rust table of `pixelrnn_kernels` (argument checks,
//! versions) and the emulator's generated units, in every build, with or without a CUDA
//! compiler.
//!
//! A kernel marked [`GPU_ONLY_MARKER`] on the line above `PIXELRNN_KERNEL` is listed but left
//! out of the emulator (`emulated: false`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use crate::kernel_sources;
pub use crate::param_kind::ParamKind;
use crate::tokens::{balanced, is_identifier, strip_comments, tokenize};

/// The marker, alone on the line right above `PIXELRNN_KERNEL`, of a kernel the emulator skips.
pub const GPU_ONLY_MARKER: &str = "// pixelrnn: gpu-only";

impl ParamKind {
    /// The code of `pixelrnn_emu::param_kind` (kernels/emu/launch.h).
    pub fn cpp_code(self) -> i32 {
        self as i32
    }
}

/// One parameter: its name and kind.
pub type Param = (String, ParamKind);

/// One `PIXELRNN_KERNEL` found in a kernel source.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKernel {
    /// The entry point.
    pub name: String,
    /// Its parameters in order.
    pub params: Vec<Param>,
    /// The text inside `__launch_bounds__(...)`, if any.
    pub launch_bounds: Option<String>,
    /// Marked [`GPU_ONLY_MARKER`].
    pub gpu_only: bool,
}

/// One kernel source and its kernels.
#[derive(Debug)]
pub struct KernelFile {
    /// File stem (`softmax_nll`), or `selftest` for kernels/emu/selftest.cu.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its kernels in source order.
    pub kernels: Vec<ParsedKernel>,
    /// Self-test kernels: in the emulator and the signature table, never in PTX.
    pub selftest: bool,
}

/// Parses every top-level `*.cu` of `kernels_dir` and `emu/selftest.cu`; errors name the file
/// (relative to `repo_root`) and line, and two files defining the same kernel are an error
/// (kernel names are C symbols).
pub fn parse_kernel_files(kernels_dir: &Path, repo_root: &Path) -> Result<Vec<KernelFile>, String> {
    let mut sources: Vec<(PathBuf, bool)> = kernel_sources(kernels_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p, false))
        .collect();
    let selftest = kernels_dir.join("emu").join("selftest.cu");
    if selftest.is_file() {
        sources.push((selftest, true));
    }

    let mut files = Vec::new();
    let mut errors = String::new();
    for (path, selftest) in sources {
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
            .strip_prefix(repo_root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match parse_kernel_signatures(&text, &label) {
            Ok(kernels) => files.push(KernelFile {
                name,
                path,
                kernels,
                selftest,
            }),
            Err(e) => errors.push_str(&e),
        }
    }
    errors.push_str(&duplicate_kernels(&files));
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// One line per kernel name that two files define.
fn duplicate_kernels(files: &[KernelFile]) -> String {
    let mut errors = String::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for f in files {
        for k in &f.kernels {
            if let Some((_, other)) = seen.iter().find(|(n, _)| *n == k.name) {
                let _ = writeln!(
                    errors,
                    "kernel {} is defined in both {other}.cu and {}.cu",
                    k.name, f.name
                );
            }
            seen.push((&k.name, &f.name));
        }
    }
    errors
}

/// Every `PIXELRNN_KERNEL void [__launch_bounds__(...)] name(params)` of a kernel source.
/// Errors name the file and line (`label:line`).
pub fn parse_kernel_signatures(text: &str, label: &str) -> Result<Vec<ParsedKernel>, String> {
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

type KernelHead = (String, Vec<Param>, Option<String>);

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

const ALLOWED_PARAMS: &str = "`const float* __restrict__ x`, `float* __restrict__ x` (also double, int, unsigned, long long / pixelrnn_index_t pointees), `int`, `unsigned`, `long long` / `pixelrnn_index_t`, `unsigned long long`, `float`";

fn parse_param(kernel: &str, tokens: &[String]) -> Result<Param, String> {
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
            ["float"]
                | ["double"]
                | ["int"]
                | ["unsigned"]
                | ["unsigned", "int"]
                | ["long", "long"]
                | ["pixelrnn_index_t"]
        );
        if !ok {
            return Err(bad());
        }
        let kind = if is_const {
            ParamKind::ConstPtr
        } else {
            ParamKind::Ptr
        };
        return Ok((name.to_string(), kind));
    }
    let base: Vec<&str> = ty.iter().copied().filter(|t| *t != "const").collect();
    let kind = match base.as_slice() {
        ["int"] => ParamKind::I32,
        ["unsigned"] | ["unsigned", "int"] => ParamKind::U32,
        ["long", "long"] | ["long", "long", "int"] | ["pixelrnn_index_t"] => ParamKind::I64,
        ["unsigned", "long", "long"] | ["unsigned", "long", "long", "int"] => ParamKind::U64,
        ["float"] => ParamKind::F32,
        _ => return Err(bad()),
    };
    Ok((name.to_string(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"#include "common.cuh"
// PIXELRNN_KERNEL void commented_out(int n)
/* PIXELRNN_KERNEL void also_commented(int n) */
PIXELRNN_KERNEL_ATTRS int not_a_kernel;
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
    a_fwd_v1(const float* __restrict__ x, float* __restrict__ y, pixelrnn_index_t n,
             unsigned seed, unsigned long long offset, float scale, int k) {
    const char* s = "PIXELRNN_KERNEL void in_a_string(int n)";
}
#ifndef PIXELRNN_EMU
// pixelrnn: gpu-only
PIXELRNN_KERNEL void a_tc_v2(void) {}
#endif
extern "C" __global__ void not_declared_with_the_macro(int n) {}
"#;

    #[test]
    fn declarations_are_parsed_with_kinds_bounds_and_markers() {
        let kernels = parse_kernel_signatures(SOURCE, "kernels/a.cu").unwrap();
        assert_eq!(kernels.len(), 2, "{kernels:?}");
        let a = &kernels[0];
        assert_eq!(a.name, "a_fwd_v1");
        assert_eq!(a.launch_bounds.as_deref(), Some("PIXELRNN_BLOCK , 2"));
        assert!(!a.gpu_only);
        let kinds: Vec<ParamKind> = a.params.iter().map(|p| p.1).collect();
        use ParamKind::*;
        assert_eq!(kinds, [ConstPtr, Ptr, I64, U32, U64, F32, I32]);
        let names: Vec<&str> = a.params.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["x", "y", "n", "seed", "offset", "scale", "k"]);
        assert_eq!(
            kernels[1],
            ParsedKernel {
                name: "a_tc_v2".into(),
                params: Vec::new(),
                launch_bounds: None,
                gpu_only: true,
            }
        );
    }

    #[test]
    fn every_bad_declaration_is_reported_with_its_line() {
        let text = "PIXELRNN_KERNEL void ok_v1(int n) {}\n\
                    PIXELRNN_KERNEL void bad_v1(half* x) {}\n\
                    PIXELRNN_KERNEL int ret_v1(int n) {}\n\
                    PIXELRNN_KERNEL void unnamed_v1(float*) {}\n\
                    PIXELRNN_KERNEL void ptr_v1(float* const* x) {}\n";
        let err = parse_kernel_signatures(text, "kernels/bad.cu").unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(lines[0].starts_with("kernels/bad.cu:2: kernel bad_v1: parameter `half * x`"));
        assert!(lines[0].contains("allowed:"), "{err}");
        assert!(
            lines[1].starts_with("kernels/bad.cu:3: expected `void"),
            "{err}"
        );
        assert!(
            lines[2].contains("parameter `float *` has no name"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("kernels/bad.cu:5: kernel ptr_v1"),
            "{err}"
        );
        let err = parse_kernel_signatures("PIXELRNN_KERNEL f_v1(int n)", "f.cu").unwrap_err();
        assert!(err.contains("kernel f_v1 must return void"), "{err}");
        let err = parse_kernel_signatures("PIXELRNN_KERNEL void", "f.cu").unwrap_err();
        assert!(err.contains("without a kernel name"), "{err}");
    }

    #[test]
    fn files_are_parsed_with_the_self_tests_and_duplicates_refused() {
        let repo = crate::test_dir("signatures");
        let kernels = repo.join("kernels");
        fs::create_dir_all(kernels.join("emu")).unwrap();
        fs::write(
            kernels.join("b.cu"),
            "PIXELRNN_KERNEL void b_fwd_v1(int n) {}\n",
        )
        .unwrap();
        fs::write(
            kernels.join("a.cu"),
            "PIXELRNN_KERNEL void a_fwd_v1(float x) {}\n",
        )
        .unwrap();
        fs::write(
            kernels.join("emu").join("selftest.cu"),
            "PIXELRNN_KERNEL void selftest_x_v1(float* x) {}\n",
        )
        .unwrap();
        let files = parse_kernel_files(&kernels, &repo).unwrap();
        let names: Vec<(&str, bool)> = files
            .iter()
            .map(|f| (f.name.as_str(), f.selftest))
            .collect();
        assert_eq!(names, [("a", false), ("b", false), ("selftest", true)]);
        assert_eq!(
            files[2].kernels[0].params,
            [("x".to_string(), ParamKind::Ptr)]
        );

        fs::write(
            kernels.join("c.cu"),
            "PIXELRNN_KERNEL void a_fwd_v1(int n) {}\n",
        )
        .unwrap();
        fs::write(
            kernels.join("d.cu"),
            "PIXELRNN_KERNEL void d_v1(half h) {}\n",
        )
        .unwrap();
        let err = parse_kernel_files(&kernels, &repo).unwrap_err();
        assert!(
            err.contains("kernel a_fwd_v1 is defined in both a.cu and c.cu"),
            "{err}"
        );
        assert!(err.contains("kernels/d.cu:1: kernel d_v1"), "{err}");
        fs::remove_dir_all(&repo).unwrap();
    }

    /// The repository's own kernels parse, and `fill_fwd_v1` is what src/ launches.
    #[test]
    fn the_repository_kernels_parse() {
        let kernels = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let files = parse_kernel_files(&kernels, &kernels.join("..")).unwrap();
        assert!(files.iter().any(|f| f.selftest));
        let fill = files.iter().find(|f| f.name == "fill").expect("fill.cu");
        let k = fill
            .kernels
            .iter()
            .find(|k| k.name == "fill_fwd_v1")
            .expect("fill_fwd_v1");
        let kinds: Vec<ParamKind> = k.params.iter().map(|p| p.1).collect();
        assert_eq!(kinds, [ParamKind::Ptr, ParamKind::I64, ParamKind::F32]);
        assert_eq!(ParamKind::F32.cpp_code(), 6);
        assert_eq!(ParamKind::ConstPtr.cpp_code(), 0);
    }
}
