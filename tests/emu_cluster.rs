//! The emulator's thread-block clusters and the dynamic shared-memory opt-in
//! (kernels/emu/runtime/grid.cpp, c_api.cpp; docs/emulator.md, "Thread-block clusters"),
//! tested with the self-test kernels of kernels/emu/selftest.cu: a cluster barrier orders the
//! blocks of a cluster, the same kernel without it is caught under every seed, ranks and
//! shapes are the hardware's, a block that exits while the others wait is a deadlock error,
//! invalid cluster shapes and more than 48 KiB of shared memory (dynamic, or static plus
//! dynamic) without the opt-in are refused.

use pixelrnn::backend::cuda::{
    Arg, EmuOptions, Emulator, Executor, LaunchCfg, DEFAULT_SHARED_BYTES, MAX_SHARED_BYTES,
};
use pixelrnn::error::Error;

fn emu(seed: u64, workers: usize) -> Emulator {
    Emulator::new(EmuOptions {
        seed,
        workers,
        bounds_check: true,
    })
    .expect("emulator")
}

fn zeros(e: &Emulator, len: usize) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(len).expect("alloc");
    e.memset_zero(&mut b, len).expect("memset");
    b
}

fn device_message(r: pixelrnn::error::Result<()>) -> String {
    match r {
        Err(Error::Device(m)) => m,
        Err(e) => panic!("expected a device error, got {e}"),
        Ok(()) => panic!("expected an error, the launch succeeded"),
    }
}

/// `selftest_cluster_exchange_v1` on `clusters` clusters of `size` blocks of `threads`
/// threads, `rounds` rounds, with or without its barrier; returns `out`.
fn exchange(
    e: &Emulator,
    clusters: u32,
    size: u32,
    threads: u32,
    rounds: i32,
    sync: bool,
) -> Vec<f32> {
    let blocks = clusters * size;
    let len = (blocks * threads) as usize;
    let buf = zeros(e, 2 * len);
    let out = zeros(e, len);
    let cfg = LaunchCfg::linear(blocks, threads).with_cluster(size);
    e.launch(
        "selftest_cluster_exchange_v1",
        &cfg,
        &[
            Arg::Buf(&buf),
            Arg::Buf(&out),
            Arg::I32(rounds),
            Arg::I32(i32::from(sync)),
        ],
    )
    .expect("launch");
    e.download(&out, len).expect("download")
}

/// What every thread of the exchange computes: the sum over rounds s and ranks q of
/// (q + 1) * 100 + s + t (small integers: exact in any order).
fn exchange_want(clusters: u32, size: u32, threads: u32, rounds: i32) -> Vec<f32> {
    let mut want = Vec::new();
    for _ in 0..clusters * size {
        for t in 0..threads as i64 {
            let mut acc = 0i64;
            for s in 0..rounds as i64 {
                for q in 0..size as i64 {
                    acc += (q + 1) * 100 + s + t;
                }
            }
            want.push(acc as f32);
        }
    }
    want
}

#[test]
fn a_cluster_barrier_orders_the_blocks_of_a_cluster() {
    // Several seeds and worker counts (fewer workers than a cluster's blocks still run it:
    // a cluster takes one host thread per block), clusters of 2, 4 and 8.
    for (size, clusters) in [(2u32, 3u32), (4, 2), (8, 2)] {
        let want = exchange_want(clusters, size, 64, 5);
        for seed in 0..3 {
            for workers in [1usize, 2, 16] {
                let got = exchange(&emu(seed, workers), clusters, size, 64, 5, true);
                assert_eq!(
                    got, want,
                    "cluster of {size}, seed {seed}, {workers} workers"
                );
            }
        }
    }
}

#[test]
fn the_same_kernel_without_its_barrier_is_caught_under_every_seed() {
    // The block that runs first in a phase reads its peers' slots before they wrote them:
    // whatever the seed, some result is wrong, and a seed gives the same wrong result on
    // every run.
    let (clusters, size, threads, rounds) = (2u32, 4u32, 32u32, 3i32);
    let want = exchange_want(clusters, size, threads, rounds);
    for seed in 0..8 {
        let e = emu(seed, 2);
        let got = exchange(&e, clusters, size, threads, rounds, false);
        assert_ne!(got, want, "seed {seed}: the race went unnoticed");
        let again = exchange(&e, clusters, size, threads, rounds, false);
        assert_eq!(
            got, again,
            "seed {seed}: a racy result changed between runs"
        );
    }
}

