//! One geometry for both backends (`backend::geometry`): the CUDA backend rejects what the CPU
//! backend rejects, with the same error, and the invalid-target contract of the losses is the
//! CPU's (an error, not a NaN loss) through the `loss_targets` kernel
//! (kernels/loss_targets.cu), checked here against its CPU twin.

use pixelrnn::backend::cpu::loss_targets::any_invalid;
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{arg, Arg, CudaBackend, Executor, LaunchCfg, BLOCK};
use pixelrnn::backend::geometry::Targets;
use pixelrnn::backend::{Backend, ConvSpec, LstmState, Mask, Recurrence};
use pixelrnn::error::Result;
use pixelrnn::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::{cpu_tensor, to_gpu};

crate::parity_tests! {
    loss_targets_check => super::check_loss_targets_kernel,
    invalid_targets_error => super::check_invalid_targets_error,
    deferred_target_check => super::check_deferred_target_check,
    shape_errors_match_cpu => super::check_shape_errors_match_cpu,
}

/// Values no loss admits, and the edge values that some admit.
const INVALID: [f32; 7] = [
    -1.0,
    256.0,
    2.5,
    f32::NAN,
    f32::INFINITY,
    -f32::INFINITY,
    1e9,
];

/// Random valid targets of `kind`.
fn valid_targets(rng: &mut Pcg64, n: usize, kind: Targets) -> Vec<f32> {
    let levels = kind.max() as u32 + 1;
    (0..n).map(|_| rng.random_range(0..levels) as f32).collect()
}

type G<E> = Tensor<CudaBackend<E>>;

/// `softmax_nll_fwd_bwd_v1` launched by itself, without the op's target check: what the
/// kernel computes for any target (NaN in the nll and dlogits of an invalid one).
pub fn softmax_nll_unchecked<E: Executor>(
    gpu: &CudaBackend<E>,
    logits: &G<E>,
    targets: &G<E>,
    grad_scale: f32,
) -> Result<(G<E>, G<E>)> {
    let channels = *targets.shape.last().expect("targets [.., c]");
    let positions = targets.numel() / channels;
    let nll = gpu.tensor_uninit(&targets.shape)?;
    let dlogits = gpu.tensor_uninit(&logits.shape)?;
    // One warp per (position, channel), BLOCK / 32 warps per block.
    let blocks = (positions * channels).div_ceil(BLOCK as usize / 32) as u32;
    gpu.launch(
        "softmax_nll_fwd_bwd_v1",
        &LaunchCfg::linear(blocks, BLOCK),
        &[
            arg(logits),
            arg(targets),
            arg(&nll),
            arg(&dlogits),
            Arg::I32(positions as i32),
            Arg::I32(channels as i32),
            Arg::F32(grad_scale),
        ],
    )?;
    Ok((nll, dlogits))
}

/// The flag of `loss_targets_check_v1` over `targets` (1 when some target is invalid).
fn kernel_flag<E: Executor>(gpu: &CudaBackend<E>, targets: &[f32], kind: Targets) -> bool {
    let t = to_gpu(gpu, &cpu_tensor(&[targets.len()], targets));
    let flag = gpu.tensor_zeroed(&[1]).expect("flag");
    gpu.launch(
        "loss_targets_check_v1",
        &LaunchCfg::for_elements(targets.len(), BLOCK, 65_535),
        &[
            arg(&t),
            arg(&flag),
            Arg::I64(targets.len() as i64),
            Arg::F32(kind.max()),
        ],
    )
    .expect("launch loss_targets_check_v1");
    match flag.to_vec(gpu).expect("download").as_slice() {
        [0.0] => false,
        [1.0] => true,
        w => panic!("flag {w:?}"),
    }
}

