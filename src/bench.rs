//! `pixelrnn bench` as a library: times every backend op (every kernel version on CUDA) and a
//! whole training step per model, after checking each result against the CPU backend.
//!
//! Method (STYLE.md, "Validate before you time"):
//! 1. each op runs once on fresh random inputs and its outputs are compared with the CPU
//!    backend's on the same inputs (relative error `||got - want|| / ||want||`, tolerances
//!    below); a wrong result is reported as `WRONG` and no time is printed for it;
//! 2. `warmup` untimed calls, then `iters` timed calls, each between `synchronize()` calls (on
//!    a real GPU, between two CUDA events on the launch stream); the row reports the median
//!    and the minimum.
//!
//! Rates: GB/s = [`OpRow`] bytes / time, where bytes is the op's compulsory traffic (every
//! input read once, every output written once, 4 bytes per element; each op's formula is in
//! [`OpKind::bytes`]); GFLOP/s = flops / time with the FLOP counts of [`OpKind::flops`] and,
//! for training steps, [`step_flops`] (the counts of docs/benchmarks.md: multiply-adds over
//! the live taps of every convolution and the recurrences' state-to-state products, two FLOPs
//! each, forward + weight gradients + input gradients). Both are set against ceilings measured
//! in the same run ([`Ceilings`]): on the CPU a large multi-threaded memcpy and a large GEMM
//! (the `gemm` crate through the backend's `sgemm`); on CUDA a large device-to-device copy and
//! the FMA-throughput kernel `peak_fma_v1` (kernels/peak.cu).
//!
//! The emulator ([`crate::backend::cuda::Emulator`]) runs the same code path; its times say
//! nothing about a GPU and its ceilings are not measured.

use std::time::Instant;

use serde::Serialize;

use crate::backend::cpu::CpuBackend;
use crate::backend::cuda::{Arg, CudaBackend, Device, Emulator, Executor, LaunchCfg};
use crate::backend::{AdamStep, Backend, ConvSpec, LstmState, Mask, Recurrence, RmsPropStep};
use crate::data::Images;
use crate::error::{Error, Result};
use crate::models::{Model, ModelConfig, ModelKind};
use crate::optim::{OptimConfig, Optimizer, OptimizerKind};
use crate::tensor::Tensor;

/// fp32 kernels against the fp32 CPU twin: a few ulp per element from other summation orders;
/// an indexing or reduction bug gives errors of order 1.
pub const FP32_REL_TOL: f64 = 1e-5;
/// Recurrences (28 to 63 dependent steps, errors compound through the cell state) and whole
/// training steps (loss and global gradient norm after a dozen layers): fp32 on both sides.
pub const DEEP_REL_TOL: f64 = 1e-4;

// ------------------------------------------------------------------------------ configs

/// A model size of the bench (the layer shapes of the op rows and the training-step rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BenchConfig {
    /// Name on the command line (`--config`).
    pub name: &'static str,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Image channels.
    pub channels: usize,
    /// Hidden layers after the input layer.
    pub layers: usize,
    /// h.
    pub hidden: usize,
    /// D, the head's width.
    pub head: usize,
    /// Images per step.
    pub batch: usize,
}

/// The sizes of `benches/train_step.rs` (MNIST 28x28x1 L7 h16, 32x32x3 L4 h32 D64), issue 6's
/// CIFAR size (L12 h128), the same at batch 64 (issue 6's "one larger batch": the recurrences'
/// steps get 4x the parallel work for the same number of dependent launches) and a tiny one
/// for the emulator and tests.
pub const CONFIGS: [BenchConfig; 5] = [
    BenchConfig {
        name: "mnist",
        height: 28,
        width: 28,
        channels: 1,
        layers: 7,
        hidden: 16,
        head: 32,
        batch: 16,
    },
    BenchConfig {
        name: "cifar",
        height: 32,
        width: 32,
        channels: 3,
        layers: 4,
        hidden: 32,
        head: 64,
        batch: 16,
    },
    BenchConfig {
        name: "cifar-large",
        height: 32,
        width: 32,
        channels: 3,
        layers: 12,
        hidden: 128,
        head: 128,
        batch: 16,
    },
    BenchConfig {
        name: "cifar-b64",
        height: 32,
        width: 32,
        channels: 3,
        layers: 12,
        hidden: 128,
        head: 128,
        batch: 64,
    },
    BenchConfig {
        name: "tiny",
        height: 8,
        width: 8,
        channels: 1,
        layers: 1,
        hidden: 4,
        head: 8,
        batch: 2,
    },
];

/// The config named `name`.
pub fn config(name: &str) -> Option<&'static BenchConfig> {
    CONFIGS.iter().find(|c| c.name == name)
}

impl BenchConfig {
    /// The model of kind `kind` at this size (256-way softmax output).
    pub fn model(&self, kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            height: self.height,
            width: self.width,
            channels: self.channels,
            binary: false,
            layers: self.layers,
            hidden: self.hidden,
            head: self.head,
            row_kernel: crate::models::DEFAULT_ROW_KERNEL,
            multiscale: None,
        }
    }

    /// `28x28x1 L7 h16 D32 B16`.
    pub fn label(&self) -> String {
        format!(
            "{}x{}x{} L{} h{} D{} B{}",
            self.height, self.width, self.channels, self.layers, self.hidden, self.head, self.batch
        )
    }

    fn positions(&self) -> f64 {
        (self.batch * self.height * self.width) as f64
    }
}

/// FLOPs of one forward pass and of one training step (forward, weight gradients, input
/// gradients except the input layer's) of `model` on `batch` images, as docs/benchmarks.md
/// counts them: multiply-adds (2 FLOPs) over the live taps of every masked convolution (7x7
/// mask A: 24 taps for C = 1, 25 for C > 1; 3x3 mask B: 5; 1x3 mask B: 2; 1x1: 1) with full
/// channel counts, and the recurrences' state-to-state products (Row LSTM: k*h -> 4h per
/// position; Diagonal BiLSTM: 2h -> 4h per position and direction). Gates, losses, ReLUs and
/// the optimizer (well under 1 %) are not counted. `None` for multi-scale models.
pub fn step_flops(model: &ModelConfig, batch: usize) -> Option<(f64, f64)> {
    let (c, h, d) = (model.channels, model.hidden, model.head);
    let taps = |kh, kw, mask| ConvSpec::new(kh, kw, mask, c, 1, 1).taps().len();
    let input = taps(7, 7, Mask::A) * c * 2 * h;
    let head = 2 * h * d + d * 256 * c;
    let per_layer = match model.kind {
        // 1x1 2h -> h, 3x3 mask B h -> h, 1x1 h -> 2h.
        ModelKind::PixelCnn => 2 * h * h + taps(3, 3, Mask::B) * h * h + h * 2 * h,
        // 1xk mask B input-to-state 2h -> 4h, 1xk state-to-state h -> 4h, 1x1 h -> 2h.
        ModelKind::RowLstm => {
            let k = model.row_kernel;
            taps(1, k, Mask::B) * 2 * h * 4 * h + k * h * 4 * h + h * 2 * h
        }
        // Per direction: 1x1 input-to-state 2h -> 4h and 2x1 state-to-state h -> 4h; then the
        // 1x1 h -> 2h output.
        ModelKind::DiagBiLstm => 2 * (2 * h * 4 * h + 2 * h * 4 * h) + h * 2 * h,
        ModelKind::MultiScale => return None,
    };
    let positions = (batch * model.height * model.width) as f64;
    let fwd_macs = (input + model.layers * per_layer + head) as f64;
    let forward = 2.0 * positions * fwd_macs;
    let step = 3.0 * forward - 2.0 * positions * input as f64;
    Some((forward, step))
}

// ---------------------------------------------------------------------------- options

/// What to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Part {
    /// Ops only.
    Ops,
    /// Training steps only.
    Steps,
    /// Both.
    All,
}

/// What `pixelrnn bench` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Op or step rows.
    pub part: Part,
    /// Timed calls per op row (the median is reported).
    pub iters: usize,
    /// Timed training steps per step row.
    pub step_iters: usize,
    /// Untimed calls before timing.
    pub warmup: usize,
    /// Model kinds of the training-step rows.
    pub models: Vec<ModelKind>,
    /// Sizes.
    pub configs: Vec<&'static BenchConfig>,
    /// Recurrence variants of the recurrent rows.
    pub recurrences: Vec<Recurrence>,
    /// Only op rows whose name contains one of these (empty: all).
    pub op_filter: Vec<String>,
}

