//! The persistent recurrence's launches (src/backend/cuda/lstm_persistent.rs,
//! kernels/lstm_persistent.cuh): at the paper's h = 128 the v2 kernels run one thread-block
//! cluster per image with the weight slices in opted-in shared memory, in at most 3 launches
//! per layer and pass (issue 17's target), as the emulator's counters record them; under the
//! default (v7) both are `<scan>_persistent_{fwd,bwd}_v7` (256 threads per block). Their
//! numbers are checked against the CPU twin in tests/cuda/lstm.rs (h = 128 included) and
//! tests/cuda/lstm_persistent_v3.rs.

use pixelrnn::backend::cuda::{CudaBackend, DiagLstm, EmuOptions, Emulator, RowLstm, Variants};
use pixelrnn::backend::{Backend, Recurrence};

use crate::pair;

/// The kernels one call launched, in order.
fn launched(gpu: &CudaBackend<Emulator>) -> Vec<(String, [u32; 3], [u32; 3], u32)> {
    gpu.executor()
        .take_counters()
        .into_iter()
        .map(|c| (c.kernel, c.grid, c.block, c.shared_bytes))
        .collect()
}

#[test]
fn persistent_is_one_launch_forward_and_three_backward_at_h_128() {
    let emu = Emulator::new(EmuOptions {
        seed: 3,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
    .with_counters(true);
    // Without NaN poisoning (its fill launches are the tests', not the op's): the launches a
    // training step makes.
    let gpu = CudaBackend::new(emu);
    let (n, height, width, hd) = (2, 2, 3, 128);
    // (op, taps, state weight shape): the Row LSTM with k = 3, the Diagonal LSTM.
    for (op, taps, w_shape) in [
        ("row_lstm", 3usize, vec![4 * hd, hd, 1, 3]),
        ("diag_lstm", 2, vec![4 * hd, hd, 2, 1]),
    ] {
        let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 5, 1.0);
        let (_, w) = pair(&gpu, &w_shape, 6, 0.05);
        let (_, dh) = pair(&gpu, &[n, height, width, hd], 7, 1.0);
        gpu.executor().take_counters();
        let rec = Recurrence::Persistent;
        let state = if op == "row_lstm" {
            gpu.row_lstm_forward(&is, &w, rec)
        } else {
            gpu.diag_lstm_forward(&is, &w, rec)
        }
        .expect("forward");
        let fwd = launched(&gpu);
        if op == "row_lstm" {
            gpu.row_lstm_backward(&state, &w, &dh, rec)
        } else {
            gpu.diag_lstm_backward(&state, &w, &dh, rec)
        }
        .expect("backward");
        let bwd = launched(&gpu);
        // 4 unit tiles of 32, one position tile per step: clusters of 4 blocks, one per image;
        // each block holds 32 units x (4h * taps + 1) floats, the forward (v7) also every
        // tap's 16 x 128 float staging tile and its 2048-float exchange buffer.
        let shared = (32 * (4 * hd * taps + 1) * 4) as u32;
        assert!(shared > 48 * 1024, "{op}: the slice needs the opt-in");
        let fwd_shared = shared + ((taps + 1) * 16 * 128 * 4) as u32;
        assert_eq!(
            fwd,
            [(
                format!("{op}_persistent_fwd_v7"),
                [4 * n as u32, 1, 1],
                [256, 1, 1],
                fwd_shared
            )],
            "{op} forward"
        );
        let names: Vec<&str> = bwd.iter().map(|(k, _, _, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                format!("{op}_persistent_bwd_v7").as_str(),
                "lstm_ss_bwd_weight_v3",
                "lstm_ss_bwd_weight_sum_v2"
            ],
            "{op} backward"
        );
        assert_eq!(bwd[0].1, [4 * n as u32, 1, 1], "{op} backward grid");
        assert_eq!(
            bwd[0].2,
            [256, 1, 1],
            "{op} backward block (v7: v2's tiles, 8 warps)"
        );
        assert_eq!(bwd[0].3, shared, "{op} backward shared memory");
    }

    // v1 stays selectable: one block per image, the weights from global memory at h = 128.
    let _v1 = gpu.select(Variants {
        row_lstm: RowLstm::V1,
        diag_lstm: DiagLstm::V1,
        ..Variants::default()
    });
    let (_, is) = pair(&gpu, &[n, height, width, 4 * hd], 8, 1.0);
    let (_, w) = pair(&gpu, &[4 * hd, hd, 1, 3], 9, 0.05);
    gpu.row_lstm_forward(&is, &w, Recurrence::Persistent)
        .expect("forward v1");
    assert_eq!(
        launched(&gpu),
        [(
            "row_lstm_persistent_fwd_v1".to_string(),
            [n as u32, 1, 1],
            [3 * 128, 1, 1],
            0
        )]
    );
}
