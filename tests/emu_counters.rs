//! The emulator's memory counters (docs/emulator.md, "Memory counters"), tested with the
//! synthetic kernels of kernels/emu/selftest.cu whose answers are known: sectors per warp
//! request and efficiency of global loads, bank-conflict degrees of shared loads, compulsory
//! sectors per launch; that counters leave results unchanged and are off by default; and once
//! on a real kernel (masked_conv2d_bwd_weight_v1).

use pixelrnn::backend::cuda::{
    AccessOp, Arg, CudaBackend, EmuOptions, Emulator, Executor, LaunchCfg, LaunchCounters,
    MaskedConv2dWeight, MemSpace, SiteCounters, SyncCounters, Variants, COUNTERS_ENV,
};
use pixelrnn::backend::{Backend, ConvSpec, Mask};
use pixelrnn::tensor::Tensor;

/// An emulator with counters explicitly on or off (whatever PIXELRNN_EMU_COUNTERS says).
fn emu(counting: bool) -> Emulator {
    Emulator::new(EmuOptions {
        seed: 3,
        workers: 2,
        bounds_check: false,
    })
    .expect("emulator")
    .with_counters(counting)
}

fn upload(e: &Emulator, data: &[f32]) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(data.len()).expect("alloc");
    e.upload_into(&mut b, data).expect("upload");
    b
}

fn ramp(len: usize) -> Vec<f32> {
    (0..len).map(|i| i as f32).collect()
}

/// Runs selftest_count_load_v1 (y[i] = x[offset + i * stride]) on `blocks` x `threads`; returns
/// y and the launch's counters.
fn load(
    e: &Emulator,
    blocks: u32,
    threads: u32,
    stride: i32,
    offset: i32,
) -> (Vec<f32>, Vec<LaunchCounters>) {
    let n = (blocks * threads) as usize;
    let xlen = (offset as usize + (n - 1) * stride as usize + 1).next_multiple_of(32);
    let x = upload(e, &ramp(xlen));
    let y = e.alloc(n).expect("alloc");
    e.launch(
        "selftest_count_load_v1",
        &LaunchCfg::linear(blocks, threads),
        &[
            Arg::Buf(&x),
            Arg::Buf(&y),
            Arg::I32(stride),
            Arg::I32(offset),
        ],
    )
    .expect("launch");
    (e.download(&y, n).expect("download"), e.take_counters())
}

/// The one site of `space` and `op` in `c`.
fn only(c: &LaunchCounters, space: MemSpace, op: AccessOp) -> &SiteCounters {
    let sites = c.sites_of(space, op);
    assert_eq!(
        sites.len(),
        1,
        "{space:?} {op:?} sites of {}: {:#?}",
        c.kernel,
        c.sites
    );
    sites[0]
}

fn one_launch(counters: Vec<LaunchCounters>, kernel: &str) -> LaunchCounters {
    assert_eq!(counters.len(), 1, "{counters:#?}");
    let c = counters.into_iter().next().unwrap();
    assert_eq!(c.kernel, kernel);
    c
}

#[test]
fn a_coalesced_fp32_load_is_4_sectors_per_request_at_full_efficiency() {
    let e = emu(true);
    let (y, counters) = load(&e, 2, 64, 1, 0);
    assert_eq!(y, ramp(128));
    let c = one_launch(counters, "selftest_count_load_v1");
    assert_eq!((c.grid, c.block), ([2, 1, 1], [64, 1, 1]));
    for op in [AccessOp::Load, AccessOp::Store] {
        let s = only(&c, MemSpace::Global, op);
        assert_eq!(s.requests, 4, "2 blocks of 2 warps: {s:?}");
        assert_eq!(s.lane_accesses, 128);
        assert_eq!(s.access_bytes, 4);
        assert_eq!(s.bytes, 512);
        assert_eq!(s.sectors, 16);
        assert_eq!(s.sectors_per_request(), 4.0);
        assert_eq!(s.efficiency(), 1.0);
        assert_eq!(s.lanes_per_request(), 32.0);
    }
}