#[test]
fn cluster_ranks_and_shapes_are_those_of_the_hardware() {
    let e = emu(1, 2);
    // A 4 x 2 x 1 grid in clusters of 2 x 2 x 1: rank = x + 2 y inside the cluster.
    let out = zeros(&e, 3 * 8);
    let cfg = LaunchCfg {
        grid: [4, 2, 1],
        block: [1, 1, 1],
        shared_bytes: 0,
        cluster: [2, 2, 1],
        flops: 0,
    };
    e.launch("selftest_cluster_rank_v1", &cfg, &[Arg::Buf(&out)])
        .expect("launch");
    let got = e.download(&out, 3 * 8).expect("download");
    for by in 0..2usize {
        for bx in 0..4usize {
            let b = by * 4 + bx;
            let rank = (bx % 2) + 2 * (by % 2);
            assert_eq!(
                &got[3 * b..3 * b + 3],
                &[rank as f32, 4.0, 20201.0],
                "block ({bx}, {by})"
            );
        }
    }
    // Without clusters a block is a cluster of one.
    e.launch(
        "selftest_cluster_rank_v1",
        &LaunchCfg::linear(3, 1),
        &[Arg::Buf(&out)],
    )
    .expect("launch");
    let got = e.download(&out, 9).expect("download");
    assert_eq!(got, [0.0, 1.0, 10101.0].repeat(3));
    // And its barrier is the block's: the exchange of one block is exact.
    assert_eq!(exchange(&e, 3, 1, 32, 2, true), exchange_want(3, 1, 32, 2));
}

#[test]
fn a_block_exiting_while_its_cluster_waits_is_a_deadlock_error() {
    for seed in 0..3 {
        let e = emu(seed, 2);
        let out = zeros(&e, 8);
        let msg = device_message(e.launch(
            "selftest_cluster_exit_v1",
            &LaunchCfg::linear(8, 32).with_cluster(4),
            &[Arg::Buf(&out)],
        ));
        assert!(msg.contains("deadlock at the cluster barrier"), "{msg}");
        // The emulator stays usable.
        assert_eq!(exchange(&e, 1, 4, 32, 2, true), exchange_want(1, 4, 32, 2));
    }
}

#[test]
fn invalid_cluster_shapes_are_refused() {
    let e = emu(0, 2);
    let out = zeros(&e, 64);
    let args = [Arg::Buf(&out)];
    let msg = device_message(e.launch(
        "selftest_cluster_rank_v1",
        &LaunchCfg::linear(6, 1).with_cluster(4),
        &args,
    ));
    assert!(msg.contains("invalid cluster (4, 1, 1)"), "{msg}");
    let msg = device_message(e.launch(
        "selftest_cluster_rank_v1",
        &LaunchCfg::linear(16, 1).with_cluster(16),
        &args,
    ));
    assert!(msg.contains("exceeds the portable 8"), "{msg}");
}

/// The shared-memory reversal self-tests' buffers (`selftest_dynamic_shared_v1`,
/// `selftest_static_and_dynamic_shared_v1`): `blocks * threads` floats `0, 1, ...` uploaded
/// as the input, a zeroed output, and what the kernels write there (each block's slice of
/// `threads` reversed).
fn reversal(
    e: &Emulator,
    blocks: u32,
    threads: u32,
) -> (
    <Emulator as Executor>::Buffer,
    <Emulator as Executor>::Buffer,
    Vec<f32>,
) {
    let x: Vec<f32> = (0..blocks * threads).map(|i| i as f32).collect();
    let mut xb = e.alloc(x.len()).expect("alloc");
    e.upload_into(&mut xb, &x).expect("upload");
    let want = x
        .chunks(threads as usize)
        .flat_map(|c| c.iter().rev().copied())
        .collect();
    (xb, zeros(e, x.len()), want)
}

