//! `ptxas -arch=sm_90 -v` on each module's PTX: the cubin a device of that architecture loads
//! without JIT-compiling, and the resource report (registers, spills, shared memory per
//! kernel), embedded as text and, parsed here, as the table `pixelrnn info` prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compiler::output_log;
use crate::resources::KernelResources;
use crate::toolchain::cuda_version_of;
use crate::REPORT_ARCH;

/// `<out_dir>/<name>.sm_90.cubin`, where [`run`] has ptxas write the cubin.
pub fn cubin_path(out_dir: &Path, name: &str) -> PathBuf {
    out_dir.join(format!("{name}.{REPORT_ARCH}.cubin"))
}

/// Runs `ptxas -arch=sm_90 -v -o <cubin> <ptx>`: its report (stderr) with a header line saying
/// which ptxas made it, or the log when it rejects the PTX.
pub fn run(ptxas: &Path, ptx: &Path, out_dir: &Path, name: &str) -> Result<String, String> {
    let version = Command::new(ptxas)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| cuda_version_of(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| "?".into());
    let out = Command::new(ptxas)
        .arg(format!("-arch={REPORT_ARCH}"))
        .arg("-v")
        .arg("-o")
        .arg(cubin_path(out_dir, name))
        .arg(ptx)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
    let log = output_log(&out);
    if !out.status.success() {
        return Err(log);
    }
    Ok(report_text(&version, name, &log))
}

/// The embedded report: a header line, then ptxas's log without its timings.
pub fn report_text(version: &str, name: &str, log: &str) -> String {
    // "Compile time = ..." changes on every build and says nothing about the kernel.
    let report: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("Compile time"))
        .collect();
    format!(
        "ptxas {version} -arch={REPORT_ARCH} -v {name}.ptx\n{}\n",
        report.join("\n").trim_end()
    )
}

/// The number before `unit` in `text` (`"26 registers"` -> 26).
fn number_before(text: &str, unit: &str) -> Option<u32> {
    let at = text.find(unit)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// Parses a ptxas `-v` report into resources per kernel (entry) name.
pub fn parse_resource_report(report: &str) -> BTreeMap<String, KernelResources> {
    let mut out: BTreeMap<String, KernelResources> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in report.lines() {
        let quoted = |prefix: &str| {
            let rest = line.split(prefix).nth(1)?;
            let rest = rest.trim_start().trim_start_matches('\'');
            Some(rest.split('\'').next()?.trim().to_string())
        };
        if let Some(name) = quoted("Compiling entry function") {
            current = Some(name.clone());
            out.entry(name).or_default();
        } else if let Some(name) = quoted("Function properties for") {
            // Non-entry (device) functions also have properties: only track entries.
            current = out.contains_key(&name).then_some(name);
        } else if let Some(r) = current.as_ref().and_then(|n| out.get_mut(n)) {
            if line.contains("spill stores") {
                r.stack = number_before(line, "bytes stack frame").unwrap_or(0);
                r.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
                r.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
            } else if line.contains("Used") && line.contains("registers") {
                r.registers = number_before(line, "registers");
                r.barriers = number_before(line, "barriers").unwrap_or(0);
                r.shared = number_before(line, "bytes smem").unwrap_or(0);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_ptxas_report() {
        let report = "ptxas info    : 0 bytes gmem\n\
            ptxas info    : Compiling entry function 'a_fwd_v1' for 'sm_90'\n\
            ptxas info    : Function properties for a_fwd_v1\n\
            \x20   8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n\
            ptxas info    : Used 40 registers, used 1 barriers, 128 bytes smem, 368 bytes cmem[0]\n\
            ptxas info    : Function properties for helper\n\
            \x20   0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Compiling entry function 'b_bwd_v2' for 'sm_90'\n\
            ptxas info    : Function properties for b_bwd_v2\n\
            \x20   0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n\
            ptxas info    : Used 26 registers, used 0 barriers\n";
        let r = parse_resource_report(report);
        assert_eq!(r.len(), 2);
        let a = &r["a_fwd_v1"];
        assert_eq!(
            (
                a.registers,
                a.spill_stores,
                a.spill_loads,
                a.stack,
                a.shared,
                a.barriers
            ),
            (Some(40), 4, 4, 8, 128, 1)
        );
        let b = &r["b_bwd_v2"];
        assert_eq!((b.registers, b.spill_stores, b.shared), (Some(26), 0, 0));
    }

    #[test]
    fn a_kernel_without_a_registers_line_has_unknown_registers() {
        let report = "ptxas info    : Compiling entry function 'k_fwd_v1' for 'sm_90'\n";
        let r = parse_resource_report(report);
        assert_eq!(r["k_fwd_v1"], KernelResources::default());
        assert!(parse_resource_report("").is_empty());
    }

    #[test]
    fn the_embedded_report_drops_timings() {
        let log = "ptxas info    : Used 8 registers\nptxas info    : Compile time = 1.2 ms\n\n";
        assert_eq!(
            report_text("12.9.86", "fill", log),
            "ptxas 12.9.86 -arch=sm_90 -v fill.ptx\nptxas info    : Used 8 registers\n"
        );
        assert_eq!(
            cubin_path(Path::new("/out"), "fill"),
            Path::new("/out/fill.sm_90.cubin")
        );
    }
}