#[test]
fn a_stride_32_fp32_load_is_32_sectors_per_request_at_one_eighth() {
    let e = emu(true);
    let (y, counters) = load(&e, 1, 32, 32, 0);
    assert_eq!(y, (0..32).map(|i| (32 * i) as f32).collect::<Vec<_>>());
    let c = one_launch(counters, "selftest_count_load_v1");
    let s = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!((s.requests, s.sectors), (1, 32), "{s:?}");
    assert_eq!(s.efficiency(), 0.125);
    // The store of y stays coalesced.
    assert_eq!(
        only(&c, MemSpace::Global, AccessOp::Store).sectors_per_request(),
        4.0
    );
}

#[test]
fn an_offset_by_one_fp32_load_touches_5_sectors() {
    let e = emu(true);
    let (y, counters) = load(&e, 1, 32, 1, 1);
    assert_eq!(y, (1..33).map(|i| i as f32).collect::<Vec<_>>());
    let c = one_launch(counters, "selftest_count_load_v1");
    let s = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!(
        (s.requests, s.sectors, s.unique_bytes),
        (1, 5, 128),
        "{s:?}"
    );
    assert_eq!(s.efficiency(), 0.8);
}

#[test]
fn a_float4_load_is_16_sectors_per_request_at_full_efficiency() {
    let e = emu(true);
    let x = upload(&e, &ramp(4 * 64));
    let y = e.alloc(64).expect("alloc");
    e.launch(
        "selftest_count_load4_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&x), Arg::Buf(&y)],
    )
    .expect("launch");
    let want: Vec<f32> = (0..64).map(|i| (16 * i + 6) as f32).collect();
    assert_eq!(e.download(&y, 64).expect("download"), want);
    let c = one_launch(e.take_counters(), "selftest_count_load4_v1");
    let s = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!(s.access_bytes, 16, "one 16-byte access, not four: {s:?}");
    assert_eq!((s.requests, s.sectors), (2, 32));
    assert_eq!(s.sectors_per_request(), 16.0);
    assert_eq!(s.efficiency(), 1.0);
}

/// Runs selftest_count_shared_v1 (y[t] = s[(t * stride) % 1024]); checks y, returns the
/// counters of its shared load and stores.
fn shared(stride: i32, dynamic: bool) -> (SiteCounters, Vec<SiteCounters>) {
    let e = emu(true);
    let x = upload(&e, &ramp(1024));
    let y = e.alloc(32).expect("alloc");
    let mut cfg = LaunchCfg::linear(1, 32);
    if dynamic {
        cfg = cfg.with_shared(4096);
    }
    e.launch(
        "selftest_count_shared_v1",
        &cfg,
        &[
            Arg::Buf(&x),
            Arg::Buf(&y),
            Arg::I32(stride),
            Arg::I32(i32::from(dynamic)),
        ],
    )
    .expect("launch");
    let want: Vec<f32> = (0..32).map(|t| ((t * stride) % 1024) as f32).collect();
    assert_eq!(e.download(&y, 32).expect("download"), want);
    let c = one_launch(e.take_counters(), "selftest_count_shared_v1");
    let stores = c
        .sites_of(MemSpace::Shared, AccessOp::Store)
        .into_iter()
        .cloned()
        .collect();
    (only(&c, MemSpace::Shared, AccessOp::Load).clone(), stores)
}

#[test]
fn shared_memory_conflicts_are_the_words_per_bank_and_a_broadcast_is_free() {
    for dynamic in [false, true] {
        for (stride, degree, words) in [(1, 1, 32), (2, 2, 32), (32, 32, 32), (0, 1, 1)] {
            let (load, stores) = shared(stride, dynamic);
            let what = format!("stride {stride}, dynamic shared {dynamic}: {load:?}");
            assert_eq!(load.requests, 1, "{what}");
            assert_eq!(load.lane_accesses, 32, "{what}");
            assert_eq!(load.conflict_degree(), degree as f64, "{what}");
            assert_eq!(load.max_conflict, degree, "{what}");
            assert_eq!(load.unique_bytes, 4 * words, "{what}");
            assert_eq!(load.ideal_wavefronts, 1, "{what}");
            assert_eq!(load.sectors, 0, "shared accesses have no sectors: {what}");
            // The fill (s[j * 32 + t]): 32 conflict-free stores per lane.
            let requests: u64 = stores.iter().map(|s| s.requests).sum();
            assert_eq!(requests, 32, "{stores:?}");
            assert!(
                stores.iter().all(|s| s.conflict_degree() == 1.0),
                "{stores:?}"
            );
        }
    }
}

