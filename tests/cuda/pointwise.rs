//! Parity of the pointwise, loss, reduction, optimizer, position ops
//! (kernels/{elementwise,softmax_nll,bernoulli_nll,reduce,optim,position}.cu) against their
//! CPU twins, and shape errors; sampling (`sample_logits`) is sampling.rs's.
//!
//! Tolerances: ops that are one IEEE operation per element (ReLU, add, scale, the position
//! copies) must match bit for bit; the losses and the optimizers use `FP32_REL_TOL` (different
//! exp/log/sqrt implementations, possible FMA contraction: a few ulp); the f64 reductions
//! 1e-12 relative (f64 sums of the same f32 values in a different order).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::{AdamStep, Backend, RmsPropStep};
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::{assert_close, cpu_tensor, pair, random, to_gpu, FP32_REL_TOL};

crate::parity_tests! {
    relu => super::check_relu,
    add => super::check_add,
    scale_inplace => super::check_scale_inplace,
    softmax_nll => super::check_softmax_nll,
    softmax_nll_invalid_targets => super::check_softmax_nll_invalid_targets,
    bernoulli_nll => super::check_bernoulli_nll,
    sum => super::check_sums,
    sum_squares_all => super::check_sum_squares_all,
    rmsprop_update => super::check_rmsprop_update,
    adam_update => super::check_adam_update,
    position => super::check_position,
    shape_errors => super::check_shape_errors,
}

/// Shapes with odd element counts: one element, a partial block, several blocks plus a tail.
const SHAPES: [&[usize]; 4] = [&[1], &[1000], &[4099], &[3, 5, 7, 11]];

/// Relative error 0: the kernel must reproduce the CPU's IEEE result exactly.
pub(crate) const EXACT: f64 = 0.0;

/// Asserts that `got` equals `want` element by element, bit for bit up to the sign of zero
/// and NaN payloads (NaN matches NaN, inf matches inf: `rel_err` cannot weigh infinities).
pub(crate) fn assert_same<E: Executor>(
    what: &str,
    gpu: &CudaBackend<E>,
    got: &Tensor<CudaBackend<E>>,
    want: &Tensor<CpuBackend>,
) {
    assert_eq!(got.shape, want.shape, "{what}: shapes differ");
    let host = download(gpu, got);
    for (i, (&g, &w)) in host.iter().zip(&want.data).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {i} is {g}, want {w}"
        );
    }
}

/// f64 sums of the same values in a different order.
const F64_REL_TOL: f64 = 1e-12;

/// `t` downloaded.
pub(crate) fn download<E: Executor>(gpu: &CudaBackend<E>, t: &Tensor<CudaBackend<E>>) -> Vec<f32> {
    t.to_vec(gpu).expect("download")
}

/// Random data of `len` with a few special values at the front: NaN, +-inf, +-0.
fn with_specials(seed: u64, len: usize) -> Vec<f32> {
    let mut v = random(seed, len, 4.0);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
    for (x, s) in v.iter_mut().zip(specials) {
        *x = s;
    }
    v
}

pub fn check_relu<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = cpu_tensor(shape, &with_specials(10 + s as u64, n));
        let y_cpu = cpu.relu_forward(&x).unwrap();
        let y_gpu = gpu.relu_forward(&to_gpu(gpu, &x)).unwrap();
        assert_same(&format!("relu_forward {shape:?}"), gpu, &y_gpu, &y_cpu);
        // Element 0 is NaN (with_specials): both propagate it, neither turns it into 0.
        assert!(
            y_cpu.data[0].is_nan() && download(gpu, &y_gpu)[0].is_nan(),
            "relu_forward {shape:?}: relu(NaN) must be NaN on both backends"
        );

        // The output gradient holds specials too, so that `y > 0 ? dy : 0` is checked on them.
        let dy = cpu_tensor(shape, &with_specials(20 + s as u64, n));
        let dx_cpu = cpu.relu_backward(&y_cpu, &dy).unwrap();
        let dx_gpu = gpu.relu_backward(&y_gpu, &to_gpu(gpu, &dy)).unwrap();
        assert_same(&format!("relu_backward {shape:?}"), gpu, &dx_gpu, &dx_cpu);
    }
}

pub fn check_add<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let (a_cpu, a_gpu) = pair(gpu, shape, 30 + s as u64, 3.0);
        let (b_cpu, b_gpu) = pair(gpu, shape, 40 + s as u64, 3.0);
        let want = cpu.add(&a_cpu, &b_cpu).unwrap();
        let got = gpu.add(&a_gpu, &b_gpu).unwrap();
        assert_close(&format!("add {shape:?}"), gpu, &got, &want, EXACT);
        // The inputs are read, not written.
        assert_eq!(download(gpu, &a_gpu), a_cpu.data, "add wrote its input");
    }
}

