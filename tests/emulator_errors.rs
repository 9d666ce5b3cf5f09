//! The CPU emulator of the CUDA execution model, what it reports as errors rather than
//! wrong results or hangs: out-of-bounds writes and reads (with thread and index), deadlocked
//! barriers, launch limits and traps, argument mismatches.

mod common;

use pixelrnn::backend::cuda::{Arg, EmuOptions, Emulator, Executor, LaunchCfg};

use common::emu::{device_message, emu, zeros};

#[test]
fn out_of_bounds_write_is_reported_with_thread_and_index() {
    let e = emu(1, true);
    let x = zeros(&e, 40);
    let msg = device_message(e.launch(
        "selftest_oob_write_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&x), Arg::I32(40)],
    ));
    assert!(msg.contains("selftest_oob_write_v1"), "{msg}");
    assert!(
        msg.contains("out-of-bounds write to buffer #0 (`x`, 40 floats)"),
        "{msg}"
    );
    assert!(msg.contains("at index 40"), "{msg}");
    assert!(msg.contains("thread (40, 0, 0)"), "{msg}");
    assert!(msg.contains("block (0, 0, 0)"), "{msg}");
    // Many blocks on several host threads: the fault may happen on a helper thread.
    let many = Emulator::new(EmuOptions {
        seed: 5,
        workers: 4,
        bounds_check: true,
    })
    .unwrap();
    let y = zeros(&many, 40);
    for _ in 0..3 {
        let msg = device_message(many.launch(
            "selftest_oob_write_v1",
            &LaunchCfg::linear(16, 64),
            &[Arg::Buf(&y), Arg::I32(40)],
        ));
        assert!(msg.contains("at index 40 by block ("), "{msg}");
        assert!(msg.contains("thread (40, 0, 0)"), "{msg}");
    }
    // The emulator stays usable after a fault.
    let ok = zeros(&e, 41);
    e.launch(
        "selftest_oob_write_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&ok), Arg::I32(40)],
    )
    .expect("in bounds");
    assert_eq!(e.download(&ok, 41).unwrap(), vec![1.0; 41]);
}

#[test]
fn out_of_bounds_read_is_reported_with_thread_and_index() {
    let e = emu(2, true);
    let x = zeros(&e, 100);
    let y = zeros(&e, 100);
    let msg = device_message(e.launch(
        "selftest_oob_read_v1",
        &LaunchCfg::linear(1, 128),
        &[Arg::Buf(&x), Arg::Buf(&y), Arg::I32(100)],
    ));
    assert!(
        msg.contains("out-of-bounds read of buffer #0 (`x`, 100 floats)"),
        "{msg}"
    );
    assert!(msg.contains("at index 100"), "{msg}");
    assert!(msg.contains("thread (99, 0, 0)"), "{msg}");
}

#[test]
fn a_deadlocked_barrier_is_an_error_not_a_hang() {
    let e = emu(0, false);
    let x = zeros(&e, 64);
    let msg = device_message(e.launch(
        "selftest_deadlock_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&x)],
    ));
    assert!(msg.contains("deadlock at __syncthreads"), "{msg}");
    assert!(msg.contains("32 of 64 threads exited"), "{msg}");

    let msg = device_message(e.launch(
        "selftest_warp_exit_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&x)],
    ));
    assert!(
        msg.contains("deadlock") && msg.contains("__shfl_xor_sync"),
        "{msg}"
    );
}

#[test]
fn launch_limits_and_traps_are_errors() {
    let e = emu(0, false);
    let x = zeros(&e, 1024);
    let msg = device_message(e.launch(
        "selftest_bounded_v1",
        &LaunchCfg::linear(1, 128),
        &[Arg::Buf(&x)],
    ));
    assert!(msg.contains("__launch_bounds__(64)"), "{msg}");
    e.launch(
        "selftest_bounded_v1",
        &LaunchCfg::linear(1, 64),
        &[Arg::Buf(&x)],
    )
    .expect("64 threads are within the bounds");

    let msg = device_message(e.launch(
        "selftest_trap_v1",
        &LaunchCfg::linear(2, 32),
        &[Arg::Buf(&x), Arg::I32(1)],
    ));
    assert!(msg.contains("__trap()"), "{msg}");
    let msg = device_message(e.launch(
        "selftest_trap_v1",
        &LaunchCfg::linear(2, 32),
        &[Arg::Buf(&x), Arg::I32(2)],
    ));
    assert!(msg.contains("assert(flag != 2) failed"), "{msg}");
    assert!(msg.contains("thread ("), "{msg}");
    e.launch(
        "selftest_trap_v1",
        &LaunchCfg::linear(2, 32),
        &[Arg::Buf(&x), Arg::I32(0)],
    )
    .expect("no trap");

    // cp.async's 16-byte copy from a source 4 bytes off its alignment (fine for a plain load
    // on the host; refused by the hardware).
    let out = zeros(&e, 4 * 32);
    let msg = device_message(e.launch(
        "selftest_cp_async_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&x), Arg::Buf(&out), Arg::I32(32), Arg::I32(4)],
    ));
    assert!(
        msg.contains("cp.async: the global source is misaligned"),
        "{msg}"
    );

    let msg = device_message(e.launch(
        "selftest_block_sum_v1",
        &LaunchCfg::linear(1, 2048),
        &[Arg::Buf(&x), Arg::Buf(&x)],
    ));
    assert!(msg.contains("invalid block"), "{msg}");
}

#[test]
fn argument_mismatches_are_rejected() {
    let e = emu(0, false);
    let x = zeros(&e, 16);
    // n is a long long (pixelrnn_index_t): an i32 is refused, naming the parameter.
    let msg = device_message(e.launch(
        "fill_fwd_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&x), Arg::I32(16), Arg::F32(1.0)],
    ));
    assert!(
        msg.contains("fill_fwd_v1") && msg.contains("`long long n`"),
        "{msg}"
    );
    let msg = device_message(e.launch(
        "fill_fwd_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::Buf(&x), Arg::I64(16)],
    ));
    assert!(msg.contains("takes 3 arguments"), "{msg}");
    let msg = device_message(e.launch(
        "fill_fwd_v1",
        &LaunchCfg::linear(1, 32),
        &[Arg::F32(0.0), Arg::I64(16), Arg::F32(1.0)],
    ));
    assert!(msg.contains("`float* x`"), "{msg}");
    let msg = device_message(e.launch("no_such_kernel_v1", &LaunchCfg::linear(1, 32), &[]));
    assert!(msg.contains("no such kernel"), "{msg}");
}
