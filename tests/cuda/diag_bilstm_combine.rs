//! The fused output write of a Diagonal BiLSTM layer (`diag_bilstm_combine`, one kernel)
//! against the CPU's composition of mirror, shift and add, forward and backward. Pure data
//! movement plus one add: the results must be equal bit for bit.

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::cuda::{CudaBackend, Executor};
use pixelrnn::backend::Backend;

use crate::{assert_close, pair};

pub fn check_diag_bilstm_combine<E: Executor>(gpu: &CudaBackend<E>) {
    let cpu = CpuBackend::new();
    for (i, shape) in [
        [2, 5, 7, 3],
        [1, 7, 4, 8],
        [3, 1, 5, 2],
        [1, 4, 1, 1],
        [2, 6, 6, 5],
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 10 * i as u64;
        let (left_c, left_g) = pair(gpu, &shape, seed, 1.0);
        let (right_c, right_g) = pair(gpu, &shape, seed + 1, 1.0);
        let want = cpu.diag_bilstm_combine(&left_c, &right_c).unwrap();
        let got = gpu.diag_bilstm_combine(&left_g, &right_g).unwrap();
        assert_close(&format!("combine {shape:?}"), gpu, &got, &want, 0.0);

        let (dh_c, dh_g) = pair(gpu, &shape, seed + 2, 1.0);
        let want = cpu.diag_bilstm_combine_backward(&dh_c).unwrap();
        let got = gpu.diag_bilstm_combine_backward(&dh_g).unwrap();
        assert_close(
            &format!("combine backward {shape:?}"),
            gpu,
            &got,
            &want,
            0.0,
        );
    }
    let (_, l) = pair(gpu, &[1, 2, 3, 4], 0, 1.0);
    let (_, r) = pair(gpu, &[1, 3, 2, 4], 1, 1.0);
    assert!(
        gpu.diag_bilstm_combine(&l, &r).is_err(),
        "shape mismatch must be an error"
    );
}

crate::parity_tests! {
    diag_bilstm_combine => super::check_diag_bilstm_combine,
}