// ------------------------------------------------------------------------------- rows

/// One timed (or refused) row.
#[derive(Clone, Debug, Serialize)]
pub struct OpRow {
    /// `op`, `step` or `ceiling`.
    pub kind: &'static str,
    /// `masked_conv2d fwd`, `row-lstm train step`, `copy`...
    pub name: String,
    /// Config name (`mnist`...), or empty for ceilings.
    pub config: String,
    /// Shapes in words: `7x7 mask A 1->32 on 16x28x28`.
    pub shape: String,
    /// `v1`, `v2`... (CUDA), `cpu`, and for recurrences `fused`/`unfused`/`persistent` too;
    /// a training step in the Diagonal LSTM's materialised layout adds `/materialised`
    /// (`fused/materialised`; op rows carry the layout in [`OpRow::layout`] only).
    pub variant: String,
    /// Recurrence variant of LSTM ops and recurrent steps.
    pub recurrence: Option<String>,
    /// Layout of the Diagonal LSTM rows on a backend that has several (CUDA): `folded` (the
    /// skew folded into the kernels' indexing) or `materialised` (skewed maps); `None`
    /// elsewhere.
    pub layout: Option<String>,
    /// `ok`, `WRONG` (result differs from the CPU backend: no time), `error` (the op failed),
    /// `skipped` (a GPU-only kernel on the emulator).
    pub status: String,
    /// Relative error against the CPU backend (`None` when the CPU backend itself is timed).
    pub rel_err: Option<f64>,
    /// Tolerance of the check.
    pub tol: f64,
    /// Median time of one call, ms.
    pub ms: Option<f64>,
    /// Fastest call, ms.
    pub ms_min: Option<f64>,
    /// Timed calls.
    pub iters: usize,
    /// Bytes moved per call (formula: [`OpKind::bytes`]).
    pub bytes: Option<f64>,
    /// FLOPs per call.
    pub flops: Option<f64>,
    /// Achieved GB/s (1e9 bytes per second).
    pub gb_per_s: Option<f64>,
    /// Achieved GFLOP/s.
    pub gflop_per_s: Option<f64>,
    /// GB/s over the measured copy bandwidth.
    pub frac_copy_bw: Option<f64>,
    /// GFLOP/s over the measured FP32 rate.
    pub frac_fp32: Option<f64>,
    /// Recurrent rows: time of the unfused row of the same op and size over this row's.
    pub speedup_vs_unfused: Option<f64>,
    /// Error text, or what the row means.
    pub note: String,
}

impl OpRow {
    fn new(kind: &'static str, name: String, config: &str, shape: String, variant: String) -> Self {
        OpRow {
            kind,
            name,
            config: config.to_string(),
            shape,
            variant,
            recurrence: None,
            layout: None,
            status: "ok".into(),
            rel_err: None,
            tol: FP32_REL_TOL,
            ms: None,
            ms_min: None,
            iters: 0,
            bytes: None,
            flops: None,
            gb_per_s: None,
            gflop_per_s: None,
            frac_copy_bw: None,
            frac_fp32: None,
            speedup_vs_unfused: None,
            note: String::new(),
        }
    }

    fn set_times(&mut self, times: &mut [f64], ceilings: &Ceilings) {
        if times.is_empty() {
            return;
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        self.iters = times.len();
        self.ms = Some(median);
        self.ms_min = Some(times[0]);
        let secs = median / 1e3;
        if secs > 0.0 {
            self.gb_per_s = self.bytes.map(|b| b / secs / 1e9);
            self.gflop_per_s = self.flops.map(|f| f / secs / 1e9);
        }
        self.frac_copy_bw = self
            .gb_per_s
            .zip(ceilings.copy_gb_per_s)
            .map(|(a, b)| a / b);
        self.frac_fp32 = self
            .gflop_per_s
            .zip(ceilings.fp32_gflop_per_s)
            .map(|(a, b)| a / b);
    }
}

/// The device's ceilings, measured by the bench.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ceilings {
    /// Copy bandwidth in GB/s, counting the read and the write.
    pub copy_gb_per_s: Option<f64>,
    /// FP32 rate in GFLOP/s (an FMA is two FLOPs).
    pub fp32_gflop_per_s: Option<f64>,
    /// How they were measured.
    pub how: String,
}

/// Everything one bench run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The backend's name (`cpu (16 threads)`, `cuda:0 NVIDIA H200`).
    pub device: String,
    /// How calls were timed.
    pub timer: String,
    /// Run on the emulator: times are meaningless.
    pub emulated: bool,
    /// Seconds since the Unix epoch at the start.
    pub unix_time: u64,
    /// UTC date and time of the start.
    pub date: String,
    /// Warm-up calls per row.
    pub warmup: usize,
    /// The measured ceilings.
    pub ceilings: Ceilings,
    /// Every row, ceilings first.
    pub rows: Vec<OpRow>,
}

// ---------------------------------------------------------------------------- backends

/// A backend that the bench can time: how to time a call, its ceilings, its kernel versions.
pub trait BenchBackend: Backend {
    /// Whether this is the reference backend (the CPU): its results are not compared with
    /// themselves, only checked to be finite.
    fn is_reference(&self) -> bool {
        false
    }

    /// Whether times say nothing about real hardware (the emulator).
    fn emulated(&self) -> bool {
        false
    }

    /// How calls are timed, in words.
    fn timer(&self) -> String {
        "wall clock between synchronize() calls".into()
    }

    /// Milliseconds taken by `f` (with the device idle before and done after).
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.synchronize()?;
        let t0 = Instant::now();
        f()?;
        self.synchronize()?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }

    /// Measures the copy bandwidth and the FP32 rate; `rows` receives one row for each.
    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)>;

    /// The kernel versions of `<key>_<pass>_v<N>` to time (empty: the backend has no
    /// versions, as the CPU).
    fn versions(&self, key: &str, pass: &str) -> Vec<u32> {
        let _ = (key, pass);
        Vec::new()
    }

    /// Whether version `v` of `<key>_<pass>` can run here (the emulator skips GPU-only
    /// kernels).
    fn runnable(&self, key: &str, pass: &str, v: u32) -> bool {
        let _ = (key, pass, v);
        true
    }

    /// Selects version `v` of the kernels of `key`.
    fn select_version(&self, key: &str, v: u32) {
        let _ = (key, v);
    }

    /// The layouts of the ops of version key `key` to time side by side (empty: one, nothing
    /// to select, as on the CPU); selected with [`BenchBackend::select_version`] of
    /// [`LAYOUT_KEY`].
    fn layouts(&self, key: &str) -> Vec<u32> {
        let _ = key;
        Vec::new()
    }
}

/// The version key that selects the Diagonal LSTM's layout on CUDA (`diag_lstm_layout`:
/// 1 = skew folded into the indexing, 2 = materialised skewed maps).
pub const LAYOUT_KEY: &str = "diag_lstm_layout";

/// The name of Diagonal LSTM layout `v` in rows and labels.
fn layout_name(v: u32) -> &'static str {
    if v == 2 {
        "materialised"
    } else {
        "folded"
    }
}

/// The layouts a row of version key `key` is timed in: `[None]` when the backend has none.
fn layout_choices<B: BenchBackend>(be: &B, key: &str) -> Vec<Option<u32>> {
    let l = be.layouts(key);
    if l.is_empty() {
        vec![None]
    } else {
        l.into_iter().map(Some).collect()
    }
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(0.0)
}