/// The kernel's flag equals its CPU twin's answer, for valid targets (the edges 0, -0 and the
/// largest value included) and for one invalid value at the front, in the middle or in the
/// last partial block, over sizes of one element, a partial block and several blocks.
pub fn check_loss_targets_kernel<E: Executor>(gpu: &CudaBackend<E>) {
    for kind in [Targets::Levels, Targets::Binary] {
        for (s, n) in [1usize, 300, 4099].into_iter().enumerate() {
            let mut rng = Pcg64::seed_from_u64(900 + s as u64);
            let mut valid = valid_targets(&mut rng, n, kind);
            valid[0] = -0.0;
            valid[n - 1] = kind.max();
            assert!(!any_invalid(&valid, kind));
            assert!(!kernel_flag(gpu, &valid, kind), "{kind:?} n = {n}: valid");
            let extra = if kind == Targets::Binary { 0.5 } else { 255.5 };
            for bad in INVALID.into_iter().chain([extra]) {
                for at in [0, n / 2, n - 1] {
                    let mut t = valid.clone();
                    t[at] = bad;
                    let want = any_invalid(&t, kind);
                    assert!(want, "{kind:?}: {bad} is invalid");
                    assert_eq!(
                        kernel_flag(gpu, &t, kind),
                        want,
                        "{kind:?} n = {n}: target {bad} at {at}"
                    );
                }
            }
        }
    }
}

/// `softmax_nll` and `bernoulli_nll` with an invalid target give the CPU's error, word for
/// word (on CUDA at the loss's sum); with valid targets they still return the loss.
pub fn check_invalid_targets_error<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(950);
    for kind in [Targets::Levels, Targets::Binary] {
        let (positions, c) = (5, 3);
        let per = kind.logits_per_target();
        let logits: Vec<f32> = (0..positions * c * per)
            .map(|_| rng.random_range(-3.0..3.0))
            .collect();
        let logits = cpu_tensor(&[positions, per * c], &logits);
        let valid = valid_targets(&mut rng, positions * c, kind);
        let loss = |be_gpu: bool, t: &[f32]| -> Result<()> {
            let targets = cpu_tensor(&[positions, c], t);
            match (be_gpu, kind) {
                (false, Targets::Levels) => cpu.softmax_nll(&logits, &targets, 1.0).map(|_| ()),
                (false, Targets::Binary) => cpu.bernoulli_nll(&logits, &targets, 1.0).map(|_| ()),
                // CUDA reports the check at the loss's sum (cuda/loss_targets.rs): the one
                // download carries the total and the flag.
                (true, Targets::Levels) => gpu
                    .softmax_nll(&to_gpu(gpu, &logits), &to_gpu(gpu, &targets), 1.0)
                    .and_then(|(nll, _)| gpu.sum(&nll))
                    .map(|_| ()),
                (true, Targets::Binary) => gpu
                    .bernoulli_nll(&to_gpu(gpu, &logits), &to_gpu(gpu, &targets), 1.0)
                    .and_then(|(nll, _)| gpu.sum(&nll))
                    .map(|_| ()),
            }
        };
        loss(false, &valid).expect("cpu, valid targets");
        loss(true, &valid).expect("gpu, valid targets");
        for (i, bad) in INVALID.into_iter().enumerate() {
            let mut t = valid.clone();
            t[(3 * i + 1) % valid.len()] = bad;
            let want = loss(false, &t).expect_err("cpu rejects").to_string();
            let got = loss(true, &t).expect_err("gpu rejects").to_string();
            assert_eq!(got, want, "{kind:?}, target {bad}");
            let op = match kind {
                Targets::Levels => "softmax_nll",
                Targets::Binary => "bernoulli_nll",
            };
            assert_eq!(got, kind.invalid(op).to_string());
        }
    }
}

