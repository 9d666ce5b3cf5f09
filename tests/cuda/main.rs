//! The GPU parity suite: every CUDA kernel (through the CUDA backend's ops) against its CPU
//! twin, forward and backward, on fresh random inputs of several shapes.
//!
//! Each check is written once, generic over the [`Executor`], and runs twice:
//! - `<check>::emulated`: on the CPU emulation of the CUDA execution model, with several
//!   thread-scheduling seeds and bounds checking on (runs in every `cargo test`, hence in CI);
//! - `<check>::device`: on a real GPU; `#[ignore = "needs a CUDA device"]`, run with
//!   `--include-ignored` on a device machine (scripts/gpu-check.sh).
//!
//! Fresh output buffers are poisoned with NaN, so an output element that a kernel forgets to
//! write fails the check. Error measure: relative error `||gpu - cpu|| / ||cpu||` over the
//! whole output (fp32 on both sides), tolerances from `pixelrnn::parity` (see each check).

mod bench;
mod bench_rows;
mod class_bias;
mod conv;
mod conv_cases;
mod conv_counters;
mod conv_mma;
mod conv_pack;
mod diag_bilstm_combine;
mod gated;
mod geometry;
mod logistic_mixture;
mod lstm;
mod lstm_at_precision;
mod lstm_counters;
mod lstm_mma;
mod lstm_mma_v2;
mod lstm_mma_weight;
mod lstm_moves;
mod lstm_persistent;
mod lstm_persistent_bwd;
mod lstm_persistent_mma;
mod lstm_persistent_precision;
mod lstm_persistent_v3;
mod lstm_persistent_v4;
mod lstm_persistent_v5_bwd;
mod lstm_persistent_v5_fwd;
mod lstm_persistent_v6;
mod lstm_persistent_v7;
mod lstm_precision;
mod lstm_scan;
mod lstm_step_v8;
mod lstm_unfused_precision;
mod lstm_versions;
mod lstm_weight;
mod lstm_weight_cases;
mod model;
mod multi_tensor;
mod nccl;
mod peak_mma;
mod pointwise;
mod sampling;

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Device, EmuOptions, Emulator, Executor};
use pixelrnn::parity;
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Thread-scheduling seeds of the emulated runs: a missing barrier changes results between
/// seeds.
pub const SCHEDULE_SEEDS: [u64; 2] = [1, 0x5eed];

/// The tolerances, with their reasons, are parity's: the bench validates by the same ones.
pub use pixelrnn::parity::{DEEP_REL_TOL, FP32_REL_TOL};

/// The emulated backend for scheduling seed `seed`, with bounds checking and poisoning on.
pub fn emulator(seed: u64) -> CudaBackend<Emulator> {
    let options = EmuOptions {
        seed,
        workers: 2,
        bounds_check: true,
    };
    let exec = Emulator::new(options).unwrap_or_else(|e| panic!("emulator: {e}"));
    CudaBackend::with_options(exec, true)
}

/// [`emulator`] with the memory counters on, for tests that check which kernels ran or what
/// they touched. (Counter measurements use an unguarded emulator of their own: guard pages
/// place buffers at page ends, which moves their 32-byte sectors.)
pub fn counted_emulator(seed: u64) -> CudaBackend<Emulator> {
    let options = EmuOptions {
        seed,
        workers: 2,
        bounds_check: true,
    };
    let exec = Emulator::new(options)
        .unwrap_or_else(|e| panic!("emulator: {e}"))
        .with_counters(true);
    CudaBackend::with_options(exec, true)
}

/// The device backend (poisoning on), or a panic saying why there is none.
pub fn device() -> CudaBackend<Device> {
    let exec = Device::new(0)
        .unwrap_or_else(|e| panic!("{e} (this test needs a GPU; run it on a device machine)"));
    CudaBackend::with_options(exec, true)
}

/// Defines, for each `name => check`, a module `name` with the tests `emulated` (every
/// scheduling seed) and `device` (ignored without a GPU). `check` is a generic
/// `fn<E: Executor>(&CudaBackend<E>)` that panics on a mismatch.
#[macro_export]
macro_rules! parity_tests {
    ($($name:ident => $check:path),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn emulated() {
                    for seed in $crate::SCHEDULE_SEEDS {
                        $check(&$crate::emulator(seed));
                    }
                }

                #[test]
                #[ignore = "needs a CUDA device"]
                fn device() {
                    $check(&$crate::device());
                }
            }
        )*
    };
}