pub fn check_scale_inplace<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let (mut x_cpu, mut x_gpu) = pair(gpu, shape, 50 + s as u64, 2.0);
        let before = x_cpu.data.clone();
        // A clone shares the buffer: the in-place op must copy before writing.
        let snapshot = x_gpu.clone();
        cpu.scale_inplace(&mut x_cpu, -0.37).unwrap();
        gpu.scale_inplace(&mut x_gpu, -0.37).unwrap();
        assert_close(
            &format!("scale_inplace {shape:?}"),
            gpu,
            &x_gpu,
            &x_cpu,
            EXACT,
        );
        assert_eq!(
            download(gpu, &snapshot),
            before,
            "scale_inplace {shape:?}: a clone taken before changed (no copy-on-write)"
        );
        // Unshared now: a second scale writes in place and still matches.
        cpu.scale_inplace(&mut x_cpu, 3.0).unwrap();
        gpu.scale_inplace(&mut x_gpu, 3.0).unwrap();
        assert_close(
            &format!("scale_inplace x2 {shape:?}"),
            gpu,
            &x_gpu,
            &x_cpu,
            EXACT,
        );
    }
}

/// Logits mostly in [-5, 5) with one in 16 of large magnitude (up to +-80), so that the
/// max-subtraction and the stable softplus matter.
pub(crate) fn random_logits(rng: &mut Pcg64, n: usize) -> Vec<f32> {
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

fn random_targets(rng: &mut Pcg64, n: usize, levels: u32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(0..levels) as f32).collect()
}

/// A loss op's `(nll, dlogits)` on the device against the CPU twin's, both within
/// [`FP32_REL_TOL`]; `what` names the op and shape in the messages.
fn assert_nll_close<E: Executor>(
    what: &str,
    gpu: &CudaBackend<E>,
    (nll, dlogits): (&Tensor<CudaBackend<E>>, &Tensor<CudaBackend<E>>),
    (nll_want, dlogits_want): (&Tensor<CpuBackend>, &Tensor<CpuBackend>),
) {
    assert_close(&format!("{what} nll"), gpu, nll, nll_want, FP32_REL_TOL);
    assert_close(
        &format!("{what} dlogits"),
        gpu,
        dlogits,
        dlogits_want,
        FP32_REL_TOL,
    );
}

pub fn check_softmax_nll<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    // (leading shape, channels): one position; C = 1 with a row count that is not a multiple
    // of the 8 rows a block covers; C = 3 interleaved; a 4-D NHWC head.
    let cases: [(&[usize], usize); 4] = [(&[1], 1), (&[203], 1), (&[77], 3), (&[2, 3, 5], 3)];
    for (s, (lead, c)) in cases.into_iter().enumerate() {
        let mut rng = Pcg64::seed_from_u64(60 + s as u64);
        let positions: usize = lead.iter().product();
        let lshape = [lead, &[256 * c]].concat();
        let tshape = [lead, &[c]].concat();
        let logits = cpu_tensor(&lshape, &random_logits(&mut rng, positions * 256 * c));
        let targets = cpu_tensor(&tshape, &random_targets(&mut rng, positions * c, 256));
        let grad_scale = 1.0 / (positions * c) as f32;
        let (nll_cpu, dl_cpu) = cpu.softmax_nll(&logits, &targets, grad_scale).unwrap();
        let (nll_gpu, dl_gpu) = gpu
            .softmax_nll(&to_gpu(gpu, &logits), &to_gpu(gpu, &targets), grad_scale)
            .unwrap();
        let what = format!("softmax_nll {lshape:?}");
        assert_nll_close(&what, gpu, (&nll_gpu, &dl_gpu), (&nll_cpu, &dl_cpu));
    }
}

