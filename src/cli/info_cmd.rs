//! `pixelrnn info`: what this build and this machine can run: devices, the kernel compiler,
//! every compiled kernel with its versions and ptxas resources (registers, spills, shared
//! memory), and `--kernels-md`, the markdown table of docs/kernels.md.

use std::collections::BTreeMap;

use pixelrnn::backend::cuda::Variants;
use pixelrnn::device;
use pixelrnn::kernels::{self, KernelResources};

/// Flags of `pixelrnn info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Print only the markdown table of every kernel (module, kernel, version, registers,
    /// spills, shared memory, emulated or GPU-only): the body of docs/kernels.md.
    #[arg(long)]
    kernels_md: bool,
}

/// `(stem, version)` of an entry point `<op>_<pass>_v<N>`.
fn split_version(entry: &str) -> (&str, Option<u32>) {
    match entry.rsplit_once("_v") {
        Some((stem, v)) => match v.parse() {
            Ok(n) => (stem, Some(n)),
            Err(_) => (entry, None),
        },
        None => (entry, None),
    }
}

/// One row of the kernel table.
struct KernelRow {
    module: &'static str,
    kernel: &'static str,
    stem: String,
    version: Option<u32>,
    /// What ptxas reported (parsed at build time, `KernelModule::resources`).
    res: Option<&'static KernelResources>,
}

fn kernel_rows() -> Vec<KernelRow> {
    let mut rows = Vec::new();
    for m in kernels::modules() {
        let mut entries: Vec<&'static str> = m.entry_points.to_vec();
        entries.sort_unstable();
        for e in entries {
            let (stem, version) = split_version(e);
            rows.push(KernelRow {
                module: m.name,
                kernel: e,
                stem: stem.to_string(),
                version,
                res: m.resources(e),
            });
        }
    }
    rows
}

fn fmt_u32(v: Option<u32>) -> String {
    v.map_or_else(|| "?".to_string(), |n| n.to_string())
}

/// The markdown table of every compiled kernel.
fn kernels_md() -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Compiler: {}; PTX for {}; resources from `ptxas -arch={} -v`.\n\n",
        kernels::KERNEL_COMPILER,
        kernels::PTX_ARCH,
        kernels::RESOURCE_REPORT_ARCH
    ));
    s.push_str("| module | kernel | version | registers | spills (store/load bytes) | shared bytes | runs in |\n");
    s.push_str("|---|---|---|---|---|---|---|\n");
    for r in kernel_rows() {
        let (regs, spills, shared) = match &r.res {
            Some(x) => (
                fmt_u32(x.registers),
                format!("{}/{}", x.spill_stores, x.spill_loads),
                x.shared.to_string(),
            ),
            None => ("?".into(), "?".into(), "?".into()),
        };
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            r.module,
            r.kernel,
            r.version
                .map_or_else(|| "-".to_string(), |v| format!("v{v}")),
            regs,
            spills,
            shared,
            runs_in(r.kernel)
        ));
    }
    s
}

/// Where kernel `name` runs: the emulator too, or only a GPU.
fn runs_in(name: &str) -> &'static str {
    match kernels::signature(name) {
        Some(sig) if sig.emulated => "emulator + GPU",
        Some(_) => "GPU only",
        None => "?",
    }
}

/// Runs `pixelrnn info`.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    if args.kernels_md {
        if !kernels::KERNELS_COMPILED {
            anyhow::bail!(
                "this build has no compiled kernels (run scripts/install-cuda-toolchain.sh, then rebuild)"
            );
        }
        print!("{}", kernels_md());
        return Ok(());
    }
    println!("pixelrnn {}", env!("CARGO_PKG_VERSION"));
    println!(
        "build: {} profile, target {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::env::consts::ARCH
    );
    println!(
        "cpu backend: {} rayon threads (set with --threads or RAYON_NUM_THREADS)",
        rayon::current_num_threads()
    );
    match device::cuda_devices() {
        Ok(devs) => {
            if let Some((major, minor)) = device::driver_version() {
                println!("cuda driver: supports CUDA {major}.{minor}");
            }
            for d in devs {
                println!(
                    "cuda device {}: {} ({:.1} GiB, compute capability {}.{})",
                    d.ordinal,
                    d.name,
                    d.total_memory_bytes as f64 / (1u64 << 30) as f64,
                    d.compute_capability.0,
                    d.compute_capability.1
                );
            }
        }
        Err(why) => println!("cuda devices: none ({why})"),
    }
    println!(
        "cuda backend: --device cuda on a GPU, --device emulator on the CPU emulation of the CUDA \
         execution model (slow; for debugging kernels); --device auto picks {}",
        if kernels::KERNELS_COMPILED && device::cuda_available() {
            "cuda here"
        } else {
            "the cpu here"
        }
    );
    println!(
        "kernels: {} (compiler: {}, PTX for {}, resources for {})",
        if kernels::KERNELS_COMPILED {
            "compiled to PTX and embedded"
        } else {
            "not compiled (run scripts/install-cuda-toolchain.sh, then rebuild)"
        },
        kernels::KERNEL_COMPILER,
        kernels::PTX_ARCH,
        kernels::RESOURCE_REPORT_ARCH
    );
    let rows = kernel_rows();
    let mut spilling = Vec::new();
    for m in kernels::modules() {
        let cubin = match m.cubin {
            Some(bytes) => format!(
                " + {} cubin, {} KiB",
                kernels::RESOURCE_REPORT_ARCH,
                bytes.len().div_ceil(1024)
            ),
            None => String::new(),
        };
        println!(
            "  {} ({}, PTX ISA {}{cubin}):",
            m.name,
            m.ptx_target().unwrap_or("?"),
            m.ptx_version().unwrap_or("?")
        );
        // One line per op and pass, its versions side by side.
        let mut by_stem: BTreeMap<&str, Vec<&KernelRow>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.module == m.name) {
            by_stem.entry(r.stem.as_str()).or_default().push(r);
        }
        for (stem, versions) in by_stem {
            let parts: Vec<String> = versions
                .iter()
                .map(|r| {
                    let v = r
                        .version
                        .map_or_else(|| r.kernel.to_string(), |v| format!("v{v}"));
                    let res = r.res.as_ref().map_or_else(
                        || "no ptxas report".to_string(),
                        |x| {
                            format!(
                                "{} regs, {} B spill, {} B smem",
                                fmt_u32(x.registers),
                                x.spill_stores + x.spill_loads,
                                x.shared
                            )
                        },
                    );
                    if r.res
                        .as_ref()
                        .is_some_and(|x| x.spill_stores + x.spill_loads > 0)
                    {
                        spilling.push(r.kernel);
                    }
                    format!("{v} ({res}; {})", runs_in(r.kernel))
                })
                .collect();
            println!("    {stem:<28} {}", parts.join(", "));
        }
    }
    if kernels::KERNELS_COMPILED {
        if spilling.is_empty() {
            println!("register spills: none");
        } else {
            println!("register spills: {}", spilling.join(", "));
        }
        println!(
            "default kernel versions: {} (others: bench and profile --kernels family=N,...)",
            Variants::default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_versions() {
        assert_eq!(
            split_version("masked_conv2d_fwd_v12"),
            ("masked_conv2d_fwd", Some(12))
        );
        assert_eq!(split_version("odd_name"), ("odd_name", None));
    }
}
