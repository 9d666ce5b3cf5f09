//! GPU parity tests: every embedded CUDA kernel against its CPU twin on random inputs.
//!
//! They need a CUDA device, so they are ignored by a plain `cargo test`; on a device machine
//! run them with `--include-ignored` (scripts/gpu-check.sh does). Without a device, or in a
//! build without compiled kernels, they fail with a message that says which.
//!
//! Error measure (the GPU spec, /work/shared/spec/GPU.md): relative error ||gpu - cpu|| / ||cpu|| over the whole output.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::Ptx;
use pixelrnn::backend::cpu::bernoulli_nll::bernoulli_nll;
use pixelrnn::backend::cpu::softmax_nll::softmax_nll;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// fp32 on both sides, same operations up to the exp/log implementations (CUDA `expf`/`logf`
/// vs the CPU twin's polynomial `exp_neg` and libm): a few ulp per element, so 1e-5 relative
/// over the whole output leaves a wide margin while still catching any indexing or
/// reduction bug (those give errors of order 1).
const FP32_REL_TOL: f64 = 1e-5;

/// `PIXELRNN_BLOCK` in kernels/common.cuh.
const BLOCK: u32 = 256;
/// `PIXELRNN_WARP` in kernels/common.cuh.
const WARP: u32 = 32;

/// The device context and stream, or a panic saying why there is none.
fn device() -> (Arc<CudaContext>, Arc<CudaStream>) {
    if let Err(why) = pixelrnn::device::cuda_devices() {
        panic!("no CUDA device: {why} (this test needs a GPU; run it on a device machine)");
    }
    let ctx = CudaContext::new(0).unwrap_or_else(|e| panic!("CudaContext::new(0) failed: {e}"));
    let stream = ctx.default_stream();
    (ctx, stream)
}

/// Loads the embedded PTX module `name` and returns its kernel `entry`.
fn kernel(ctx: &Arc<CudaContext>, name: &str, entry: &str) -> CudaFunction {
    let module = pixelrnn::kernels::module(name).unwrap_or_else(|| {
        panic!(
            "kernels/{name}.cu is not in this build (compiler: {}); build with a CUDA compiler",
            pixelrnn::kernels::KERNEL_COMPILER
        )
    });
    assert!(
        module.has_entry_point(entry),
        "{name} has no kernel {entry}"
    );
    let loaded = ctx
        .load_module(Ptx::from_src(module.ptx))
        .unwrap_or_else(|e| panic!("loading the PTX of {name}: {e}"));
    loaded
        .load_function(entry)
        .unwrap_or_else(|e| panic!("{name}: load_function({entry}): {e}"))
}

/// ||gpu - cpu|| / ||cpu|| in f64, after checking that both are finite.
fn rel_err(what: &str, gpu: &[f32], cpu: &[f32]) -> f64 {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    if let Some(i) = gpu.iter().position(|v| !v.is_finite()) {
        panic!("{what}: gpu[{i}] = {} is not finite", gpu[i]);
    }
    assert!(
        cpu.iter().all(|v| v.is_finite()),
        "{what}: cpu output not finite"
    );
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (&g, &c) in gpu.iter().zip(cpu) {
        diff += (g as f64 - c as f64).powi(2);
        norm += (c as f64).powi(2);
    }
    assert!(norm > 0.0, "{what}: cpu output is all zeros");
    (diff / norm).sqrt()
}

/// Logits: mostly N(0, 3)-ish, with one value in 16 of large magnitude (up to +-80), so the
/// max-subtraction and the stable softplus matter.
fn random_logits(rng: &mut Pcg64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.random_range(0..16) == 0 {
                rng.random_range(-80.0f32..80.0)
            } else {
                rng.random_range(-5.0f32..5.0)
            }
        })
        .collect()
}