/// The deferred check (cuda/loss_targets.rs): a loss and its sum cost one host
/// synchronisation, valid or not; an invalid target not yet read fails the next download of
/// anything (here the gradient), or the next loss launched before it is read, with the loss's
/// message; a read check is not reported twice.
pub fn check_deferred_target_check<E: Executor>(gpu: &CudaBackend<E>) {
    let mut rng = Pcg64::seed_from_u64(951);
    let (positions, c) = (4, 3);
    let logits: Vec<f32> = (0..positions * c * 256)
        .map(|_| rng.random_range(-3.0..3.0))
        .collect();
    let logits = to_gpu(gpu, &cpu_tensor(&[positions, 256 * c], &logits));
    let valid = valid_targets(&mut rng, positions * c, Targets::Levels);
    let mut invalid = valid.clone();
    invalid[5] = 300.0;
    let targets = |t: &[f32]| to_gpu(gpu, &cpu_tensor(&[positions, c], t));
    let message = Targets::Levels.invalid("softmax_nll").to_string();

    for t in [&valid, &invalid] {
        let before = gpu.host_syncs();
        let (nll, _) = gpu.softmax_nll(&logits, &targets(t), 1.0).unwrap();
        let total = gpu.sum(&nll);
        assert_eq!(
            gpu.host_syncs() - before,
            1,
            "a loss and its sum: one download"
        );
        assert_eq!(total.is_err(), t == &invalid);
    }

    let (_, dlogits) = gpu.softmax_nll(&logits, &targets(&invalid), 1.0).unwrap();
    let err = dlogits
        .to_vec(gpu)
        .expect_err("the next download reports it");
    assert_eq!(err.to_string(), message);
    dlogits.to_vec(gpu).expect("reported once");

    gpu.softmax_nll(&logits, &targets(&invalid), 1.0).unwrap();
    let binary: Vec<f32> = valid.iter().map(|v| (*v as u32 % 2) as f32).collect();
    let small: Vec<f32> = (0..positions * c).map(|i| i as f32 / 7.0 - 0.5).collect();
    let small = to_gpu(gpu, &cpu_tensor(&[positions, c], &small));
    let err = gpu
        .bernoulli_nll(&small, &targets(&binary), 1.0)
        .expect_err("a loss launched while one is pending reads it first");
    assert_eq!(err.to_string(), message);
    let (nll, _) = gpu.bernoulli_nll(&small, &targets(&binary), 1.0).unwrap();
    gpu.sum(&nll).expect("valid binary targets");
}