/// In the kernel, a target that is not an integer in 0..=255 gives NaN in its nll and its
/// channel's dlogits (the CPU backend returns an error instead, and so does the CUDA op, whose
/// target check is tested in tests/cuda/geometry.rs; the other sub-pixels must match it).
pub fn check_softmax_nll_invalid_targets<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let (positions, c) = (6, 3);
    let mut rng = Pcg64::seed_from_u64(70);
    let logits = cpu_tensor(
        &[positions, 256 * c],
        &random_logits(&mut rng, positions * 768),
    );
    let valid = random_targets(&mut rng, positions * c, 256);
    let bad = [(0, -1.0), (4, 256.0), (8, 2.5), (13, f32::NAN), (17, 1e9)];
    let mut targets = valid.clone();
    for &(i, t) in &bad {
        targets[i] = t;
    }
    assert!(cpu
        .softmax_nll(&logits, &cpu_tensor(&[positions, c], &targets), 1.0)
        .is_err());
    let (nll_cpu, dl_cpu) = cpu
        .softmax_nll(&logits, &cpu_tensor(&[positions, c], &valid), 1.0)
        .unwrap();
    let (nll_gpu, dl_gpu) = crate::geometry::softmax_nll_unchecked(
        gpu,
        &to_gpu(gpu, &logits),
        &to_gpu(gpu, &cpu_tensor(&[positions, c], &targets)),
        1.0,
    )
    .unwrap();
    let (nll, dl) = (download(gpu, &nll_gpu), download(gpu, &dl_gpu));
    for (row, (&got, &want)) in nll.iter().zip(&nll_cpu.data).enumerate() {
        let (p, ch) = (row / c, row % c);
        let is_bad = bad.iter().any(|&(i, _)| i == row);
        let grads = (0..256).map(|k| dl[p * 768 + k * c + ch]);
        if is_bad {
            assert!(got.is_nan(), "nll[{row}] = {got} for an invalid target");
            assert!(
                grads.into_iter().all(f32::is_nan),
                "dlogits of row {row} not NaN"
            );
        } else {
            let rel = ((got - want) / want).abs();
            assert!(rel < 1e-5, "nll[{row}]: {got} vs {want}");
            for (k, g) in grads.enumerate() {
                let want_g = dl_cpu.data[p * 768 + k * c + ch];
                // Probabilities are at most 1 (grad_scale 1): a few ulp of 1 is ~1e-6.
                assert!(
                    (g - want_g).abs() <= 1e-5,
                    "dlogits row {row} value {k}: {g} vs {want_g}"
                );
            }
        }
    }
}

pub fn check_bernoulli_nll<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut rng = Pcg64::seed_from_u64(80 + s as u64);
        let mut l = random_logits(&mut rng, n);
        // Large |logits| where exp overflows without the stable forms.
        for (x, v) in l.iter_mut().zip([200.0, -200.0, 88.7, -88.7, 1e30]) {
            *x = v;
        }
        let logits = cpu_tensor(shape, &l);
        let targets = cpu_tensor(shape, &random_targets(&mut rng, n, 2));
        let grad_scale = 1.0 / n as f32;
        let (nll_cpu, dl_cpu) = cpu.bernoulli_nll(&logits, &targets, grad_scale).unwrap();
        let (nll_gpu, dl_gpu) = gpu
            .bernoulli_nll(&to_gpu(gpu, &logits), &to_gpu(gpu, &targets), grad_scale)
            .unwrap();
        let what = format!("bernoulli_nll {shape:?}");
        assert_nll_close(&what, gpu, (&nll_gpu, &dl_gpu), (&nll_cpu, &dl_cpu));
    }
}

fn assert_f64_close(what: &str, got: f64, want: f64) {
    let err = if want == 0.0 {
        got.abs()
    } else {
        ((got - want) / want).abs()
    };
    assert!(
        err <= F64_REL_TOL,
        "{what}: {got:e} vs {want:e} (relative error {err:.3e} > {F64_REL_TOL:.0e})"
    );
}

/// The global norm's reduction over many tensors (one partials buffer, one finish, one
/// download) against the CPU's per-tensor f64 sums: empty tensors among them, one past the
/// 1024-block cap of a tensor's partials, and exactly one host synchronisation.
pub fn check_sum_squares_all<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let sizes = [0usize, 1, 1000, 0, 4099, 270_000, 7];
    let pairs: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pair(gpu, &[n], 200 + i as u64, 3.0))
        .collect();
    let want: f64 = pairs.iter().map(|(c, _)| cpu.sum_squares(c).unwrap()).sum();
    let gs: Vec<_> = pairs.iter().map(|(_, g)| g).collect();
    let before = gpu.host_syncs();
    let got = gpu.sum_squares_all(&gs).unwrap();
    assert_eq!(gpu.host_syncs() - before, 1, "one download for all tensors");
    assert_f64_close("sum_squares_all", got, want);
    // Against the sum of the one-tensor reductions too (the same kernel arithmetic).
    let each: f64 = gs.iter().map(|g| gpu.sum_squares(g).unwrap()).sum();
    assert_f64_close("sum_squares_all vs sum_squares", got, each);
    // No tensors, or only empty ones: zero, no launch needed.
    assert_eq!(gpu.sum_squares_all(&[]).unwrap(), 0.0);
    assert_eq!(gpu.sum_squares_all(&[gs[0], gs[3]]).unwrap(), 0.0);
}