/// Deterministic random values in `[-scale, scale)`.
pub fn random(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

/// The CPU tensor of `shape` holding `data`.
pub fn cpu_tensor(shape: &[usize], data: &[f32]) -> Tensor<CpuBackend> {
    Tensor::from_slice(&CpuBackend::new(), shape, data).expect("cpu tensor")
}

/// A GPU copy of a CPU tensor.
pub fn to_gpu<E: Executor>(gpu: &CudaBackend<E>, t: &Tensor<CpuBackend>) -> Tensor<CudaBackend<E>> {
    Tensor::from_slice(gpu, &t.shape, &t.data).expect("upload")
}

/// Both sides' copies of random data of `shape`.
pub fn pair<E: Executor>(
    gpu: &CudaBackend<E>,
    shape: &[usize],
    seed: u64,
    scale: f32,
) -> (Tensor<CpuBackend>, Tensor<CudaBackend<E>>) {
    let data = random(seed, shape.iter().product(), scale);
    let cpu = cpu_tensor(shape, &data);
    let dev = to_gpu(gpu, &cpu);
    (cpu, dev)
}

/// [`parity::l2_rel_err`] (`||got - want|| / ||want||` in f64, the absolute error when `want`
/// is all zeros), after checking lengths and that `got` is written: a panic naming the first
/// [`parity::unwritten`] element (NaN: a poisoned output the kernel did not write).
pub fn rel_err(what: &str, got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = parity::unwritten(got, want) {
        panic!(
            "{what}: element {i} is {} (want {}): unwritten or wrong",
            got[i], want[i]
        );
    }
    parity::l2_rel_err(got, want)
}

/// The distance of a rounded-precision twin from the fp32 reference, pooled over the outputs
/// added: `||twin - fp32|| / ||fp32||`. A test that bounds a tf32 / bf16 kernel's error
/// against its twin checks with it that the data show the rounding, so that a kernel computing
/// in fp32 would miss the bound.
#[derive(Default)]
pub struct RoundingGap {
    num: f64,
    den: f64,
}

impl RoundingGap {
    /// Pools one output: the twin's values and the fp32 reference's, element by element.
    pub fn add(&mut self, twin: &[f32], fp32: &[f32]) {
        assert_eq!(twin.len(), fp32.len(), "rounding gap: lengths differ");
        for (a, b) in twin.iter().zip(fp32) {
            self.num += (f64::from(*a) - f64::from(*b)).powi(2);
            self.den += f64::from(*b).powi(2);
        }
    }

    /// The pooled relative distance.
    pub fn value(&self) -> f64 {
        (self.num / self.den).sqrt()
    }
}

/// `t`'s elements on the host; a failed download panics with `what`.
pub fn download<E: Executor>(
    gpu: &CudaBackend<E>,
    t: &Tensor<CudaBackend<E>>,
    what: &str,
) -> Vec<f32> {
    t.to_vec(gpu)
        .unwrap_or_else(|e| panic!("{what}: download: {e}"))
}

/// Downloads `got` and asserts it matches the CPU tensor `want` within `tol`.
pub fn assert_close<E: Executor>(
    what: &str,
    gpu: &CudaBackend<E>,
    got: &Tensor<CudaBackend<E>>,
    want: &Tensor<CpuBackend>,
    tol: f64,
) {
    assert_eq!(got.shape, want.shape, "{what}: shapes differ");
    let host = got
        .to_vec(gpu)
        .unwrap_or_else(|e| panic!("{what}: download: {e}"));
    let err = rel_err(what, &host, &want.data);
    assert!(
        err <= tol,
        "{what} on {}: relative error {err:.3e} > {tol:.0e}",
        gpu_name(gpu)
    );
}

fn gpu_name<E: Executor>(gpu: &CudaBackend<E>) -> String {
    use pixelrnn::backend::Backend;
    gpu.name()
}
