// pixelrnn: arch compute_90
// diag_lstm_skewed_persistent_v7.cu: the Diagonal LSTM's persistent v7 recurrence,
// materialised layout (fp32 only, as v2's to v6's), forward and backward. CPU twin:
// src/backend/cpu/lstm.rs; host side: src/backend/cuda/lstm_persistent.rs.
// Versions:
//   fwd v7 (diag_lstm_skewed_persistent_fwd_v7): v6's forward with both taps' chunks staged
//     between one pair of barriers, the exchange in a buffer of its own;
//     kernels/lstm_persistent_fwd_v5.cuh, kernels/row_lstm_persistent_v7.cu.
//   bwd v7 (diag_lstm_skewed_persistent_bwd_v7): v6's backward with chunks of 512 gate rows
//     staged 16 loads at a time; kernels/lstm_persistent_bwd_v5.cuh.
// Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_bwd_v5.cuh"
#include "lstm_persistent_fwd_v5.cuh"

// Launch of the forward: as row_lstm_persistent_fwd_v7's (kernels/row_lstm_persistent_v7.cu): 256
// threads, clusters of C = ceil(h / 32) * G <= 8 blocks (16-position tiles), dynamic shared memory
// >= (32 * 4h + 2048) * 2 + 2048 floats. h and c are not __restrict__ (read by other blocks next
// step).
//
// Diagonal LSTM forward over the skewed maps (row stride `skewed`).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
diag_lstm_skewed_persistent_fwd_v7(const float* __restrict__ is, const float* __restrict__ w,
                                   float* h, float* c, float* __restrict__ gates, int n,
                                   int height, int width, int hidden, int skewed) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_FP32, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, skewed, 1);
}

// Launch of the backward (every kernel below): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_BWD_V6_THREADS (256), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G
// >= 1 position groups of 16-position tiles: v2's launch), dynamic shared memory >= 32 * 4h * taps
// floats (opted in; with the 32 KiB static staging tile). The maps written in one step and read by
// other blocks in the next (d_is, dc_carry) are not __restrict__: their loads must not take the
// read-only (non-coherent) path. dc_carry zeroed by the host.
//
// Diagonal LSTM backward over the skewed maps (row stride `skewed`).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
diag_lstm_skewed_persistent_bwd_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int skewed) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_FP32, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, skewed, 1);
}