pub fn check_sums<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    // Lengths 0, 1, odd; 270_000 is more than the 1024 blocks x 256 threads of the first pass,
    // so the grid-stride loop and the cap on the partials are exercised.
    for (s, &n) in [0usize, 1, 1000, 4099, 270_000].iter().enumerate() {
        // Values around 1000 with small noise: an f32 accumulation would be off by ~1e-4
        // relative, far outside the tolerance.
        let data: Vec<f32> = random(90 + s as u64, n, 1.0)
            .iter()
            .map(|v| 1000.0 + v)
            .collect();
        let x = cpu_tensor(&[n], &data);
        let xg = to_gpu(gpu, &x);
        let what = format!("n = {n}");
        assert_f64_close(
            &format!("sum {what}"),
            gpu.sum(&xg).unwrap(),
            cpu.sum(&x).unwrap(),
        );
        assert_f64_close(
            &format!("sum_squares {what}"),
            gpu.sum_squares(&xg).unwrap(),
            cpu.sum_squares(&x).unwrap(),
        );
        // Zero-mean data: the sum cancels, sum_squares does not.
        let (zc, zg) = pair(gpu, &[n], 100 + s as u64, 5.0);
        assert_f64_close(
            &format!("sum_squares zero-mean {what}"),
            gpu.sum_squares(&zg).unwrap(),
            cpu.sum_squares(&zc).unwrap(),
        );
        let (got, want) = (gpu.sum(&zg).unwrap(), cpu.sum(&zc).unwrap());
        // Relative to the sum of |x| (the scale of the rounding), not to the cancelled sum.
        let scale: f64 = zc.data.iter().map(|v| v.abs() as f64).sum::<f64>().max(1.0);
        assert!(
            (got - want).abs() / scale <= F64_REL_TOL,
            "sum zero-mean {what}: {got:e} vs {want:e}"
        );
    }
    // A 4-D tensor sums over every element.
    let (c, g) = pair(gpu, &[2, 3, 5, 7], 110, 1.0);
    assert_f64_close("sum 4-D", gpu.sum(&g).unwrap(), cpu.sum(&c).unwrap());
}

fn positive(seed: u64, len: usize) -> Vec<f32> {
    random(seed, len, 1.0)
        .iter()
        .map(|v| v * v + 1e-3)
        .collect()
}

pub fn check_rmsprop_update<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let step = RmsPropStep {
        lr: 1e-2,
        decay: 0.95,
        eps: 1e-8,
    };
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let seed = 120 + 10 * s as u64;
        let (mut p_cpu, mut p_gpu) = pair(gpu, shape, seed, 1.0);
        let mut ms_cpu = cpu_tensor(shape, &positive(seed + 1, n));
        let mut ms_gpu = to_gpu(gpu, &ms_cpu);
        let (p0, ms0) = (p_gpu.clone(), ms_gpu.clone());
        let (p0_host, ms0_host) = (p_cpu.data.clone(), ms_cpu.data.clone());
        // Three steps with fresh gradients: the statistics carry over.
        for k in 0..3 {
            let (g_cpu, g_gpu) = pair(gpu, shape, seed + 2 + k, 0.5);
            cpu.rmsprop_update(&mut p_cpu, &g_cpu, &mut ms_cpu, step)
                .unwrap();
            gpu.rmsprop_update(&mut p_gpu, &g_gpu, &mut ms_gpu, step)
                .unwrap();
        }
        let what = format!("rmsprop_update {shape:?}");
        assert_close(&format!("{what} param"), gpu, &p_gpu, &p_cpu, FP32_REL_TOL);
        assert_close(&format!("{what} ms"), gpu, &ms_gpu, &ms_cpu, FP32_REL_TOL);
        assert_eq!(download(gpu, &p0), p0_host, "{what}: param clone changed");
        assert_eq!(download(gpu, &ms0), ms0_host, "{what}: ms clone changed");
    }
}