fn check_softmax_nll(channels: usize, positions: usize, seed: u64) {
    let (ctx, stream) = device();
    let f = kernel(&ctx, "softmax_nll", "softmax_nll_fwd_bwd_v1");
    let mut rng = Pcg64::seed_from_u64(seed);
    let logits = random_logits(&mut rng, positions * 256 * channels);
    let targets: Vec<f32> = (0..positions * channels)
        .map(|_| rng.random_range(0..256u32) as f32)
        .collect();
    let grad_scale = 1.0 / (positions * channels) as f32;

    let mut nll_cpu = vec![0.0f32; positions * channels];
    let mut dl_cpu = vec![0.0f32; logits.len()];
    assert!(softmax_nll(
        &logits,
        &targets,
        channels,
        grad_scale,
        &mut nll_cpu,
        &mut dl_cpu
    ));

    let d_logits = stream.clone_htod(&logits).expect("htod logits");
    let d_targets = stream.clone_htod(&targets).expect("htod targets");
    let mut d_nll = stream.alloc_zeros::<f32>(nll_cpu.len()).expect("alloc nll");
    let mut d_dl = stream
        .alloc_zeros::<f32>(dl_cpu.len())
        .expect("alloc dlogits");
    // Launch (kernels/softmax_nll.cu): one warp per (position, channel), 8 warps per block.
    let rows = (positions * channels) as u32;
    let warps_per_block = BLOCK / WARP;
    let cfg = LaunchConfig {
        grid_dim: (rows.div_ceil(warps_per_block), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let (positions_i, channels_i) = (positions as i32, channels as i32);
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&d_logits)
        .arg(&d_targets)
        .arg(&mut d_nll)
        .arg(&mut d_dl)
        .arg(&positions_i)
        .arg(&channels_i)
        .arg(&grad_scale);
    // SAFETY: the argument list matches the kernel's signature, and the buffers have the
    // sizes the kernel indexes (positions * channels rows of 256 logits).
    unsafe { launch.launch(cfg) }.expect("launch softmax_nll_fwd_bwd_v1");
    let nll_gpu = stream.clone_dtoh(&d_nll).expect("dtoh nll");
    let dl_gpu = stream.clone_dtoh(&d_dl).expect("dtoh dlogits");

    let e_nll = rel_err("softmax_nll nll", &nll_gpu, &nll_cpu);
    let e_dl = rel_err("softmax_nll dlogits", &dl_gpu, &dl_cpu);
    println!(
        "softmax_nll_fwd_bwd_v1 C={channels} positions={positions}: \
         rel err nll {e_nll:.3e}, dlogits {e_dl:.3e} (tol {FP32_REL_TOL:.0e})"
    );
    assert!(
        e_nll < FP32_REL_TOL,
        "nll rel err {e_nll:.3e} >= {FP32_REL_TOL:.0e}"
    );
    assert!(
        e_dl < FP32_REL_TOL,
        "dlogits rel err {e_dl:.3e} >= {FP32_REL_TOL:.0e}"
    );
}

#[test]
#[ignore = "needs a CUDA device"]
fn softmax_nll_v1_matches_cpu_c1() {
    // 1003 rows: not a multiple of the 8 rows a block covers, so the last block is partial.
    check_softmax_nll(1, 1003, 1);
}

#[test]
#[ignore = "needs a CUDA device"]
fn softmax_nll_v1_matches_cpu_c3() {
    // 3 * 677 = 2031 rows, not a multiple of 8; interleaved channel layout.
    check_softmax_nll(3, 677, 2);
}

#[test]
#[ignore = "needs a CUDA device"]
fn bernoulli_nll_v1_matches_cpu() {
    let (ctx, stream) = device();
    let f = kernel(&ctx, "bernoulli_nll", "bernoulli_nll_fwd_bwd_v1");
    let mut rng = Pcg64::seed_from_u64(3);
    // Not a multiple of the block, and more elements than the capped grid below has threads,
    // so both the bounds check and the grid-stride loop are exercised.
    let n = 100_003usize;
    let logits = random_logits(&mut rng, n);
    let targets: Vec<f32> = (0..n).map(|_| rng.random_range(0..2u32) as f32).collect();
    let grad_scale = 1.0 / n as f32;

    let mut nll_cpu = vec![0.0f32; n];
    let mut dl_cpu = vec![0.0f32; n];
    assert!(bernoulli_nll(
        &logits,
        &targets,
        grad_scale,
        &mut nll_cpu,
        &mut dl_cpu
    ));

    let d_logits = stream.clone_htod(&logits).expect("htod logits");
    let d_targets = stream.clone_htod(&targets).expect("htod targets");
    let mut d_nll = stream.alloc_zeros::<f32>(n).expect("alloc nll");
    let mut d_dl = stream.alloc_zeros::<f32>(n).expect("alloc dlogits");
    // Launch (kernels/bernoulli_nll.cu): PIXELRNN_BLOCK threads, any grid; capped at 64
    // blocks (16384 threads) so each thread loops about 6 times.
    let cfg = LaunchConfig {
        grid_dim: ((n as u32).div_ceil(BLOCK).min(64), 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let n_i = n as i32;
    let mut launch = stream.launch_builder(&f);
    launch
        .arg(&d_logits)
        .arg(&d_targets)
        .arg(&mut d_nll)
        .arg(&mut d_dl)
        .arg(&n_i)
        .arg(&grad_scale);
    // SAFETY: the argument list matches the kernel's signature; all buffers hold n floats.
    unsafe { launch.launch(cfg) }.expect("launch bernoulli_nll_fwd_bwd_v1");
    let nll_gpu = stream.clone_dtoh(&d_nll).expect("dtoh nll");
    let dl_gpu = stream.clone_dtoh(&d_dl).expect("dtoh dlogits");

    let e_nll = rel_err("bernoulli_nll nll", &nll_gpu, &nll_cpu);
    let e_dl = rel_err("bernoulli_nll dlogits", &dl_gpu, &dl_cpu);
    println!(
        "bernoulli_nll_fwd_bwd_v1 n={n}: rel err nll {e_nll:.3e}, dlogits {e_dl:.3e} \
         (tol {FP32_REL_TOL:.0e})"
    );
    assert!(
        e_nll < FP32_REL_TOL,
        "nll rel err {e_nll:.3e} >= {FP32_REL_TOL:.0e}"
    );
    assert!(
        e_dl < FP32_REL_TOL,
        "dlogits rel err {e_dl:.3e} >= {FP32_REL_TOL:.0e}"
    );
}
