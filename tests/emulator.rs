//! The CPU emulator of the CUDA execution model, tested with its own kernels
//! (kernels/emu/selftest.cu) and with real kernels against their CPU twins: the kernel table,
//! barriers, races, warp intrinsics, atomics, shared memory, indices, speed, half / bfloat16
//! conversions, GPU-only kernels and the documented example. What it reports as errors
//! (bounds, deadlocks, limits, arguments) is tests/emulator_errors.rs's.

mod common;

use pixelrnn::backend::cuda::{Arg, CudaBackend, EmuOptions, Emulator, Executor, LaunchCfg};
use pixelrnn::backend::Backend;
use pixelrnn::error::Error;
use pixelrnn::tensor::Tensor;

use common::emu::{block_sums, device_message, emu, ints, upload, zeros};

#[test]
fn the_table_lists_every_kernel() {
    let names = Emulator::kernels();
    for k in [
        "fill_fwd_v1",
        "softmax_nll_fwd_bwd_v1",
        "selftest_block_sum_v1",
    ] {
        assert!(names.iter().any(|n| n == k), "{k} missing from {names:?}");
    }
    for s in pixelrnn::kernels::signatures() {
        assert_eq!(
            names.iter().any(|n| n == s.name),
            s.emulated,
            "{}: the emulator's table and the signature table disagree",
            s.name
        );
    }
}

#[test]
fn block_reduction_with_barriers_is_exact() {
    for (block, blocks) in [(256usize, 7usize), (1024, 2), (32, 5), (2, 3)] {
        let x = ints(block * blocks, 3);
        let want = block_sums(&x, block);
        for seed in [0, 1, 2, 0x5eed] {
            let e = emu(seed, true);
            let xb = upload(&e, &x);
            let out = zeros(&e, blocks);
            e.launch(
                "selftest_block_sum_v1",
                &LaunchCfg::linear(blocks as u32, block as u32),
                &[Arg::Buf(&xb), Arg::Buf(&out)],
            )
            .expect("launch");
            assert_eq!(
                e.download(&out, blocks).unwrap(),
                want,
                "block {block}, seed {seed}"
            );
        }
    }
}

#[test]
fn a_missing_barrier_changes_results_between_seeds() {
    let (block, blocks) = (256usize, 4usize);
    let x = ints(block * blocks, 11);
    let want = block_sums(&x, block);
    let mut results = Vec::new();
    for seed in 0..6u64 {
        let e = emu(seed, false);
        let xb = upload(&e, &x);
        let out = zeros(&e, blocks);
        e.launch(
            "selftest_block_sum_racy_v1",
            &LaunchCfg::linear(blocks as u32, block as u32),
            &[Arg::Buf(&xb), Arg::Buf(&out)],
        )
        .expect("launch");
        results.push(e.download(&out, blocks).unwrap());
    }
    assert!(
        results.iter().any(|r| *r != want),
        "the racy reduction gave the exact sums under every seed: the race went unnoticed"
    );
    assert!(
        results.iter().any(|r| *r != results[0]),
        "the racy reduction gave the same results under every seed"
    );
}