impl BenchBackend for CpuBackend {
    fn is_reference(&self) -> bool {
        true
    }

    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)> {
        use rayon::prelude::*;
        let iters = iters.clamp(3, 20);
        // Copy: 64 MiB, far beyond any cache, split over the threads as the ops' loops are.
        let n = 16 << 20;
        let src = vec![1.0f32; n];
        let mut dst = vec![0.0f32; n];
        let chunk = n.div_ceil(rayon::current_num_threads().max(1));
        let mut times = Vec::new();
        for _ in 0..iters + 1 {
            let t0 = Instant::now();
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            times.push(t0.elapsed().as_secs_f64());
        }
        times.remove(0);
        std::hint::black_box(&dst);
        let copy_bytes = 2.0 * 4.0 * n as f64;
        let copy = copy_bytes / median(times) / 1e9;
        // GEMM: 1024^3 multiply-adds through the backend's own sgemm (the `gemm` crate).
        use crate::backend::cpu::gemm::{sgemm, MatRef};
        let m = 1024;
        let a = vec![0.5f32; m * m];
        let b = vec![0.25f32; m * m];
        let mut c = vec![0.0f32; m * m];
        let mut times = Vec::new();
        for _ in 0..iters + 1 {
            let t0 = Instant::now();
            sgemm(
                m,
                m,
                m,
                MatRef::row_major(&a, m),
                MatRef::row_major(&b, m),
                &mut c,
                false,
            );
            times.push(t0.elapsed().as_secs_f64());
        }
        times.remove(0);
        if (c[0] - 0.125 * m as f32).abs() > 1e-3 * m as f32 {
            return Err(Error::Device(format!(
                "the ceiling GEMM computed {} instead of {}",
                c[0],
                0.125 * m as f32
            )));
        }
        let gemm_flops = 2.0 * (m * m * m) as f64;
        let fp32 = gemm_flops / median(times) / 1e9;
        let ceilings = Ceilings {
            copy_gb_per_s: Some(copy),
            fp32_gflop_per_s: Some(fp32),
            how: format!(
                "copy: 64 MiB memcpy split over {} threads (read + write counted); fp32: \
                 1024x1024x1024 sgemm (gemm crate); medians of {iters}",
                rayon::current_num_threads()
            ),
        };
        Ok((
            ceilings.clone(),
            ceiling_rows(
                &ceilings,
                copy_bytes,
                gemm_flops,
                "memcpy 64 MiB",
                "sgemm 1024^3",
            ),
        ))
    }
}

fn ceiling_rows(c: &Ceilings, copy_bytes: f64, flops: f64, copy: &str, fma: &str) -> Vec<OpRow> {
    let mut rows = Vec::new();
    if let Some(bw) = c.copy_gb_per_s {
        let mut r = OpRow::new("ceiling", "copy".into(), "", copy.into(), "-".into());
        r.bytes = Some(copy_bytes);
        r.gb_per_s = Some(bw);
        r.ms = Some(copy_bytes / bw / 1e6);
        r.frac_copy_bw = Some(1.0);
        rows.push(r);
    }
    if let Some(rate) = c.fp32_gflop_per_s {
        let mut r = OpRow::new("ceiling", "fp32".into(), "", fma.into(), "-".into());
        r.flops = Some(flops);
        r.gflop_per_s = Some(rate);
        r.ms = Some(flops / rate / 1e6);
        r.frac_fp32 = Some(1.0);
        rows.push(r);
    }
    rows
}

/// How an executor times a call and whether it is real hardware.
pub trait ExecTimer: Executor {
    /// True for the emulator.
    const EMULATED: bool;
    /// The timer, in words.
    fn timer_name(&self) -> &'static str;
    /// Milliseconds taken by `f` (`synchronize` is this executor's).
    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64>;
}

impl ExecTimer for Device {
    const EMULATED: bool = false;

    fn timer_name(&self) -> &'static str {
        "CUDA events on the launch stream"
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        use cudarc::driver::sys::CUevent_flags;
        let err = |what: &str, e: cudarc::driver::DriverError| {
            Error::Device(format!("CUDA event {what}: {e}"))
        };
        let ctx = self.context();
        let stream = self.stream();
        let start = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("create", e))?;
        let end = ctx
            .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| err("create", e))?;
        Executor::synchronize(self)?;
        start.record(stream).map_err(|e| err("record", e))?;
        f()?;
        end.record(stream).map_err(|e| err("record", e))?;
        let ms = start.elapsed_ms(&end).map_err(|e| err("elapsed", e))?;
        Ok(ms as f64)
    }
}

impl ExecTimer for Emulator {
    const EMULATED: bool = true;

    fn timer_name(&self) -> &'static str {
        "wall clock (emulated: meaningless for a GPU)"
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        let t0 = Instant::now();
        f()?;
        Executor::synchronize(self)?;
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    }
}

/// Independent FMA chains per thread of `peak_fma_v1` (see kernels/peak.cu).
pub const PEAK_CHAINS: usize = 8;
/// FMAs per chain per loop round of `peak_fma_v1`.
pub const PEAK_UNROLL: usize = 4;

/// What thread `t` of `peak_fma_v1` writes, computed on the host in f64 (the kernel's f32 FMA
/// chains drift from it by rounding only: the map `x -> a x + b` with |a| < 1 contracts).
pub fn peak_fma_expected(t: usize, rounds: usize, a: f32, b: f32) -> f64 {
    let (a, b) = (a as f64, b as f64);
    (0..PEAK_CHAINS)
        .map(|k| {
            let mut x = (t % 1024) as f64 * 1e-3 + k as f64;
            for _ in 0..rounds * PEAK_UNROLL {
                x = x * a + b;
            }
            x
        })
        .sum()
}

impl<E: ExecTimer> BenchBackend for CudaBackend<E> {
    fn emulated(&self) -> bool {
        E::EMULATED
    }

    fn timer(&self) -> String {
        self.executor().timer_name().into()
    }

    fn time_ms(&self, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.executor().time_ms(f)
    }

    fn measure_ceilings(&self, iters: usize) -> Result<(Ceilings, Vec<OpRow>)> {
        let exec = self.executor();
        let iters = iters.clamp(3, 50);
        // Sizes: the emulator only proves the path and the kernel (tiny), the GPU gets a copy
        // far beyond L2 (256 MiB) and enough FMA blocks to fill every SM many times over.
        let (n, blocks, rounds) = if E::EMULATED {
            (1 << 12, 2u32, 4i32)
        } else {
            (64 << 20, 8192u32, 4096i32)
        };
        let src = exec.alloc(n)?;
        let mut dst = exec.alloc(n)?;
        let mut times = Vec::new();
        for i in 0..iters + 1 {
            let t = exec.time_ms(&mut || exec.copy(&src, &mut dst, n))?;
            if i > 0 {
                times.push(t);
            }
        }
        drop((src, dst));
        let copy_bytes = 2.0 * 4.0 * n as f64;
        let copy = copy_bytes / (median(times) / 1e3) / 1e9;
        // FMA: validate one launch's output against the host, then time it.
        let threads = blocks as usize * crate::backend::cuda::BLOCK as usize;
        let out = self.tensor_uninit(&[threads])?;
        let (a, b) = (0.999f32, 1e-3f32);
        let cfg = LaunchCfg::linear(blocks, crate::backend::cuda::BLOCK);
        let launch = || {
            self.launch(
                "peak_fma_v1",
                &cfg,
                &[
                    crate::backend::cuda::arg(&out),
                    Arg::I32(rounds),
                    Arg::F32(a),
                    Arg::F32(b),
                ],
            )
        };
        launch()?;
        let got = out.to_vec(self)?;
        for t in [0, 1, threads / 2, threads - 1] {
            let want = peak_fma_expected(t, rounds as usize, a, b);
            let g = got[t] as f64;
            // NaN fails too.
            let close = (g - want).abs() <= 1e-3 * want.abs().max(1.0);
            if !close {
                return Err(Error::Device(format!(
                    "peak_fma_v1: thread {t} wrote {g}, expected {want}: the ceiling kernel is wrong"
                )));
            }
        }
        let mut times = Vec::new();
        for i in 0..iters + 1 {
            let t = exec.time_ms(&mut || launch())?;
            if i > 0 {
                times.push(t);
            }
        }
        let fma_flops = 2.0 * (threads * rounds as usize * PEAK_UNROLL * PEAK_CHAINS) as f64;
        let fp32 = fma_flops / (median(times) / 1e3) / 1e9;
        let ceilings = if E::EMULATED {
            Ceilings {
                copy_gb_per_s: None,
                fp32_gflop_per_s: None,
                how: "emulated: the copy and peak_fma_v1 ran and were checked, not measured".into(),
            }
        } else {
            Ceilings {
                copy_gb_per_s: Some(copy),
                fp32_gflop_per_s: Some(fp32),
                how: format!(
                    "copy: {} MiB device-to-device (read + write counted); fp32: peak_fma_v1, \
                     {blocks} blocks x 256 threads x {} FMAs; medians of {iters}",
                    (n * 4) >> 20,
                    rounds as usize * PEAK_UNROLL * PEAK_CHAINS
                ),
            }
        };
        let mut rows = ceiling_rows(
            &ceilings,
            copy_bytes,
            fma_flops,
            &format!("device-to-device {} MiB", (n * 4) >> 20),
            "peak_fma_v1",
        );
        if E::EMULATED {
            let mut r = OpRow::new(
                "ceiling",
                "peak_fma".into(),
                "",
                "peak_fma_v1 (checked only)".into(),
                "v1".into(),
            );
            r.note = "emulated: not a ceiling".into();
            rows.push(r);
        }
        Ok((ceilings, rows))
    }

