//! Build script of `pixelrnn-kernels`: compiles every `kernels/*.cu` to PTX (nvcc or NVRTC)
//! with its sm_90 cubin and ptxas report, parses every kernel signature, writes the tables
//! that src/lib.rs includes, and builds the CPU emulator's library from the same sources.
//! The work is done by `pixelrnn-kernels-build` (kernels/build-support/), where it is tested.

use std::env;
use std::fs;
use std::path::PathBuf;

use pixelrnn_kernels_build::toolchain::{Search, Toolchain};
use pixelrnn_kernels_build::{emulator, ptx, registry, signatures, Ctx, WATCHED_ENV};

fn main() {
    let kernels_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // The workspace root: `.cuda-toolchain/` is there, and paths are shown relative to it.
    let repo_root = kernels_dir
        .parent()
        .expect("kernels/ is in the repository")
        .to_path_buf();

    println!("cargo::rustc-check-cfg=cfg(pixelrnn_kernels)");
    println!("cargo::rerun-if-changed=build.rs");
    // The whole folder: a new or deleted kernel file, kernels/emu/ and the headers.
    println!("cargo::rerun-if-changed=.");
    for var in WATCHED_ENV {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let toolchain = Toolchain::locate(env::var_os("PIXELRNN_CUDA_TOOLCHAIN"), &repo_root);
    if toolchain.stamp().is_file() {
        // A reinstall (other versions) rewrites the stamp; a first install touches build.rs.
        println!("cargo::rerun-if-changed={}", toolchain.stamp().display());
    }
    let ptx_dir = out_dir.join("kernels");
    // Stale PTX of a deleted or renamed kernel must not survive.
    let _ = fs::remove_dir_all(&ptx_dir);
    fs::create_dir_all(&ptx_dir).expect("create OUT_DIR/kernels");
    let ctx = Ctx {
        require: env::var("PIXELRNN_REQUIRE_KERNELS").is_ok_and(|v| v == "1"),
        repo_root,
        kernels_dir,
        ptx_dir,
        toolchain,
    };

    let outcome = ptx::build_kernels(&ctx, &Search::from_env());
    registry::write_registry(&out_dir, &outcome);
    let files = signatures::parse_kernel_files(&ctx.kernels_dir, &ctx.repo_root)
        .unwrap_or_else(|e| emulator::fail("cannot parse the kernel signatures", &e));
    registry::write_signature_table(&out_dir, &files);
    emulator::compile(&ctx.kernels_dir, &out_dir, &files);
    if outcome.compiled {
        println!("cargo::rustc-cfg=pixelrnn_kernels");
    }
}