#[test]
fn compulsory_sectors_are_the_distinct_sectors_of_the_launch() {
    let e = emu(true);
    // 2 blocks of 32 threads (on 2 workers) read x[0, 2, ..., 126] and write y[0..64).
    let (_, counters) = load(&e, 2, 32, 2, 0);
    let c = one_launch(counters, "selftest_count_load_v1");
    assert_eq!((c.sectors_read, c.sectors_written), (16, 8), "{c:#?}");
    assert_eq!(c.compulsory_bytes(), 24 * 32);
    let s = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!((s.requests, s.sectors, s.efficiency()), (2, 16, 0.5));

    // The shared kernel reads all 1024 floats of x (128 sectors) and writes 32 of y (4),
    // whatever its shared stride.
    let e = emu(true);
    let x = upload(&e, &ramp(1024));
    let y = e.alloc(32).expect("alloc");
    for _ in 0..3 {
        e.launch(
            "selftest_count_shared_v1",
            &LaunchCfg::linear(1, 32),
            &[Arg::Buf(&x), Arg::Buf(&y), Arg::I32(2), Arg::I32(0)],
        )
        .expect("launch");
    }
    let all = e.take_counters();
    assert_eq!(all.len(), 3, "one record per launch");
    assert_eq!(
        all.iter().map(|c| c.launch).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for c in &all {
        assert_eq!((c.sectors_read, c.sectors_written), (128, 4), "{c:#?}");
    }
    assert!(e.take_counters().is_empty(), "taking empties the record");
}

#[test]
fn sites_are_numbered_by_address_and_located_in_the_binary() {
    let e = emu(true);
    let (_, counters) = load(&e, 1, 32, 1, 0);
    let c = one_launch(counters, "selftest_count_load_v1");
    assert_eq!(c.sites.len(), 2, "{c:#?}");
    for (i, s) in c.sites.iter().enumerate() {
        assert_eq!(s.index, i);
        assert!(s.module_offset > 0 && s.module_offset <= s.pc, "{s:?}");
    }
    assert!(c.sites[0].pc < c.sites[1].pc);
    // The same kernel again: the same sites.
    let (_, again) = load(&e, 1, 32, 1, 0);
    let pcs = |c: &LaunchCounters| c.sites.iter().map(|s| s.pc).collect::<Vec<_>>();
    assert_eq!(pcs(&again[0]), pcs(&c));
}

#[test]
fn atomics_stay_atomic_under_counters() {
    let e = emu(true);
    let acc = upload(&e, &[0.0]);
    let count = upload(&e, &[0.0]);
    e.launch(
        "selftest_count_atomic_v1",
        &LaunchCfg::linear(8, 128),
        &[Arg::Buf(&acc), Arg::Buf(&count)],
    )
    .expect("launch");
    assert_eq!(e.download(&acc, 1).expect("download"), vec![1024.0]);
    let bits = e.download(&count, 1).expect("download")[0].to_bits();
    assert_eq!(bits, 1024, "integer atomicAdd on the same buffer");
    let c = one_launch(e.take_counters(), "selftest_count_atomic_v1");
    let atomics = c.sites_of(MemSpace::Global, AccessOp::Atomic);
    let lanes: u64 = atomics.iter().map(|s| s.lane_accesses).sum();
    assert!(
        lanes >= 2048,
        "two atomics per thread at least: {atomics:?}"
    );
    assert_eq!((c.sectors_read, c.sectors_written), (2, 2), "{c:#?}");
}

#[test]
fn counters_are_off_by_default_and_change_no_result() {
    // Off: no records, the normal build; on: the same results from the counted build.
    let off = emu(false);
    assert!(!off.counters_enabled());
    assert!(!off.name().contains("counters"), "{}", off.name());
    let on = emu(true);
    assert!(on.name().contains("memory counters"), "{}", on.name());
    for (stride, offset) in [(1, 0), (3, 1), (32, 0)] {
        let (y_off, c_off) = load(&off, 2, 64, stride, offset);
        let (y_on, c_on) = load(&on, 2, 64, stride, offset);
        assert_eq!(y_off, y_on);
        assert!(c_off.is_empty(), "{c_off:#?}");
        assert_eq!(c_on.len(), 1);
    }
    // A real kernel: the block reduction of the conv's bias gradient, identical bits.
    let grads = |e: Emulator| {
        let gpu = CudaBackend::new(e);
        let r = conv_backward(&gpu);
        (r, gpu.executor().take_counters().len())
    };
    let (off_grads, off_records) = grads(emu(false));
    let (on_grads, on_records) = grads(emu(true));
    assert_eq!(off_grads, on_grads);
    assert_eq!(off_records, 0);
    assert!(on_records >= 2, "{on_records}");
    // Toggling on a live emulator.
    on.set_counters(false);
    let (_, none) = load(&on, 1, 32, 1, 0);
    assert!(none.is_empty());
}

#[test]
fn the_environment_turns_counters_on() {
    // Every other test sets its emulator's counters explicitly, so this cannot disturb them.
    std::env::set_var(COUNTERS_ENV, "1");
    let on = Emulator::new(EmuOptions::default()).expect("emulator");
    std::env::set_var(COUNTERS_ENV, "0");
    let off = Emulator::new(EmuOptions::default()).expect("emulator");
    std::env::remove_var(COUNTERS_ENV);
    assert!(on.counters_enabled());
    assert!(!off.counters_enabled());
}

/// x, w, dy of a small masked convolution: n 2, 8 x 8, cin 8, cout 8, 3 x 3, mask B.
fn conv_backward(gpu: &CudaBackend<Emulator>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (n, h, w, cin, cout) = (2, 8, 8, 8, 8);
    let spec = ConvSpec::new(3, 3, Mask::B, 1, cin, cout);
    let vals = |len: usize, seed: usize| -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 7 + seed) % 13) as f32 - 6.0) / 8.0)
            .collect()
    };
    let x = Tensor::from_slice(gpu, &[n, h, w, cin], &vals(n * h * w * cin, 1)).expect("x");
    let wt = Tensor::from_slice(gpu, &[cout, cin, 3, 3], &vals(cout * cin * 9, 2)).expect("w");
    let dy = Tensor::from_slice(gpu, &[n, h, w, cout], &vals(n * h * w * cout, 3)).expect("dy");
    let g = gpu
        .masked_conv2d_backward(&x, &wt, &dy, &spec, true)
        .expect("backward");
    (
        g.dx.expect("dx").to_vec(gpu).expect("dx"),
        g.dw.to_vec(gpu).expect("dw"),
        g.db.to_vec(gpu).expect("db"),
    )
}