    fn versions(&self, key: &str, pass: &str) -> Vec<u32> {
        kernel_versions(key, pass)
    }

    fn runnable(&self, key: &str, pass: &str, v: u32) -> bool {
        !E::EMULATED
            || crate::kernels::signature(&format!("{key}_{pass}_v{v}")).is_none_or(|s| s.emulated)
    }

    fn select_version(&self, key: &str, v: u32) {
        self.set_version(key, v);
    }

    fn layouts(&self, key: &str) -> Vec<u32> {
        if key == "diag_lstm" {
            vec![1, 2]
        } else {
            Vec::new()
        }
    }
}

/// The versions `N` of the kernels `<key>_<pass>_v<N>` of `kernels/*.cu`, ascending; `[1]`
/// when there is none (the host side then says what is missing when it launches).
pub fn kernel_versions(key: &str, pass: &str) -> Vec<u32> {
    let v = crate::kernels::versions(key, pass);
    if v.is_empty() {
        vec![1]
    } else {
        v
    }
}

// -------------------------------------------------------------------------------- ops

/// One op of the bench with its parameters.
#[derive(Clone, Copy, Debug)]
pub enum OpKind {
    /// `masked_conv2d_forward` (inputs x, w, b).
    ConvFwd(ConvSpec),
    /// `masked_conv2d_backward` (inputs x, w, dy), with `need_dx`.
    ConvBwd(ConvSpec, bool),
    /// `relu_forward` (x).
    ReluFwd,
    /// `relu_backward` (y, dy).
    ReluBwd,
    /// `add` (a, b).
    Add,
    /// `softmax_nll` (logits, targets).
    SoftmaxNll,
    /// `bernoulli_nll` (logits, targets).
    BernoulliNll,
    /// `sample_logits` (logits, uniforms), 256-way.
    SampleLogits,
    /// `row_lstm_forward` (is, w_ss).
    RowLstmFwd(Recurrence),
    /// `row_lstm_backward` (state, w_ss, dh).
    RowLstmBwd(Recurrence),
    /// `diag_lstm_forward` (is, w_ss).
    DiagLstmFwd(Recurrence),
    /// `diag_lstm_backward` (state, w_ss, dh).
    DiagLstmBwd(Recurrence),
    /// `skew` (x).
    Skew,
    /// `unskew` (s).
    Unskew,
    /// `mirror_width` (x).
    Mirror,
    /// `shift_down` (x).
    ShiftDown,
    /// `sum_squares` (x).
    SumSquares,
    /// `scale_inplace` (x), by -1 (exact, so repeated calls do not drift).
    Scale,
    /// `rmsprop_update` (param, grad, ms).
    RmsProp,
    /// `adam_update` (param, grad, m, v).
    Adam,
}

/// A bench op: what to run on which inputs.
struct OpCase {
    name: &'static str,
    /// The version key and pass of its kernels (`masked_conv2d`, `fwd`).
    key: &'static str,
    pass: &'static str,
    shape: String,
    kind: OpKind,
    /// Host inputs (shape, data).
    inputs: Vec<(Vec<usize>, Vec<f32>)>,
    /// LSTM backward: indices into `inputs` of (h, c, gates) forming the saved state.
    state: bool,
    tol: f64,
}

/// Inputs on one backend.
struct Inputs<X: Backend> {
    t: Vec<Tensor<X>>,
    state: Option<LstmState<X>>,
}

/// An op's result: tensors or a scalar.
enum Output<X: Backend> {
    T(Tensor<X>),
    S(f64),
}

const RMSPROP: RmsPropStep = RmsPropStep {
    lr: 1e-3,
    decay: 0.95,
    eps: 1e-4,
};
const ADAM: AdamStep = AdamStep {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    bias_correction1: 0.1,
    bias_correction2: 0.001,
};

impl OpKind {
    /// Runs the op on `be`; in-place ops return the tensors they updated.
    fn run<X: Backend>(&self, be: &X, inp: &mut Inputs<X>) -> Result<Vec<Output<X>>> {
        let t = &mut inp.t;
        let lstm = |st: LstmState<X>| vec![Output::T(st.h), Output::T(st.c), Output::T(st.gates)];
        let pair = |(a, b): (Tensor<X>, Tensor<X>)| vec![Output::T(a), Output::T(b)];
        let state = || {
            inp.state
                .as_ref()
                .ok_or_else(|| Error::Config("bench: an LSTM backward without its state".into()))
        };
        Ok(match *self {
            OpKind::ConvFwd(spec) => vec![Output::T(
                be.masked_conv2d_forward(&t[0], &t[1], &t[2], &spec)?,
            )],
            OpKind::ConvBwd(spec, need_dx) => {
                let g = be.masked_conv2d_backward(&t[0], &t[1], &t[2], &spec, need_dx)?;
                let mut v: Vec<Output<X>> = g.dx.into_iter().map(Output::T).collect();
                v.extend([Output::T(g.dw), Output::T(g.db)]);
                v
            }
            OpKind::ReluFwd => vec![Output::T(be.relu_forward(&t[0])?)],
            OpKind::ReluBwd => vec![Output::T(be.relu_backward(&t[0], &t[1])?)],
            OpKind::Add => vec![Output::T(be.add(&t[0], &t[1])?)],
            OpKind::SoftmaxNll => pair(be.softmax_nll(&t[0], &t[1], 1e-3)?),
            OpKind::BernoulliNll => pair(be.bernoulli_nll(&t[0], &t[1], 1e-3)?),
            OpKind::SampleLogits => vec![Output::T(be.sample_logits(&t[0], &t[1], false)?)],
            OpKind::RowLstmFwd(rec) => lstm(be.row_lstm_forward(&t[0], &t[1], rec)?),
            OpKind::DiagLstmFwd(rec) => lstm(be.diag_lstm_forward(&t[0], &t[1], rec)?),
            OpKind::RowLstmBwd(rec) => pair(be.row_lstm_backward(state()?, &t[0], &t[1], rec)?),
            OpKind::DiagLstmBwd(rec) => pair(be.diag_lstm_backward(state()?, &t[0], &t[1], rec)?),
            OpKind::Skew => vec![Output::T(be.skew(&t[0])?)],
            OpKind::Unskew => vec![Output::T(be.unskew(&t[0])?)],
            OpKind::Mirror => vec![Output::T(be.mirror_width(&t[0])?)],
            OpKind::ShiftDown => vec![Output::T(be.shift_down(&t[0])?)],
            OpKind::SumSquares => vec![Output::S(be.sum_squares(&t[0])?)],
            OpKind::Scale => {
                be.scale_inplace(&mut t[0], -1.0)?;
                Vec::new()
            }
            OpKind::RmsProp => {
                let (p, rest) = t.split_at_mut(1);
                let (g, ms) = rest.split_at_mut(1);
                be.rmsprop_update(&mut p[0], &g[0], &mut ms[0], RMSPROP)?;
                Vec::new()
            }
            OpKind::Adam => {
                let (p, rest) = t.split_at_mut(1);
                let (g, mv) = rest.split_at_mut(1);
                let (m, v) = mv.split_at_mut(1);
                be.adam_update(&mut p[0], &g[0], &mut m[0], &mut v[0], ADAM)?;
                Vec::new()
            }
        })
    }