pub fn check_adam_update<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let seed = 170 + 10 * s as u64;
        let (mut p_cpu, mut p_gpu) = pair(gpu, shape, seed, 1.0);
        let (mut m_cpu, mut m_gpu) = pair(gpu, shape, seed + 1, 0.1);
        let mut v_cpu = cpu_tensor(shape, &positive(seed + 2, n));
        let mut v_gpu = to_gpu(gpu, &v_cpu);
        let snapshots = [p_gpu.clone(), m_gpu.clone(), v_gpu.clone()];
        let hosts = [p_cpu.data.clone(), m_cpu.data.clone(), v_cpu.data.clone()];
        let (beta1, beta2) = (0.9f32, 0.999f32);
        for t in 1..=3 {
            let step = AdamStep {
                lr: 1e-3,
                beta1,
                beta2,
                eps: 1e-8,
                bias_correction1: 1.0 - beta1.powi(t),
                bias_correction2: 1.0 - beta2.powi(t),
            };
            let (g_cpu, g_gpu) = pair(gpu, shape, seed + 3 + t as u64, 0.5);
            cpu.adam_update(&mut p_cpu, &g_cpu, &mut m_cpu, &mut v_cpu, step)
                .unwrap();
            gpu.adam_update(&mut p_gpu, &g_gpu, &mut m_gpu, &mut v_gpu, step)
                .unwrap();
        }
        let what = format!("adam_update {shape:?}");
        assert_close(&format!("{what} param"), gpu, &p_gpu, &p_cpu, FP32_REL_TOL);
        assert_close(&format!("{what} m"), gpu, &m_gpu, &m_cpu, FP32_REL_TOL);
        assert_close(&format!("{what} v"), gpu, &v_gpu, &v_cpu, FP32_REL_TOL);
        for (snap, host) in snapshots.iter().zip(&hosts) {
            assert_eq!(&download(gpu, snap), host, "{what}: a clone changed");
        }
    }
}

pub fn check_position<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (s, &[n, h, w, f]) in [[1, 1, 1, 1], [3, 5, 7, 11], [2, 4, 3, 300]]
        .iter()
        .enumerate()
    {
        let shape = [n, h, w, f];
        let (mut x_cpu, mut x_gpu) = pair(gpu, &shape, 230 + s as u64, 1.0);
        for (i, j) in [(0, 0), (h - 1, w - 1), (h / 2, w / 3)] {
            let what = format!("{shape:?} at ({i}, {j})");
            let want = cpu.read_position(&x_cpu, i, j).unwrap();
            let got = gpu.read_position(&x_gpu, i, j).unwrap();
            assert_close(&format!("read_position {what}"), gpu, &got, &want, EXACT);

            let (v_cpu, v_gpu) = pair(gpu, &[n, f], 240 + (i * w + j) as u64, 1.0);
            let snapshot = x_gpu.clone();
            let before = x_cpu.data.clone();
            cpu.write_position(&mut x_cpu, i, j, &v_cpu).unwrap();
            gpu.write_position(&mut x_gpu, i, j, &v_gpu).unwrap();
            assert_close(
                &format!("write_position {what}"),
                gpu,
                &x_gpu,
                &x_cpu,
                EXACT,
            );
            assert_eq!(
                download(gpu, &snapshot),
                before,
                "write_position {what}: clone changed"
            );
        }
    }
}

/// Mismatched shapes are errors (no panic, no launch).
pub fn check_shape_errors<E: Executor>(gpu: &CudaBackend<E>) {
    let a = to_gpu(gpu, &cpu_tensor(&[2, 3], &[0.0; 6]));
    let b = to_gpu(gpu, &cpu_tensor(&[3, 2], &[0.0; 6]));
    let mut m = to_gpu(gpu, &cpu_tensor(&[1, 2, 2, 3], &[0.0; 12]));
    assert!(gpu.add(&a, &b).is_err());
    assert!(gpu.relu_backward(&a, &b).is_err());
    assert!(gpu.softmax_nll(&a, &b, 1.0).is_err());
    assert!(gpu.bernoulli_nll(&a, &b, 1.0).is_err());
    assert!(gpu.sample_logits(&a, &b, false).is_err());
    assert!(gpu.sample_logits(&a, &b, true).is_err());
    let mut p = a.clone();
    let mut s = b.clone();
    let step = RmsPropStep {
        lr: 0.1,
        decay: 0.9,
        eps: 1e-8,
    };
    assert!(gpu.rmsprop_update(&mut p, &a, &mut s, step).is_err());
    assert!(gpu.read_position(&m, 2, 0).is_err());
    assert!(gpu.read_position(&a, 0, 0).is_err(), "not NHWC");
    assert!(gpu.write_position(&mut m, 0, 0, &a).is_err());
    assert!(gpu.write_position(&mut m, 0, 2, &a).is_err());
}