#[test]
fn masked_conv2d_bwd_weight_v1_reads_one_value_per_sector() {
    // Issue 16's prediction: its lanes read x[q * cin + i] (and dy[p * cout + o]) at a stride
    // of cin (cout) floats, so each 32-byte sector serves one 4-byte value.
    let gpu = CudaBackend::new(emu(true));
    // v1 is no longer the default weight gradient (v2 is: tests/cuda/conv_counters.rs measures it).
    let _v1 = gpu.select(Variants {
        masked_conv2d_weight: MaskedConv2dWeight::V1,
        ..Variants::default()
    });
    conv_backward(&gpu);
    let records = gpu.executor().take_counters();
    let weight: Vec<&LaunchCounters> = records
        .iter()
        .filter(|c| c.kernel == "masked_conv2d_bwd_weight_v1")
        .collect();
    assert_eq!(weight.len(), 1, "one launch: {records:#?}");
    let c = weight[0];
    for s in &c.sites {
        println!(
            "{} site {} (+{:#x}): {:?} {:?} {} B, {} requests, {:.2} lanes/request, {:.2} \
             sectors/request, efficiency {:.3}, conflict {:.2}",
            c.kernel,
            s.index,
            s.module_offset,
            s.space,
            s.op,
            s.access_bytes,
            s.requests,
            s.lanes_per_request(),
            s.sectors_per_request(),
            s.efficiency(),
            s.conflict_degree()
        );
    }
    println!(
        "{}: {} blocks, compulsory {} sectors read, {} written",
        c.kernel, c.grid[0], c.sectors_read, c.sectors_written
    );
    let loads = c.sites_of(MemSpace::Global, AccessOp::Load);
    assert_eq!(loads.len(), 2, "the x and dy loads: {loads:#?}");
    for s in loads {
        assert_eq!(s.access_bytes, 4);
        assert_eq!(s.sectors, s.lane_accesses, "one sector per lane: {s:?}");
        assert_eq!(s.efficiency(), 0.125, "{s:?}");
    }
}