    /// Indices of the inputs an in-place op updates (compared after the call).
    fn updated(&self) -> &'static [usize] {
        match self {
            OpKind::Scale => &[0],
            OpKind::RmsProp => &[0, 2],
            OpKind::Adam => &[0, 2, 3],
            _ => &[],
        }
    }

    /// Compulsory bytes per call, 4 per element: every input read once, every output written
    /// once. conv fwd: x + w + b + y; conv bwd: x + w + dy + (dx) + dw + db; relu fwd: 2 x;
    /// relu bwd, add: 3 x; softmax/bernoulli NLL: logits + targets + nll + dlogits; LSTM fwd:
    /// is + w_ss + h + c + gates; LSTM bwd: h + c + gates + w_ss + dh + d_is + dw; skew,
    /// unskew: the image plus the skewed map; mirror, shift: 2 x; sum of squares: x; scale:
    /// 2 x; RMSProp: 5 x (param, grad, ms read; param, ms written); Adam: 7 x.
    fn bytes(&self, inputs: &[(Vec<usize>, Vec<f32>)], outputs: usize) -> f64 {
        let ins: usize = inputs.iter().map(|(_, d)| d.len()).sum();
        let extra = match self {
            OpKind::Scale => inputs[0].1.len(),
            OpKind::RmsProp => 2 * inputs[0].1.len(),
            OpKind::Adam => 3 * inputs[0].1.len(),
            _ => 0,
        };
        4.0 * (ins + outputs + extra) as f64
    }
}

fn conv_flops(spec: &ConvSpec, positions: f64, cin: usize, cout: usize) -> f64 {
    2.0 * positions * (spec.taps().len() * cin * cout) as f64
}

/// Deterministic values in `[-scale, scale)` (a 64-bit LCG: the same inputs on every run).
fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn input(shape: &[usize], seed: u64, scale: f32) -> (Vec<usize>, Vec<f32>) {
    (shape.to_vec(), values(shape.iter().product(), seed, scale))
}

/// One op row's case plus its FLOP count.
struct Planned {
    case: OpCase,
    flops: Option<f64>,
    recurrence: Option<Recurrence>,
}

fn rec_name(r: Recurrence) -> String {
    use clap::ValueEnum;
    r.to_possible_value()
        .map_or_else(|| format!("{r:?}"), |p| p.get_name().to_string())
}