#[test]
fn warp_intrinsics_are_exact() {
    let (block, blocks) = (128usize, 3usize);
    let n = block * blocks;
    // Warp 1 of each block all positive (for __all_sync), the others mixed.
    let mut x: Vec<f32> = ints(n, 5);
    for b in 0..blocks {
        for l in 0..32 {
            x[b * block + 32 + l] = (l % 5 + 1) as f32;
        }
    }
    let e = emu(9, true);
    let xb = upload(&e, &x);
    let out = zeros(&e, 8 * n);
    let flags = zeros(&e, 4 * n / 32);
    e.launch(
        "selftest_warp_v1",
        &LaunchCfg::linear(blocks as u32, block as u32),
        &[Arg::Buf(&xb), Arg::Buf(&out), Arg::Buf(&flags)],
    )
    .expect("launch");
    let out = e.download(&out, 8 * n).unwrap();
    let flags: Vec<u32> = e
        .download(&flags, 4 * n / 32)
        .unwrap()
        .iter()
        .map(|f| f.to_bits())
        .collect();
    for w in 0..n / 32 {
        let v = &x[w * 32..w * 32 + 32];
        let sum: f32 = v.iter().sum();
        for l in 0..32 {
            let o = &out[8 * (w * 32 + l)..8 * (w * 32 + l) + 8];
            let at = |i: i64| v[i as usize];
            let l = l as i64;
            assert_eq!(o[0], sum, "xor sum, warp {w} lane {l}");
            if l == 0 {
                assert_eq!(o[1], sum, "down sum, warp {w}");
            }
            assert_eq!(
                o[2],
                v[..=l as usize].iter().sum::<f32>(),
                "scan, warp {w} lane {l}"
            );
            assert_eq!(o[3], at(5), "broadcast, warp {w} lane {l}");
            assert_eq!(o[4], at(l / 8 * 8 + 3), "width-8 broadcast, lane {l}");
            assert_eq!(o[5], at(l ^ 1), "width-2 xor, lane {l}");
            let down = if l % 8 + 4 < 8 { at(l + 4) } else { at(l) };
            assert_eq!(o[6], down, "width-8 down, lane {l}");
            let up = if l % 16 >= 2 { at(l - 2) } else { at(l) };
            assert_eq!(o[7], up, "width-16 up, lane {l}");
        }
        let ballot = v
            .iter()
            .enumerate()
            .filter(|(_, &x)| x > 0.0)
            .fold(0u32, |m, (l, _)| m | 1 << l);
        assert_eq!(flags[4 * w], ballot, "ballot, warp {w}");
        assert_eq!(flags[4 * w + 1], u32::from(ballot != 0), "any, warp {w}");
        assert_eq!(
            flags[4 * w + 2],
            u32::from(ballot == u32::MAX),
            "all, warp {w}"
        );
        let total = v.iter().fold(0u32, |a, &x| a.wrapping_add(x as i32 as u32));
        assert_eq!(flags[4 * w + 3], total, "reduce_add, warp {w}");
    }
    // The all-positive warps really tested __all_sync = 1.
    assert_eq!(flags[4 + 2], 1);
}

#[test]
fn atomics_from_many_blocks_add_up() {
    let n = 50_000usize;
    let x = ints(n, 17);
    let want: f32 = x.iter().sum();
    let e = Emulator::new(EmuOptions {
        seed: 3,
        workers: 4,
        bounds_check: false,
    })
    .unwrap();
    let xb = upload(&e, &x);
    let sum = zeros(&e, 1);
    let count = zeros(&e, 1);
    e.launch(
        "selftest_atomic_v1",
        &LaunchCfg::linear(64, 128),
        &[
            Arg::Buf(&xb),
            Arg::Buf(&sum),
            Arg::Buf(&count),
            Arg::I32(n as i32),
        ],
    )
    .expect("launch");
    assert_eq!(e.download(&sum, 1).unwrap()[0], want);
    assert_eq!(e.download(&count, 1).unwrap()[0].to_bits(), n as u32);
}

#[test]
fn dynamic_shared_memory_is_per_block() {
    let (block, blocks) = (96usize, 5usize);
    let x = ints(block * blocks, 23);
    let want: Vec<f32> = x
        .chunks(block)
        .flat_map(|c| c.iter().rev().copied())
        .collect();
    let e = emu(4, true);
    let xb = upload(&e, &x);
    let out = zeros(&e, x.len());
    e.launch(
        "selftest_dynamic_shared_v1",
        &LaunchCfg::linear(blocks as u32, block as u32).with_shared(4 * block as u32),
        &[Arg::Buf(&xb), Arg::Buf(&out)],
    )
    .expect("launch");
    assert_eq!(e.download(&out, x.len()).unwrap(), want);

    // Too little dynamic shared memory: the last thread's read runs off its end.
    let msg = device_message(e.launch(
        "selftest_dynamic_shared_v1",
        &LaunchCfg::linear(blocks as u32, block as u32).with_shared(4 * block as u32 - 4),
        &[Arg::Buf(&xb), Arg::Buf(&out)],
    ));
    assert!(msg.contains("dynamic shared memory"), "{msg}");
}