/// Block sampling (`Emulator::set_block_sample`): only the sampled blocks run (the others'
/// outputs stay unwritten), and the counts are scaled to the whole grid, exactly so for a
/// kernel whose blocks all do the same work; compulsory sectors are extrapolated buffer by
/// buffer and capped at the buffer's size.
#[test]
fn block_sampling_runs_a_spread_sample_and_scales_the_counts() {
    let (blocks, threads) = (64u32, 128u32);
    let full_e = emu(true);
    let (full_y, full) = load(&full_e, blocks, threads, 1, 0);
    let full = one_launch(full, "selftest_count_load_v1");
    assert_eq!((full.blocks, full.blocks_run), (64, 64));

    let e = emu(true);
    e.set_block_sample(Some(4));
    assert_eq!(e.block_sample(), Some(4));
    let (y, sampled) = load(&e, blocks, threads, 1, 0);
    let sampled = one_launch(sampled, "selftest_count_load_v1");
    assert_eq!((sampled.blocks, sampled.blocks_run), (64, 4));
    // Scaled counts equal the full grid's: every block does the same.
    let (f, s) = (
        only(&full, MemSpace::Global, AccessOp::Load),
        only(&sampled, MemSpace::Global, AccessOp::Load),
    );
    assert_eq!(
        (s.requests, s.sectors, s.bytes),
        (f.requests, f.sectors, f.bytes)
    );
    assert_eq!(s.requests, 64 * 4);
    assert_eq!(sampled.sectors_read, full.sectors_read);
    assert_eq!(sampled.sectors_written, full.sectors_written);
    assert_eq!(full.sectors_read, 64 * 128 * 4 / 32);
    // Blocks 15, 31, 47 and 63 ran (evenly spread: block b runs when floor((b+1)*4/64) steps
    // up); the rest wrote nothing (the buffer was zeroed at allocation under sampling).
    let ran: Vec<usize> = (0..64)
        .filter(|b| y[b * 128..(b + 1) * 128] == full_y[b * 128..(b + 1) * 128])
        .collect();
    assert_eq!(ran, vec![15, 31, 47, 63]);
    assert!(y
        .iter()
        .enumerate()
        .all(|(i, &v)| ran.contains(&(i / 128)) || v == 0.0));

    // Every block reading the same word: the extrapolation is capped at the buffer.
    let (_, bcast) = load(&e, blocks, threads, 0, 0);
    let bcast = one_launch(bcast, "selftest_count_load_v1");
    assert!(
        bcast.sectors_read <= 4,
        "one 32-float buffer has 4 sectors: {}",
        bcast.sectors_read
    );

    // Without counters the sample does not apply: every block runs.
    e.set_counters(false);
    let (y, none) = load(&e, blocks, threads, 1, 0);
    assert!(none.is_empty());
    assert_eq!(y, full_y);
}

/// Runs selftest_cp_async_v1 on one block of 64 threads with every copy in range; checks what
/// the block read back and returns the launch's counters.
fn cp_async(mode: i32) -> LaunchCounters {
    let e = emu(true);
    let x = upload(&e, &ramp(256));
    let out = e.alloc(256).expect("alloc");
    let n = if mode == 3 { 256 } else { 64 };
    e.launch(
        "selftest_cp_async_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&x), Arg::Buf(&out), Arg::I32(n), Arg::I32(mode)],
    )
    .expect("launch");
    let got = e.download(&out, if mode == 3 { 256 } else { 64 }).unwrap();
    let want: Vec<f32> = if mode == 3 {
        (0..256).map(|i| ((i + 4) % 256) as f32).collect()
    } else {
        (0..64).map(|t| ((t + 1) % 64) as f32).collect()
    };
    assert_eq!(got, want, "mode {mode}");
    one_launch(e.take_counters(), "selftest_cp_async_v1")
}

