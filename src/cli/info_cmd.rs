//! `pixelrnn info`: what this build and this machine can run.

use pixelrnn::{device, kernels};

/// Runs `pixelrnn info`.
pub fn run() -> anyhow::Result<()> {
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
            for d in devs {
                println!(
                    "cuda device {}: {} ({:.1} GiB, compute {}.{})",
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
    println!("cuda backend: not built yet (issue 5); training runs on the CPU");
    println!(
        "kernels: {} (compiler: {})",
        if kernels::KERNELS_COMPILED {
            "compiled to PTX and embedded"
        } else {
            "not compiled (run scripts/install-cuda-toolchain.sh, then rebuild)"
        },
        kernels::KERNEL_COMPILER
    );
    for m in kernels::modules() {
        println!(
            "  {:<16} {} entry points: {}",
            m.name,
            m.ptx_target().unwrap_or("?"),
            m.entry_points.join(", ")
        );
        if let Some(report) = m.resource_report {
            for line in report.lines().filter(|l| l.contains("Used")) {
                println!("      ptxas: {}", line.trim());
            }
        }
    }
    Ok(())
}