/// The op cases of config `cfg`: the layer shapes of its models.
fn plan_ops(cfg: &BenchConfig, recurrences: &[Recurrence]) -> Result<Vec<Planned>> {
    let cpu = CpuBackend::new();
    let (n, hh, ww, c, h) = (cfg.batch, cfg.height, cfg.width, cfg.channels, cfg.hidden);
    let p = cfg.positions();
    let at = format!("{n}x{hh}x{ww}");
    let mut out = Vec::new();
    let mut push = |name: &'static str, shape: String, kind, inputs, flops, tol, rec| {
        let (key, pass) = op_key(name);
        out.push(Planned {
            case: OpCase {
                name,
                key,
                pass,
                shape,
                kind,
                inputs,
                state: false,
                tol,
            },
            flops,
            recurrence: rec,
        })
    };
    let convs = [
        (7, 7, Mask::A, c, 2 * h, false),
        (3, 3, Mask::B, h, h, true),
        (1, 1, Mask::B, 2 * h, h, true),
        (1, 3, Mask::B, 2 * h, 4 * h, true),
    ];
    for (i, &(kh, kw, mask, cin, cout, need_dx)) in convs.iter().enumerate() {
        let spec = ConvSpec::new(kh, kw, mask, c, cin, cout);
        let shape = format!("{kh}x{kw} mask {mask:?} {cin}->{cout} on {at}");
        let seed = 100 + i as u64 * 10;
        let x = input(&[n, hh, ww, cin], seed, 1.0);
        let w = input(&[cout, cin, kh, kw], seed + 1, 0.2);
        let b = input(&[cout], seed + 2, 0.1);
        let dy = input(&[n, hh, ww, cout], seed + 3, 1.0);
        let f = conv_flops(&spec, p, cin, cout);
        push(
            "masked_conv2d fwd",
            shape.clone(),
            OpKind::ConvFwd(spec),
            vec![x.clone(), w.clone(), b],
            Some(f),
            FP32_REL_TOL,
            None,
        );
        push(
            "masked_conv2d bwd",
            shape,
            OpKind::ConvBwd(spec, need_dx),
            vec![x, w, dy],
            Some(if need_dx { 2.0 * f } else { f }),
            FP32_REL_TOL,
            None,
        );
    }
    let map = [n, hh, ww, 2 * h];
    let elems = map.iter().product::<usize>() as f64;
    let on = format!("{map:?}");
    push(
        "relu fwd",
        on.clone(),
        OpKind::ReluFwd,
        vec![input(&map, 200, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    push(
        "relu bwd",
        on.clone(),
        OpKind::ReluBwd,
        vec![input(&map, 201, 1.0), input(&map, 202, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    push(
        "add",
        on,
        OpKind::Add,
        vec![input(&map, 203, 1.0), input(&map, 204, 1.0)],
        Some(elems),
        FP32_REL_TOL,
        None,
    );
    let logits = [n, hh, ww, 256 * c];
    let targets: Vec<f32> = values(n * hh * ww * c, 210, 1.0)
        .iter()
        .map(|v| ((v + 1.0) * 127.9).floor().clamp(0.0, 255.0))
        .collect();
    push(
        "softmax_nll",
        format!("{logits:?}"),
        OpKind::SoftmaxNll,
        vec![
            input(&logits, 211, 3.0),
            (vec![n, hh, ww, c], targets.clone()),
        ],
        None,
        FP32_REL_TOL,
        None,
    );
    let bits: Vec<f32> = targets.iter().map(|&t| (t >= 128.0) as u8 as f32).collect();
    push(
        "bernoulli_nll",
        format!("[{n}, {hh}, {ww}, {c}]"),
        OpKind::BernoulliNll,
        vec![input(&[n, hh, ww, c], 212, 3.0), (vec![n, hh, ww, c], bits)],
        None,
        FP32_REL_TOL,
        None,
    );
    // Sampling: one position of every image of the batch (what the cached sampler draws).
    push(
        "sample_logits",
        format!("[{n}, {}]", 256 * c),
        OpKind::SampleLogits,
        vec![
            input(&[n, 256 * c], 213, 3.0),
            (
                vec![n, c],
                values(n * c, 214, 1.0)
                    .iter()
                    .map(|v| (v + 1.0) * 0.5)
                    .collect(),
            ),
        ],
        None,
        FP32_REL_TOL,
        None,
    );
    // Recurrences: the input-to-state pre-activations of one layer.
    let gates = [n, hh, ww, 4 * h];
    let k = crate::models::DEFAULT_ROW_KERNEL;
    for (lstm, ws, seed) in [
        ("row_lstm", [4 * h, h, 1, k], 300u64),
        ("diag_lstm", [4 * h, h, 2, 1], 400),
    ] {
        let is = input(&gates, seed, 1.0);
        let w_ss = input(&ws, seed + 1, 0.3);
        let dh = input(&[n, hh, ww, h], seed + 2, 1.0);
        let macs = ws[1] * ws[2] * ws[3] * ws[0];
        let f = 2.0 * p * macs as f64;
        // The backward's saved state: the CPU forward of the same inputs.
        let is_t = Tensor::from_slice(&cpu, &is.0, &is.1)?;
        let w_t = Tensor::from_slice(&cpu, &w_ss.0, &w_ss.1)?;
        let st = if lstm == "row_lstm" {
            cpu.row_lstm_forward(&is_t, &w_t, Recurrence::default())?
        } else {
            cpu.diag_lstm_forward(&is_t, &w_t, Recurrence::default())?
        };
        let state_inputs = vec![
            (st.h.shape.clone(), st.h.data.clone()),
            (st.c.shape.clone(), st.c.data.clone()),
            (st.gates.shape.clone(), st.gates.data.clone()),
        ];
        let what = if lstm == "row_lstm" {
            format!("h{h} 1x{k} on {at}")
        } else {
            format!("h{h} 2x1 on {at} (one direction)")
        };
        for &rec in recurrences {
            let (fwd, bwd) = if lstm == "row_lstm" {
                (OpKind::RowLstmFwd(rec), OpKind::RowLstmBwd(rec))
            } else {
                (OpKind::DiagLstmFwd(rec), OpKind::DiagLstmBwd(rec))
            };
            let (fname, bname) = if lstm == "row_lstm" {
                ("row_lstm fwd", "row_lstm bwd")
            } else {
                ("diag_lstm fwd", "diag_lstm bwd")
            };
            push(
                fname,
                what.clone(),
                fwd,
                vec![is.clone(), w_ss.clone()],
                Some(f),
                DEEP_REL_TOL,
                Some(rec),
            );
            let mut ins = state_inputs.clone();
            ins.extend([w_ss.clone(), dh.clone()]);
            push(
                bname,
                what.clone(),
                bwd,
                ins,
                Some(2.0 * f),
                DEEP_REL_TOL,
                Some(rec),
            );
        }
    }
    let img = [n, hh, ww, h];
    let ws = crate::backend::skewed_width(hh, ww);
    push(
        "skew",
        format!("{img:?}"),
        OpKind::Skew,
        vec![input(&img, 500, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    push(
        "unskew",
        format!("[{n}, {hh}, {ws}, {h}]"),
        OpKind::Unskew,
        vec![input(&[n, hh, ws, h], 501, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    push(
        "mirror_width",
        format!("{img:?}"),
        OpKind::Mirror,
        vec![input(&img, 502, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    push(
        "shift_down",
        format!("{img:?}"),
        OpKind::ShiftDown,
        vec![input(&img, 503, 1.0)],
        None,
        FP32_REL_TOL,
        None,
    );
    let lg = logits.iter().product::<usize>() as f64;
    push(
        "sum_squares",
        format!("{logits:?}"),
        OpKind::SumSquares,
        vec![input(&logits, 504, 1.0)],
        Some(2.0 * lg),
        FP32_REL_TOL,
        None,
    );
    push(
        "scale_inplace",
        format!("{logits:?}"),
        OpKind::Scale,
        vec![input(&logits, 505, 1.0)],
        Some(lg),
        FP32_REL_TOL,
        None,
    );
    // Optimizers: a parameter vector of the model's size (about).
    let np = cfg.model(ModelKind::RowLstm).clone();
    let params = {
        let mut m = Model::new(&cpu, np, 0)?;
        m.num_params()
    };
    let pv = [params];
    let positive = |seed| {
        let (s, v) = input(&pv, seed, 1.0);
        (s, v.iter().map(|x| x.abs() + 1e-3).collect::<Vec<f32>>())
    };
    // RMSProp: ms = d ms + (1-d) g^2, p -= lr g / sqrt(ms + eps): 8 FLOPs per element.
    push(
        "rmsprop_update",
        format!("{params} params"),
        OpKind::RmsProp,
        vec![input(&pv, 600, 1.0), input(&pv, 601, 0.1), positive(602)],
        Some(8.0 * params as f64),
        FP32_REL_TOL,
        None,
    );
    // Adam: two moment updates, bias corrections, sqrt, divide: 14 FLOPs per element.
    push(
        "adam_update",
        format!("{params} params"),
        OpKind::Adam,
        vec![
            input(&pv, 610, 1.0),
            input(&pv, 611, 0.1),
            input(&pv, 612, 0.01),
            positive(613),
        ],
        Some(14.0 * params as f64),
        FP32_REL_TOL,
        None,
    );
    // The LSTM backward rows take (h, c, gates) first: the forward's saved state.
    for p in &mut out {
        p.case.state = matches!(p.case.kind, OpKind::RowLstmBwd(_) | OpKind::DiagLstmBwd(_));
    }
    Ok(out)
}

fn upload<X: Backend>(be: &X, case: &OpCase) -> Result<Inputs<X>> {
    let mut t = case
        .inputs
        .iter()
        .map(|(s, d)| Tensor::from_slice(be, s, d))
        .collect::<Result<Vec<_>>>()?;
    let state = if case.state {
        let rest = t.split_off(3);
        let mut it = t.into_iter();
        let (h, c, gates) = match (it.next(), it.next(), it.next()) {
            (Some(h), Some(c), Some(g)) => (h, c, g),
            _ => return Err(Error::Config("bench: LSTM state needs h, c, gates".into())),
        };
        t = rest;
        Some(LstmState { h, c, gates })
    } else {
        None
    };
    Ok(Inputs { t, state })
}

/// The op's outputs (and updated inputs) on the host.
fn host_results<X: Backend>(
    be: &X,
    kind: &OpKind,
    outs: Vec<Output<X>>,
    inp: &Inputs<X>,
) -> Result<Vec<Vec<f32>>> {
    let mut v = Vec::new();
    for o in outs {
        v.push(match o {
            Output::T(t) => t.to_vec(be)?,
            Output::S(s) => vec![s as f32],
        });
    }
    for &i in kind.updated() {
        v.push(inp.t[i].to_vec(be)?);
    }
    Ok(v)
}

/// `||got - want|| / ||want||` over all outputs (the absolute error when `want` is zero);
/// infinite on a length mismatch or a non-finite value where the reference is finite.
pub fn rel_err(got: &[Vec<f32>], want: &[Vec<f32>]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        if g.len() != w.len() {
            return f64::INFINITY;
        }
        for (&a, &b) in g.iter().zip(w) {
            if !a.is_finite() && b.is_finite() {
                return f64::INFINITY;
            }
            num += (a as f64 - b as f64).powi(2);
            den += (b as f64).powi(2);
        }
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Number of rows (ceilings excluded) that [`run`] will produce, for a progress bar.
pub fn count_rows<B: BenchBackend>(be: &B, o: &Options) -> usize {
    let mut per_config = 0;
    if o.part != Part::Steps {
        for &name in OP_NAMES.iter().filter(|n| op_selected(o, n)) {
            let (key, pass) = op_key(name);
            let reps = if name.contains("lstm") {
                o.recurrences.len()
            } else {
                1
            };
            per_config +=
                reps * be.versions(key, pass).len().max(1) * layout_choices(be, key).len();
        }
    }
    if o.part != Part::Ops {
        for m in &o.models {
            per_config += if *m == ModelKind::PixelCnn {
                1
            } else {
                o.recurrences.len() * layout_choices(be, model_layout_key(*m)).len()
            };
        }
    }
    per_config * o.configs.len()
}

/// Every op row name, in bench order.
const OP_NAMES: [&str; 20] = [
    "masked_conv2d fwd",
    "masked_conv2d bwd",
    "relu fwd",
    "relu bwd",
    "add",
    "softmax_nll",
    "bernoulli_nll",
    "sample_logits",
    "row_lstm fwd",
    "row_lstm bwd",
    "diag_lstm fwd",
    "diag_lstm bwd",
    "skew",
    "unskew",
    "mirror_width",
    "shift_down",
    "sum_squares",
    "scale_inplace",
    "rmsprop_update",
    "adam_update",
];

/// The version key (the first argument of `CudaBackend::kernel_name`, also the module name)
/// and the pass whose kernel versions an op row times: `<key>_<pass>_v<N>`.
fn op_key(name: &str) -> (&'static str, &'static str) {
    match name {
        "masked_conv2d fwd" => ("masked_conv2d", "fwd"),
        "masked_conv2d bwd" => ("masked_conv2d", "bwd_data"),
        "relu fwd" => ("elementwise", "relu_fwd"),
        "relu bwd" => ("elementwise", "relu_bwd"),
        "add" => ("elementwise", "add_fwd"),
        "softmax_nll" => ("softmax_nll", "fwd_bwd"),
        "bernoulli_nll" => ("bernoulli_nll", "fwd_bwd"),
        "sample_logits" => ("sample_logits", "fwd"),
        "row_lstm fwd" => ("row_lstm", "step_fwd"),
        "row_lstm bwd" => ("row_lstm", "step_bwd"),
        "diag_lstm fwd" => ("diag_lstm", "step_fwd"),
        "diag_lstm bwd" => ("diag_lstm", "step_bwd"),
        "skew" => ("skew", "fwd"),
        "unskew" => ("skew", "unskew"),
        "mirror_width" => ("mirror_shift", "mirror_width"),
        "shift_down" => ("mirror_shift", "shift_down"),
        "sum_squares" => ("reduce", "sum_squares_fwd"),
        "scale_inplace" => ("elementwise", "scale_fwd"),
        "rmsprop_update" => ("optim", "rmsprop"),
        _ => ("optim", "adam"),
    }
}

fn op_selected(o: &Options, name: &str) -> bool {
    o.op_filter.is_empty() || o.op_filter.iter().any(|f| name.contains(f.as_str()))
}

/// The names of every op row, for `--op` help and checks.
pub fn op_row_names() -> &'static [&'static str] {
    &OP_NAMES
}

// ------------------------------------------------------------------------------ runner

/// Runs the bench on `be`; `progress` is called after each row.
pub fn run<B: BenchBackend>(
    be: &B,
    o: &Options,
    progress: &mut dyn FnMut(&OpRow),
) -> Result<Report> {
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (ceilings, mut rows) = be.measure_ceilings(o.iters)?;
    for r in &rows {
        progress(r);
    }
    let cpu = CpuBackend::new();
    // The CPU backend is the reference: when it is the backend timed, nothing to compare.
    let validate = !be.is_reference();
    if o.part != Part::Steps {
        for cfg in &o.configs {
            for planned in plan_ops(cfg, &o.recurrences)? {
                if !op_selected(o, planned.case.name) {
                    continue;
                }
                for row in time_op(be, &cpu, cfg, &planned, o, &ceilings, validate) {
                    progress(&row);
                    rows.push(row);
                }
            }
        }
    }
    if o.part != Part::Ops {
        for cfg in &o.configs {
            for &kind in &o.models {
                let recs: Vec<Option<Recurrence>> = if kind == ModelKind::PixelCnn {
                    vec![None]
                } else {
                    o.recurrences.iter().copied().map(Some).collect()
                };
                for rec in recs {
                    let layouts = if rec.is_some() {
                        layout_choices(be, model_layout_key(kind))
                    } else {
                        vec![None]
                    };
                    for layout in layouts {
                        let row =
                            time_step(be, &cpu, cfg, kind, rec, layout, o, &ceilings, validate);
                        progress(&row);
                        rows.push(row);
                    }
                }
            }
        }
    }
    fill_speedups(&mut rows);
    Ok(Report {
        device: be.name(),
        timer: be.timer(),
        emulated: be.emulated(),
        unix_time,
        date: utc_date(unix_time),
        warmup: o.warmup,
        ceilings,
        rows,
    })
}

fn time_op<B: BenchBackend>(
    be: &B,
    cpu: &CpuBackend,
    cfg: &BenchConfig,
    planned: &Planned,
    o: &Options,
    ceilings: &Ceilings,
    validate: bool,
) -> Vec<OpRow> {
    let case = &planned.case;
    let versions = be.versions(case.key, case.pass);
    let labels: Vec<(Option<u32>, String)> = if versions.is_empty() {
        vec![(None, "cpu".into())]
    } else {
        versions
            .iter()
            .map(|&v| (Some(v), format!("v{v}")))
            .collect()
    };
    // Every version in every layout (the Diagonal LSTM on CUDA: folded, materialised).
    let layouts = layout_choices(be, case.key);
    let labels: Vec<(Option<u32>, Option<u32>, String)> = labels
        .into_iter()
        .flat_map(|(v, label)| layouts.iter().map(move |&l| (v, l, label.clone())))
        .collect();
    // The reference result, once for all versions.
    let want = if validate {
        Some(upload(cpu, case).and_then(|mut inp| {
            let outs = case.kind.run(cpu, &mut inp)?;
            host_results(cpu, &case.kind, outs, &inp)
        }))
    } else {
        None
    };
    let mut rows = Vec::new();
    for (version, layout, label) in labels {
        let mut row = OpRow::new(
            "op",
            case.name.to_string(),
            cfg.name,
            case.shape.clone(),
            label,
        );
        row.recurrence = planned.recurrence.map(rec_name);
        row.layout = layout.map(|l| layout_name(l).to_string());
        row.flops = planned.flops;
        row.tol = case.tol;
        if let Some(v) = version {
            if !be.runnable(case.key, case.pass, v) {
                row.status = "skipped".into();
                row.note = "GPU-only kernel: the emulator does not run it".into();
                rows.push(row);
                continue;
            }
            be.select_version(case.key, v);
        }
        if let Some(l) = layout {
            be.select_version(LAYOUT_KEY, l);
        }
        let result = (|| -> Result<()> {
            let mut inp = upload(be, case)?;
            let outs = case.kind.run(be, &mut inp)?;
            let got = host_results(be, &case.kind, outs, &inp)?;
            let out_elems: usize = got.iter().map(Vec::len).sum::<usize>()
                - case
                    .kind
                    .updated()
                    .iter()
                    .map(|&i| inp.t[i].numel())
                    .sum::<usize>();
            row.bytes = Some(case.kind.bytes(&case.inputs, out_elems));
            match &want {
                Some(Ok(w)) => {
                    let err = rel_err(&got, w);
                    row.rel_err = Some(err);
                    let within = err <= case.tol; // NaN is not within
                    if !within {
                        row.status = "WRONG".into();
                        row.note =
                            format!("relative error {err:.2e} > {:.0e}: not timed", case.tol);
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    row.status = "error".into();
                    row.note = format!("CPU reference failed: {e}");
                    return Ok(());
                }
                None => {
                    if got.iter().flatten().any(|v| !v.is_finite()) {
                        row.status = "WRONG".into();
                        row.note = "non-finite output: not timed".into();
                        return Ok(());
                    }
                }
            }
            // Fresh inputs: the check's in-place ops updated them once already; harmless.
            for _ in 0..o.warmup {
                case.kind.run(be, &mut inp)?;
            }
            let mut times = Vec::with_capacity(o.iters);
            for _ in 0..o.iters.max(1) {
                times.push(be.time_ms(&mut || case.kind.run(be, &mut inp).map(drop))?);
            }
            row.set_times(&mut times, ceilings);
            Ok(())
        })();
        if let Err(e) = result {
            row.status = "error".into();
            row.note = one_line(&e.to_string());
        }
        if version.is_some() {
            be.select_version(case.key, 1);
        }
        if layout.is_some() {
            be.select_version(LAYOUT_KEY, 1);
        }
        rows.push(row);
    }
    rows
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// A deterministic batch of `cfg`'s size.
fn step_images(cfg: &BenchConfig) -> Result<Images> {
    let dims = cfg.height * cfg.width * cfg.channels;
    let pixels = (0..cfg.batch * dims)
        .map(|i| ((i * 7919) % 256) as u8)
        .collect();
    Ok(Images::new(
        cfg.batch,
        cfg.height,
        cfg.width,
        cfg.channels,
        false,
        pixels,
    )?)
}

/// One training step of `model` on `images`: forward, loss, backward, RMSProp. Returns the
/// summed NLL (nats) and the gradients' global norm.
fn train_step<X: Backend>(
    be: &X,
    model: &mut Model<X>,
    opt: &mut Optimizer<X>,
    images: &Images,
    need_numbers: bool,
) -> Result<(f64, f64)> {
    let idx: Vec<usize> = (0..images.n).collect();
    let scale = 1.0 / (images.n * model.config.dims()) as f32;
    let (x, t) = model.batch(be, images, &idx)?;
    let (logits, cache) = model.forward(be, &x)?;
    let (nll, dl) = model.loss(be, &logits, &t, scale)?;
    model.backward(be, cache, &dl, false)?;
    let stats = opt.step(be, model.params_mut())?;
    let loss = if need_numbers { be.sum(&nll)? } else { 0.0 };
    Ok((loss, stats.grad_norm))
}

fn optimizer<X: Backend>() -> Optimizer<X> {
    Optimizer::new(OptimConfig {
        kind: OptimizerKind::RmsProp,
        ..OptimConfig::default()
    })
}

/// The version key whose layouts the training step of `kind` is timed in (the Diagonal
/// BiLSTM's scans: `diag_lstm`; no other model has layouts).
fn model_layout_key(kind: ModelKind) -> &'static str {
    if kind == ModelKind::DiagBiLstm {
        "diag_lstm"
    } else {
        ""
    }
}

/// The training-step row of `kind` with recurrence `rec`, in Diagonal LSTM layout `layout`
/// (selected for the whole row, then back to the default).
#[allow(clippy::too_many_arguments)]
fn time_step<B: BenchBackend>(
    be: &B,
    cpu: &CpuBackend,
    cfg: &BenchConfig,
    kind: ModelKind,
    rec: Option<Recurrence>,
    layout: Option<u32>,
    o: &Options,
    ceilings: &Ceilings,
    validate: bool,
) -> OpRow {
    let mc = cfg.model(kind);
    let mut variant = rec.map_or_else(|| "-".to_string(), rec_name);
    if let Some(l) = layout.filter(|&l| l != 1) {
        variant = format!("{variant}/{}", layout_name(l));
    }
    let mut row = OpRow::new(
        "step",
        format!("{} train step", kind.name()),
        cfg.name,
        cfg.label(),
        variant,
    );
    row.recurrence = rec.map(rec_name);
    row.layout = layout.map(|l| layout_name(l).to_string());
    if let Some(l) = layout {
        be.select_version(LAYOUT_KEY, l);
    }
    row.tol = DEEP_REL_TOL;
    row.flops = step_flops(&mc, cfg.batch).map(|(_, s)| s);
    let result = (|| -> Result<()> {
        let images = step_images(cfg)?;
        let mut model = Model::new(be, mc.clone(), 0)?;
        model.set_recurrence(rec.unwrap_or_default());
        let mut opt = optimizer::<B>();
        let (loss, norm) = train_step(be, &mut model, &mut opt, &images, true)?;
        if validate {
            let mut cm = Model::new(cpu, mc.clone(), 0)?;
            cm.set_recurrence(rec.unwrap_or_default());
            let mut copt = optimizer::<CpuBackend>();
            let (l, n) = train_step(cpu, &mut cm, &mut copt, &images, true)?;
            let err = ((loss - l) / l).abs().max(((norm - n) / n).abs());
            row.rel_err = Some(err);
            let within = err <= DEEP_REL_TOL; // NaN is not within
            if !within {
                row.status = "WRONG".into();
                row.note = format!(
                    "loss {loss:.6e} vs cpu {l:.6e}, grad norm {norm:.6e} vs {n:.6e}: not timed"
                );
                return Ok(());
            }
        } else if !(loss.is_finite() && norm.is_finite()) {
            row.status = "WRONG".into();
            row.note = "non-finite loss or gradient: not timed".into();
            return Ok(());
        }
        for _ in 0..o.warmup.min(3) {
            train_step(be, &mut model, &mut opt, &images, false)?;
        }
        let mut times = Vec::new();
        for _ in 0..o.step_iters.max(1) {
            times.push(
                be.time_ms(&mut || train_step(be, &mut model, &mut opt, &images, false).map(drop))?,
            );
        }
        row.set_times(&mut times, ceilings);
        let ips = row.ms.map(|ms| cfg.batch as f64 / (ms / 1e3));
        row.note = ips.map_or_else(String::new, |v| format!("{v:.0} images/s"));
        Ok(())
    })();
    if let Err(e) = result {
        row.status = "error".into();
        row.note = one_line(&e.to_string());
    }
    if layout.is_some() {
        be.select_version(LAYOUT_KEY, 1);
    }
    row
}

/// Sets `speedup_vs_unfused` on every recurrent row that has an unfused twin (same name,
/// config, shape, kernel version and layout).
fn fill_speedups(rows: &mut [OpRow]) {
    let unfused_name = rec_name(Recurrence::Unfused);
    let base: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.recurrence.as_deref() == Some(unfused_name.as_str()))
        .filter_map(|r| Some((speedup_key(r), r.ms?)))
        .collect();
    for r in rows.iter_mut().filter(|r| r.recurrence.is_some()) {
        let key = speedup_key(r);
        if let (Some((_, b)), Some(ms)) = (base.iter().find(|(k, _)| *k == key), r.ms) {
            r.speedup_vs_unfused = Some(b / ms);
        }
    }
}

fn speedup_key(r: &OpRow) -> String {
    let v = if r.kind == "step" {
        ""
    } else {
        r.variant.as_str()
    };
    let layout = r.layout.as_deref().unwrap_or("");
    format!("{}|{}|{}|{}|{layout}", r.name, r.config, r.shape, v)
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (civil-from-days, proleptic Gregorian).
pub fn utc_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

// ------------------------------------------------------------------------------ output

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// The report as a fixed-width table, one line per row.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "pixelrnn bench on {} ({}), {}; timer: {}\n",
        r.device,
        if r.emulated { "EMULATED" } else { "measured" },
        r.date,
        r.timer
    ));
    s.push_str(&format!(
        "ceilings: copy {} GB/s, fp32 {} GFLOP/s ({})\n",
        fmt_opt(r.ceilings.copy_gb_per_s, |v| format!("{v:.1}")),
        fmt_opt(r.ceilings.fp32_gflop_per_s, |v| format!("{v:.1}")),
        r.ceilings.how
    ));
    s.push_str(&format!(
        "{:<22} {:<11} {:<34} {:<26} {:>10} {:>9} {:>9} {:>6} {:>6} {:>7} {:>9}  {}\n",
        "row",
        "config",
        "shape",
        "variant",
        "ms",
        "GB/s",
        "GFLOP/s",
        "%bw",
        "%fp32",
        "vs unf",
        "rel err",
        "status"
    ));
    for row in &r.rows {
        let variant = match (&row.recurrence, row.kind) {
            (Some(rec), "op") => match row.layout.as_deref() {
                Some(l) if l != layout_name(1) => format!("{}/{rec}/{l}", row.variant),
                _ => format!("{}/{rec}", row.variant),
            },
            _ => row.variant.clone(),
        };
        s.push_str(&format!(
            "{:<22} {:<11} {:<34} {:<26} {:>10} {:>9} {:>9} {:>6} {:>6} {:>7} {:>9}  {}{}\n",
            row.name,
            row.config,
            truncate(&row.shape, 34),
            variant,
            fmt_opt(row.ms, |v| format!("{v:.4}")),
            fmt_opt(row.gb_per_s, |v| format!("{v:.1}")),
            fmt_opt(row.gflop_per_s, |v| format!("{v:.1}")),
            fmt_opt(row.frac_copy_bw, |v| format!("{:.0}%", v * 100.0)),
            fmt_opt(row.frac_fp32, |v| format!("{:.0}%", v * 100.0)),
            fmt_opt(row.speedup_vs_unfused, |v| format!("{v:.2}x")),
            fmt_opt(row.rel_err, |v| format!("{v:.1e}")),
            row.status,
            if row.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", row.note)
            }
        ));
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}~")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_flops_match_docs_benchmarks() {
        // docs/benchmarks.md, "CPU: FLOPs per training step" (GFLOP per training step).
        let cases = [
            (ModelKind::PixelCnn, "mnist", 1.95),
            (ModelKind::PixelCnn, "cifar", 9.17),
            (ModelKind::RowLstm, "mnist", 4.78),
            (ModelKind::RowLstm, "cifar", 17.63),
            (ModelKind::DiagBiLstm, "mnist", 5.32),
            (ModelKind::DiagBiLstm, "cifar", 19.24),
        ];
        for (kind, name, want) in cases {
            let c = config(name).unwrap();
            let (_, step) = step_flops(&c.model(kind), c.batch).unwrap();
            let got = step / 1e9;
            assert!(
                (got - want).abs() < 0.01,
                "{kind:?} {name}: {got:.3} vs {want}"
            );
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn rel_err_catches_nan_and_mismatch() {
        let a = vec![vec![1.0, 2.0]];
        assert_eq!(rel_err(&a, &a), 0.0);
        assert!(rel_err(&[vec![1.0, f32::NAN]], &a).is_infinite());
        assert!(rel_err(&[vec![1.0]], &a).is_infinite());
        assert!(rel_err(&[vec![1.0, 2.2]], &a) > 0.05);
    }

    #[test]
    fn peak_expectation_is_a_contraction() {
        let v = peak_fma_expected(3, 1000, 0.999, 1e-3);
        assert!(v.is_finite() && v > 0.0);
    }

    #[test]
    fn every_op_name_has_a_planned_case() {
        let cfg = config("tiny").unwrap();
        let planned = plan_ops(
            cfg,
            &[
                Recurrence::Fused,
                Recurrence::Unfused,
                Recurrence::Persistent,
            ],
        )
        .unwrap();
        for name in OP_NAMES {
            assert!(planned.iter().any(|p| p.case.name == name), "{name}");
            let (key, _) = op_key(name);
            assert!(
                planned
                    .iter()
                    .filter(|p| p.case.name == name)
                    .all(|p| p.case.key == key),
                "{name}: key {key}"
            );
        }
    }
}