/// An asynchronous copy is counted where it is issued: its global read as a load of the copy's
/// width (coalesced here: 4 or 16 sectors per warp request), its shared destination as a store;
/// the landing at the wait is not an access of the kernel.
#[test]
fn an_async_copy_counts_its_global_read_and_shared_write_at_the_issue() {
    let c = cp_async(0);
    let load = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!((load.requests, load.access_bytes), (2, 4), "{load:?}");
    assert_eq!((load.sectors_per_request(), load.efficiency()), (4.0, 1.0));
    let store = only(&c, MemSpace::Shared, AccessOp::Store);
    assert_eq!((store.requests, store.lane_accesses), (2, 64), "{store:?}");
    assert_eq!(store.conflict_degree(), 1.0, "{store:?}");
    // The read of the neighbour's landed value: one request per warp, conflict-free.
    let read = only(&c, MemSpace::Shared, AccessOp::Load);
    assert_eq!(
        (read.requests, read.conflict_degree()),
        (2, 1.0),
        "{read:?}"
    );
    assert_eq!((c.sectors_read, c.sectors_written), (8, 8), "{c:#?}");

    let c = cp_async(3);
    let load = only(&c, MemSpace::Global, AccessOp::Load);
    assert_eq!((load.requests, load.access_bytes), (2, 16), "{load:?}");
    assert_eq!((load.sectors_per_request(), load.efficiency()), (16.0, 1.0));
    let store = only(&c, MemSpace::Shared, AccessOp::Store);
    assert_eq!((store.requests, store.access_bytes), (2, 16), "{store:?}");
    // 512 bytes a warp: 4 wavefronts, the fewest (a 16-byte store is conflict-free when it
    // takes no more wavefronts than its bytes need).
    assert_eq!(
        (store.wavefronts, store.ideal_wavefronts),
        (8, 8),
        "{store:?}"
    );
}

/// Runs selftest_count_rounds_v1 in `mode` on 3 blocks of 64 threads, 8 values per thread;
/// returns the global load sites of the launch.
fn rounds(mode: i32) -> Vec<SiteCounters> {
    let e = emu(true);
    let (blocks, threads, n) = (3u32, 64u32, 8usize);
    let total = (blocks * threads) as usize;
    let x = upload(&e, &ramp(n * total));
    let y = e.alloc(total).expect("alloc");
    e.launch(
        "selftest_count_rounds_v1",
        &LaunchCfg::linear(blocks, threads),
        &[
            Arg::Buf(&x),
            Arg::Buf(&y),
            Arg::I32(n as i32),
            Arg::I32(mode),
        ],
    )
    .expect("launch");
    let got = e.download(&y, total).expect("download");
    for (i, v) in got.iter().enumerate() {
        let want: f32 = (0..n).map(|k| (k * total + i) as f32).sum();
        assert_eq!(*v, want, "y[{i}], mode {mode}");
    }
    let c = one_launch(e.take_counters(), "selftest_count_rounds_v1");
    c.sites_of(MemSpace::Global, AccessOp::Load)
        .into_iter()
        .cloned()
        .collect()
}