/// Runs selftest_cp_async_v1 in `mode` on one block of `block` threads with `n` valid inputs
/// (x[i] = i + 1); returns `out` (4 * block floats, zeroed first).
fn cp_async(seed: u64, mode: i32, block: usize, n: usize) -> Vec<f32> {
    let e = emu(seed, true);
    let x: Vec<f32> = (0..4 * block).map(|i| i as f32 + 1.0).collect();
    let xb = upload(&e, &x);
    let out = zeros(&e, 4 * block);
    e.launch(
        "selftest_cp_async_v1",
        &LaunchCfg::linear(1, block as u32),
        &[
            Arg::Buf(&xb),
            Arg::Buf(&out),
            Arg::I32(n as i32),
            Arg::I32(mode),
        ],
    )
    .expect("launch");
    e.download(&out, 4 * block).unwrap()
}

/// The bits of kernels/cp_async.cuh's poison (PIXELRNN_CP_ASYNC_POISON).
const CP_ASYNC_POISON: u32 = 0x7fc0_a5a5;

/// cp.async: what a wait lands, what a zero-fill writes, and what a read that no wait ordered
/// sees (the emulator's poison), under several scheduling seeds.
#[test]
fn async_copies_land_at_their_wait_and_not_before() {
    let block = 64;
    // The staged value of thread t, read by thread t - 1: x[t] = t + 1, or 0 past n.
    let staged = |t: usize, n: usize| if t < n { t as f32 + 1.0 } else { 0.0 };
    for seed in [0, 1, 7, 0x5eed] {
        // Waited for: every value, zero-filled past n.
        let n = 50;
        let out = cp_async(seed, 0, block, n);
        for (t, &v) in out.iter().enumerate().take(block) {
            assert_eq!(v, staged((t + 1) % block, n), "mode 0, seed {seed}, t {t}");
        }
        // No wait: every read sees the poison.
        let out = cp_async(seed, 1, block, n);
        assert!(
            out[..block].iter().all(|v| v.to_bits() == CP_ASYNC_POISON),
            "seed {seed}: a read before the wait saw {:?}",
            &out[..block]
        );
        // wait<1> of two groups: the older landed, the newer still in flight.
        let n = 2 * block - 10;
        let out = cp_async(seed, 2, block, n);
        for t in 0..block {
            assert_eq!(
                out[t],
                staged((t + 1) % block, n),
                "mode 2, seed {seed}, t {t}"
            );
            assert_eq!(
                out[block + t].to_bits(),
                CP_ASYNC_POISON,
                "mode 2, seed {seed}, t {t}"
            );
        }
        // 16-byte copies, zero-filled where 4t >= n.
        let n = 4 * block - 8;
        let out = cp_async(seed, 3, block, n);
        for t in 0..block {
            let u = (t + 1) % block;
            for c in 0..4 {
                let want = if 4 * u < n {
                    (4 * u + c) as f32 + 1.0
                } else {
                    0.0
                };
                assert_eq!(out[4 * t + c], want, "mode 3, seed {seed}, t {t}, c {c}");
            }
        }
    }
}