/// Every op's shape errors, on operands that do not fit together, are the CPU's, word for
/// word: both backends run the same check.
pub fn check_shape_errors_match_cpu<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    let c = |shape: &[usize]| Tensor::zeros(&cpu, shape).unwrap();
    let g = |shape: &[usize]| Tensor::zeros(gpu, shape).unwrap();
    let spec = ConvSpec::new(3, 3, Mask::B, 3, 3, 5);
    let rec = Recurrence::Fused;
    let mut cases: Vec<(&str, String, String)> = Vec::new();
    let mut case = |what: &'static str, cpu: Result<()>, gpu: Result<()>| {
        let text = |r: Result<()>| r.err().map_or("no error".into(), |e| e.to_string());
        cases.push((what, text(cpu), text(gpu)));
    };
    macro_rules! both {
        ($what:expr, |$be:ident, $t:ident| $call:expr) => {{
            let cpu_result = {
                let $be = &cpu;
                let $t = &c;
                $call.map(|_| ())
            };
            let gpu_result = {
                let $be = gpu;
                let $t = &g;
                $call.map(|_| ())
            };
            case($what, cpu_result, gpu_result);
        }};
    }
    both!("conv: weight in-features", |be, t| be
        .masked_conv2d_forward(
            &t(&[1, 4, 4, 3]),
            &t(&[5, 2, 3, 3]),
            &t(&[5]),
            &spec
        ));
    both!("conv: bias", |be, t| be.masked_conv2d_forward(
        &t(&[1, 4, 4, 3]),
        &t(&[5, 3, 3, 3]),
        &t(&[4]),
        &spec
    ));
    both!("conv: dy", |be, t| be.masked_conv2d_backward(
        &t(&[1, 4, 4, 3]),
        &t(&[5, 3, 3, 3]),
        &t(&[1, 4, 3, 5]),
        &spec,
        true
    ));
    both!("conv: 3-d input", |be, t| be.masked_conv2d_forward(
        &t(&[4, 4, 3]),
        &t(&[5, 3, 3, 3]),
        &t(&[5]),
        &spec
    ));
    both!("pack: kernel size", |be, t| be
        .masked_conv2d_pack(&t(&[5, 3, 2, 3]), &spec));
    both!("forward_at: position", |be, t| be.masked_conv2d_forward_at(
        &t(&[1, 4, 4, 3]),
        &t(&[spec.taps().len() * 3, 5]),
        &t(&[5]),
        &spec,
        4,
        0
    ));
    both!("forward_at: packed weight", |be, t| be
        .masked_conv2d_forward_at(
            &t(&[1, 4, 4, 3]),
            &t(&[9, 5]),
            &t(&[5]),
            &spec,
            1,
            1
        ));
    both!("transpose: odd k - stride", |be, t| be
        .conv_transpose2d_forward(
            &t(&[1, 2, 2, 1]),
            &t(&[1, 3, 3, 3]),
            &t(&[3]),
            2
        ));
    both!("transpose: dy", |be, t| be.conv_transpose2d_backward(
        &t(&[1, 2, 2, 1]),
        &t(&[1, 3, 6, 6]),
        &t(&[1, 4, 3, 3]),
        2,
        true
    ));
    both!("row lstm: even k", |be, t| be.row_lstm_forward(
        &t(&[1, 3, 4, 8]),
        &t(&[8, 2, 1, 2]),
        rec
    ));
    both!("diag lstm: features not 4h", |be, t| be.diag_lstm_forward(
        &t(&[1, 3, 4, 6]),
        &t(&[8, 2, 2, 1]),
        rec
    ));
    both!("diag lstm: dh", |be, t| {
        let state = LstmState {
            h: t(&[1, 3, 4, 2]),
            c: t(&[1, 3, 4, 2]),
            gates: t(&[1, 3, 4, 8]),
        };
        be.diag_lstm_backward(&state, &t(&[8, 2, 2, 1]), &t(&[1, 3, 4, 3]), rec)
    });
    both!("row lstm at: position", |be, t| be.row_lstm_forward_at(
        &t(&[1, 8]),
        &t(&[8, 2, 1, 3]),
        &mut t(&[1, 3, 4, 2]),
        &mut t(&[1, 3, 4, 2]),
        3,
        0
    ));
    both!("diag lstm at: pre-activations", |be, t| be
        .diag_lstm_forward_at(
            &t(&[1, 4]),
            &t(&[8, 2, 2, 1]),
            &mut t(&[1, 3, 4, 2]),
            &mut t(&[1, 3, 4, 2]),
            0,
            0
        ));
    both!("softmax_nll: logits per target", |be, t| be.softmax_nll(
        &t(&[2, 255]),
        &t(&[2, 1]),
        1.0
    ));
    both!("bernoulli_nll: leading dims", |be, t| be.bernoulli_nll(
        &t(&[4, 1]),
        &t(&[5, 1]),
        1.0
    ));
    both!("sample_logits: channels", |be, t| be.sample_logits(
        &t(&[2, 256]),
        &t(&[2, 3]),
        false
    ));
    both!("read_position: outside", |be, t| be.read_position(
        &t(&[1, 2, 2, 3]),
        2,
        0
    ));
    both!("write_position: values", |be, t| be.write_position(
        &mut t(&[1, 2, 2, 3]),
        0,
        0,
        &t(&[1, 2])
    ));
    both!("skew: width 0", |be, t| be.skew(&t(&[1, 3, 0, 2])));
    both!("unskew: no image's width", |be, t| be
        .unskew(&t(&[1, 3, 6, 2])));
    for (what, cpu_err, gpu_err) in &cases {
        assert_ne!(cpu_err, "no error", "{what}: the CPU accepted it");
        assert_eq!(gpu_err, cpu_err, "{what}");
    }
}