/// A warp's load rounds: one site in a loop is a round per iteration (8 per thread: 6 warps x
/// 8), four sites of an unrolled iteration share a round (6 x 2, charged to the iteration's
/// first load), and a barrier does not merge the rounds before it (6 x 8 again); stores have
/// none. The latency model of `pixelrnn profile` is built on this count.
#[test]
fn load_rounds_count_a_loop_per_iteration_and_an_unrolled_body_once() {
    let rolled = rounds(0);
    assert_eq!(rolled.len(), 1, "{rolled:#?}");
    assert_eq!(rolled[0].requests, 6 * 8);
    assert_eq!(rolled[0].rounds, 6 * 8);

    let unrolled = rounds(1);
    assert_eq!(unrolled.len(), 4, "{unrolled:#?}");
    assert!(
        unrolled.iter().all(|s| s.requests == 6 * 2),
        "{unrolled:#?}"
    );
    assert_eq!(unrolled.iter().map(|s| s.rounds).sum::<u64>(), 6 * 2);
    assert_eq!(unrolled.iter().filter(|s| s.rounds > 0).count(), 1);

    let barriers = rounds(2);
    assert_eq!(barriers.len(), 1, "{barriers:#?}");
    assert_eq!(barriers[0].rounds, 6 * 8);

    let (_, counters) = load(&emu(true), 2, 64, 1, 0);
    let store = counters[0].sites_of(MemSpace::Global, AccessOp::Store);
    assert!(store.iter().all(|s| s.rounds == 0), "{store:#?}");
}

/// What selftest_count_sync_v1 leaves in y: its exchanges simulated lane by lane (each
/// shuffle reads the values from before it).
fn count_sync_twin(blocks: usize, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..96).map(|t| (t % 32) as f32).collect();
    for _ in 0..n {
        v = (0..96).map(|t| v[t ^ 1]).collect();
        for x in &mut v[32..64] {
            *x += 4.0; // the ballot of lanes 0-3
        }
        let before = v.clone();
        for lane in 0..16 {
            let src = if lane + 1 < 16 { lane + 1 } else { lane };
            v[64 + lane] = before[64 + lane] + before[64 + src];
        }
    }
    v.iter().copied().cycle().take(96 * blocks).collect()
}

/// Barriers and warp operations (docs/emulator.md, "Barriers and warp operations"):
/// selftest_count_sync_v1's 3 barriers and 5 warp operations per block and iteration (a warp
/// counts the most of its lanes, not their sum; __syncwarp is not counted), scaled back to the
/// grid under block sampling; a cluster launch's cluster.sync() counts as a cluster barrier of
/// every warp, and none without it.
#[test]
fn sync_counts_take_each_warps_most_and_leave_syncwarp_out() {
    let e = emu(true);
    let (blocks, n) = (6u32, 5i32);
    let y = e.alloc(96 * blocks as usize).expect("alloc");
    let run = |e: &Emulator| {
        e.launch(
            "selftest_count_sync_v1",
            &LaunchCfg::linear(blocks, 96),
            &[Arg::Buf(&y), Arg::I32(n)],
        )
        .expect("launch");
        one_launch(e.take_counters(), "selftest_count_sync_v1").sync
    };
    let per_block = |k: u64| k * u64::from(blocks) * n as u64;
    let want = SyncCounters {
        barriers: per_block(3),
        cluster_barriers: 0,
        warp_ops: per_block(5),
    };
    assert_eq!(run(&e), want);
    let got = e.download(&y, 96 * blocks as usize).expect("download");
    assert_eq!(got, count_sync_twin(blocks as usize, n as usize));
    e.set_block_sample(Some(2));
    assert_eq!(run(&e), want);
    e.set_block_sample(None);

    let (clusters, size, threads, rounds) = (2u32, 4u32, 64u32, 3i32);
    let blocks = clusters * size;
    let len = (blocks * threads) as usize;
    for sync in [true, false] {
        let buf = upload(&e, &vec![0.0; 2 * len]);
        let out = e.alloc(len).expect("alloc");
        e.launch(
            "selftest_cluster_exchange_v1",
            &LaunchCfg::linear(blocks, threads).with_cluster(size),
            &[
                Arg::Buf(&buf),
                Arg::Buf(&out),
                Arg::I32(rounds),
                Arg::I32(i32::from(sync)),
            ],
        )
        .expect("launch");
        let c = one_launch(e.take_counters(), "selftest_cluster_exchange_v1");
        let warps = u64::from(blocks * threads / 32);
        let want = SyncCounters {
            barriers: 0,
            cluster_barriers: if sync { warps * rounds as u64 } else { 0 },
            warp_ops: 0,
        };
        assert_eq!(c.sync, want, "sync {sync}");
    }
}