#[test]
fn three_dimensional_grids_see_their_indices() {
    let cfg = LaunchCfg {
        grid: [3, 2, 2],
        block: [4, 3, 2],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let threads = 12 * 24;
    let e = emu(6, true);
    let out = zeros(&e, 8 * threads);
    e.launch("selftest_indices_v1", &cfg, &[Arg::Buf(&out)])
        .expect("launch");
    let out = e.download(&out, 8 * threads).unwrap();
    let mut g = 0;
    for bz in 0..2 {
        for by in 0..2 {
            for bx in 0..3 {
                for tz in 0..2 {
                    for ty in 0..3 {
                        for tx in 0..4 {
                            let want = [bx, by, bz, tx, ty, tz, 40302, 30202].map(|v| v as f32);
                            assert_eq!(out[8 * g..8 * g + 8], want, "thread {g}");
                            g += 1;
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fill_and_softmax_nll_match_the_cpu_twin() {
    for seed in [1u64, 0x5eed] {
        let gpu = CudaBackend::with_options(emu(seed, true), true);
        // fill, through the backend's NaN poisoning and directly.
        let t = gpu.tensor_uninit(&[1000]).unwrap();
        assert!(t.to_vec(&gpu).unwrap().iter().all(|v| v.is_nan()));
        gpu.launch(
            "fill_fwd_v1",
            &LaunchCfg::for_elements(1000, 256, 65_535),
            &[
                pixelrnn::backend::cuda::arg(&t),
                Arg::I64(1000),
                Arg::F32(2.5),
            ],
        )
        .unwrap();
        assert_eq!(t.to_vec(&gpu).unwrap(), vec![2.5; 1000]);

        let (positions, channels) = (37usize, 3usize);
        let logits: Vec<f32> = (0..positions * 256 * channels)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let mut targets: Vec<f32> = (0..positions * channels)
            .map(|i| (i * 37 % 256) as f32)
            .collect();
        targets[4] = 255.0;
        targets[5] = 0.0;
        let mut nll = vec![0.0; positions * channels];
        let mut dlogits = vec![0.0; logits.len()];
        assert!(pixelrnn::backend::cpu::softmax_nll::softmax_nll(
            &logits,
            &targets,
            channels,
            0.5,
            &mut nll,
            &mut dlogits
        ));
        let l = Tensor::from_slice(&gpu, &[positions, 256 * channels], &logits).unwrap();
        let tg = Tensor::from_slice(&gpu, &[positions, channels], &targets).unwrap();
        let (g_nll, g_d) = gpu.softmax_nll(&l, &tg, 0.5).unwrap();
        let close = |what: &str, got: &[f32], want: &[f32]| {
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for (g, w) in got.iter().zip(want) {
                num += (*g as f64 - *w as f64).powi(2);
                den += (*w as f64).powi(2);
            }
            let err = (num / den).sqrt();
            assert!(err < 1e-5, "{what}: relative error {err:e}");
        };
        close("nll", &g_nll.to_vec(&gpu).unwrap(), &nll);
        close("dlogits", &g_d.to_vec(&gpu).unwrap(), &dlogits);
    }
}

#[test]
fn static_shared_arrays_are_distinct_per_declaration_and_template_instance() {
    for seed in [1, 2] {
        let e = emu(seed, true);
        let y = zeros(&e, 128);
        let cfg = LaunchCfg::linear(1, 32);
        e.launch("selftest_shared_instances_v1", &cfg, &[Arg::Buf(&y)])
            .unwrap();
        let got = e.download(&y, 128).unwrap();
        let want: Vec<f32> = (0..128)
            .map(|i| (100 * (i / 32) + (i % 32 + 1) % 32) as f32)
            .collect();
        assert_eq!(got, want, "seed {seed}");
    }
}

/// The emulator keeps static shared arrays out of thread-local storage, whose static part glibc
/// takes from every thread's stack: with them there (2.05 MB of it on 2026-12-03) a thread with
/// the test harness's 2 MiB stack had a few KiB left and overflowed. Here a thread with a 512 KiB
/// stack runs kernels with static shared arrays and then uses 256 KiB of its stack.
#[test]
fn static_shared_arrays_take_no_thread_stack() {
    let tls = Emulator::static_tls_bytes();
    assert!(tls < 64 << 10, "the program's static TLS is {tls} bytes");
    fn deep(n: u32) -> u64 {
        let frame = std::hint::black_box([n as u8; 1024]);
        if n == 0 {
            frame[7] as u64
        } else {
            deep(n - 1) + frame[n as usize % 1024] as u64
        }
    }
    let used = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(|| {
            let e = emu(1, false);
            let x = ints(256 * 4, 1);
            let xb = upload(&e, &x);
            let out = zeros(&e, 4);
            e.launch(
                "selftest_block_sum_v1",
                &LaunchCfg::linear(4, 256),
                &[Arg::Buf(&xb), Arg::Buf(&out)],
            )
            .unwrap();
            assert_eq!(e.download(&out, 4).unwrap(), block_sums(&x, 256));
            deep(256)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(used > 0);
    assert!(
        Emulator::static_shared_bytes() >= 4096,
        "selftest_block_sum_v1's 4 KiB array is in the arena"
    );
}

#[test]
fn a_block_of_256_threads_with_barriers_is_fast() {
    let e = emu(1, false);
    let x = ints(256 * 64, 1);
    let xb = upload(&e, &x);
    let out = zeros(&e, 64);
    let cfg = LaunchCfg::linear(64, 256);
    let args = [Arg::Buf(&xb), Arg::Buf(&out)];
    e.launch("selftest_block_sum_v1", &cfg, &args).unwrap();
    let start = std::time::Instant::now();
    let reps = 10;
    for _ in 0..reps {
        e.launch("selftest_block_sum_v1", &cfg, &args).unwrap();
    }
    let per_block = start.elapsed().as_secs_f64() / (reps * 64) as f64;
    eprintln!("256-thread block, 9 barriers: {:.1} us", per_block * 1e6);
    // Generous (CI machines are slow and shared); the design target is well under 1 ms.
    assert!(per_block < 5e-3, "{per_block} s per block");

    // Launch overhead: a tiny two-block launch (the parity suite makes thousands).
    let small = zeros(&e, 512);
    let fill = |e: &Emulator| {
        e.launch(
            "fill_fwd_v1",
            &LaunchCfg::linear(2, 256),
            &[Arg::Buf(&small), Arg::I64(512), Arg::F32(1.0)],
        )
        .unwrap()
    };
    fill(&e);
    let start = std::time::Instant::now();
    for _ in 0..200 {
        fill(&e);
    }
    let per_launch = start.elapsed().as_secs_f64() / 200.0;
    eprintln!("two-block fill launch: {:.1} us", per_launch * 1e6);
    assert!(per_launch < 5e-2, "{per_launch} s per launch");
}

#[test]
fn half_and_bfloat16_conversions_round_to_nearest_even() {
    let mut x: Vec<f32> = (0..4000)
        .map(|i| ((i as f32) * 0.731 - 1400.0) * 1.37f32.powi(i % 40 - 20))
        .collect();
    x.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e-8,
        5.96e-8,
        2.98e-8,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        3.0e38,
    ]);
    let n = x.len();
    let e = emu(0, true);
    let xb = upload(&e, &x);
    let out = zeros(&e, 2 * n);
    e.launch(
        "selftest_half_v1",
        &LaunchCfg::for_elements(n, 256, 8),
        &[Arg::Buf(&xb), Arg::Buf(&out), Arg::I32(n as i32)],
    )
    .expect("launch");
    let out = e.download(&out, 2 * n).unwrap();
    for (i, &v) in x.iter().enumerate() {
        let h = half::f16::from_f32(v).to_f32();
        let b = half::bf16::from_f32(v).to_f32();
        assert_eq!(out[2 * i].to_bits(), h.to_bits(), "half({v:e})");
        assert_eq!(out[2 * i + 1].to_bits(), b.to_bits(), "bfloat16({v:e})");
    }
}

#[test]
fn gpu_only_kernels_are_listed_but_not_emulated() {
    let sig = pixelrnn::kernels::launch_signature("selftest_gpu_only_v1").expect("listed");
    assert!(!sig.emulated);
    assert!(!Emulator::kernels()
        .iter()
        .any(|k| k == "selftest_gpu_only_v1"));
    let e = emu(0, false);
    let x = zeros(&e, 32);
    match e.launch(
        "selftest_gpu_only_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&x)],
    ) {
        Err(Error::Unsupported(m)) => assert!(m.contains("GPU-only"), "{m}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    for s in pixelrnn::kernels::selftest_signatures() {
        assert_eq!(
            Emulator::kernels().iter().any(|n| n == s.name),
            s.emulated,
            "{}",
            s.name
        );
    }
}

/// The snippet of docs/emulator.md ("Emulating one kernel by hand").
#[test]
fn the_documented_example_runs() -> pixelrnn::error::Result<()> {
    let options = EmuOptions {
        seed: 7,
        workers: 1,
        bounds_check: true,
    };
    let gpu = CudaBackend::with_options(Emulator::new(options)?, true);
    let x = Tensor::from_slice(&gpu, &[1000], &vec![1.0; 1000])?;
    let y = gpu.tensor_uninit(&[1000])?;
    gpu.launch(
        "elementwise_relu_fwd_v1",
        &LaunchCfg::for_elements(1000, 256, 65_535),
        &[
            pixelrnn::backend::cuda::arg(&x),
            pixelrnn::backend::cuda::arg(&y),
            Arg::I64(1000),
        ],
    )?;
    assert_eq!(y.to_vec(&gpu)?, vec![1.0; 1000]);
    Ok(())
}