#[test]
fn more_than_48_kib_of_dynamic_shared_memory_needs_the_opt_in() {
    let e = emu(0, 2);
    let (blocks, threads) = (2u32, 64u32);
    let (xb, out, want) = reversal(&e, blocks, threads);
    let args = [Arg::Buf(&xb), Arg::Buf(&out)];
    let kernel = "selftest_dynamic_shared_v1";
    let big = DEFAULT_SHARED_BYTES + 4096;
    let cfg = LaunchCfg::linear(blocks, threads).with_shared(big);
    // Exactly 48 KiB needs nothing; one byte more is refused, as on the hardware.
    e.launch(
        kernel,
        &LaunchCfg::linear(blocks, threads).with_shared(DEFAULT_SHARED_BYTES),
        &args,
    )
    .expect("48 KiB without the opt-in");
    let msg = device_message(e.launch(kernel, &cfg, &args));
    assert!(msg.contains("without opting in"), "{msg}");
    assert!(
        msg.contains("CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES"),
        "{msg}"
    );
    // Opting in to less than the launch asks for is not enough either.
    e.opt_in_shared(kernel, big - 4).expect("opt in");
    let msg = device_message(e.launch(kernel, &cfg, &args));
    assert!(msg.contains("exceed the"), "{msg}");
    e.opt_in_shared(kernel, big).expect("opt in");
    e.launch(kernel, &cfg, &args).expect("after the opt-in");
    assert_eq!(e.download(&out, want.len()).unwrap(), want);
    // The opt-in is per kernel and per executor, and capped at the device's 227 KiB.
    let msg = device_message(emu(0, 2).launch(kernel, &cfg, &args));
    assert!(msg.contains("without opting in"), "{msg}");
    let msg = device_message(e.opt_in_shared(kernel, MAX_SHARED_BYTES + 1));
    assert!(msg.contains("cannot opt in"), "{msg}");
}

#[test]
fn static_and_dynamic_shared_memory_share_the_48_kib() {
    // The kernel declares 16 KiB of static shared memory: without the opt-in, 32 KiB of
    // dynamic is the most it may launch with, as on an H200 (where 16.1 KiB static + 32.1 KiB
    // dynamic failed with CUDA_ERROR_INVALID_VALUE: docs/benchmarks.md, 2026-12-04).
    let e = emu(0, 2);
    let (blocks, threads) = (2u32, 64u32);
    let (xb, out, want) = reversal(&e, blocks, threads);
    let args = [Arg::Buf(&xb), Arg::Buf(&out)];
    let kernel = "selftest_static_and_dynamic_shared_v1";
    let static_bytes = 4096 * 4;
    let fits = DEFAULT_SHARED_BYTES - static_bytes;
    let cfg = |bytes| LaunchCfg::linear(blocks, threads).with_shared(bytes);
    e.launch(kernel, &cfg(fits), &args)
        .expect("static + dynamic = 48 KiB without the opt-in");
    assert_eq!(e.download(&out, want.len()).unwrap(), want);
    let msg = device_message(e.launch(kernel, &cfg(fits + 4), &args));
    assert!(
        msg.contains("32772 bytes of dynamic and 16384 of static"),
        "{msg}"
    );
    assert!(msg.contains("without opting in"), "{msg}");
    // Opted in to what it launches with, below 48 KiB, it runs.
    e.opt_in_shared(kernel, fits + 4).expect("opt in");
    e.launch(kernel, &cfg(fits + 4), &args)
        .expect("after the opt-in");
    // Opted in to more than the 227 KiB leave beside the static part, it does not.
    e.opt_in_shared(kernel, MAX_SHARED_BYTES - static_bytes + 4)
        .expect("opt in");
    let msg = device_message(e.launch(kernel, &cfg(fits), &args));
    assert!(msg.contains("and 16384 of static exceed"), "{msg}");
}

#[test]
fn block_sampling_runs_and_scales_whole_clusters() {
    // With counters and a sample of 1, one whole cluster of 4 runs (a block cannot run without
    // its cluster) and the counts are scaled by the grid's 12 blocks over the 4 that ran.
    let e = emu(2, 2).with_counters(true);
    e.set_block_sample(Some(1));
    let (blocks, threads) = (12u32, 32u32);
    let buf = zeros(&e, 2 * (blocks * threads) as usize);
    let out = zeros(&e, (blocks * threads) as usize);
    e.launch(
        "selftest_cluster_exchange_v1",
        &LaunchCfg::linear(blocks, threads).with_cluster(4),
        &[Arg::Buf(&buf), Arg::Buf(&out), Arg::I32(1), Arg::I32(1)],
    )
    .expect("launch");
    let c = e.take_counters().pop().expect("counters");
    assert_eq!((c.blocks, c.blocks_run), (12, 4));
    // Every lane of the 4 blocks that ran stored once into `out`: 4 x 32 lanes, scaled by 3.
    let stores: u64 = c
        .sites
        .iter()
        .filter(|s| s.op == pixelrnn::backend::cuda::AccessOp::Store)
        .map(|s| s.lane_accesses)
        .sum();
    assert_eq!(
        stores,
        3 * 2 * 4 * 32,
        "the buf and out stores, scaled to the grid"
    );
}
