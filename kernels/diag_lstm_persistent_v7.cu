// pixelrnn: arch compute_90
// diag_lstm_persistent_v7.cu: the Diagonal LSTM's persistent v7 recurrence, skew folded,
// forward and backward. CPU twin: src/backend/cpu/lstm.rs; host side:
// src/backend/cuda/lstm_persistent.rs.
// Versions:
//   fwd v7 (diag_lstm_persistent_fwd_v7, rounded twins diag_lstm_persistent_fwd_{tf32,bf16}_v7):
//     v6's forward with both taps' chunks staged between one pair of barriers and the exchange
//     in a buffer of its own (kernels/row_lstm_persistent_v7.cu says more).
//     kernels/lstm_persistent_fwd_v5.cuh (the bodies at WG = 2, V7).
//   bwd v7 (diag_lstm_persistent_bwd_v7, rounded twins diag_lstm_persistent_bwd_{tf32,bf16}_v7):
//     v6's backward with chunks of 512 gate rows staged 16 loads at a time.
//     kernels/lstm_persistent_bwd_v5.cuh (the bodies at lstm_bwd7_design).
// Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_bwd_v5.cuh"
#include "lstm_persistent_fwd_v5.cuh"

// Launch of the forward: as row_lstm_persistent_fwd_v7's (kernels/row_lstm_persistent_v7.cu): 256
// threads, clusters of C = ceil(h / 32) * G <= 8 blocks (16-position tiles), dynamic shared memory
// >= (32 * 4h + 2048) * 2 + 2048 floats. h and c are not __restrict__ (read by other blocks next
// step).
//
// Diagonal LSTM forward, folded layout: anti-diagonals in order, as
// diag_lstm_persistent_fwd_v2 (another summation order). Then the same at tf32 and bf16.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
diag_lstm_persistent_fwd_v7(const float* __restrict__ is, const float* __restrict__ w, float* h,
                            float* c, float* __restrict__ gates, int n, int height, int width,
                            int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_FP32, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
diag_lstm_persistent_fwd_tf32_v7(const float* __restrict__ is, const float* __restrict__ w,
                                 float* h, float* c, float* __restrict__ gates, int n,
                                 int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_TF32, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
diag_lstm_persistent_fwd_bf16_v7(const float* __restrict__ is, const float* __restrict__ w,
                                 float* h, float* c, float* __restrict__ gates, int n,
                                 int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_BF16, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, width, 0);
}

// Launch of the backward (every kernel below): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_BWD_V6_THREADS (256), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G
// >= 1 position groups of 16-position tiles: v2's launch), dynamic shared memory >= 32 * 4h * taps
// floats (opted in; with the 32 KiB static staging tile). The maps written in one step and read by
// other blocks in the next (d_is, dc_carry) are not __restrict__: their loads must not take the
// read-only (non-coherent) path. dc_carry zeroed by the host.
//
// Diagonal LSTM backward, skew folded (map stride W, no skew): anti-diagonals in reverse
// (diag_lstm_persistent_bwd_v3's semantics, another summation order). Then the same at tf32
// and bf16 (as row_lstm_persistent_v6.cu's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
diag_lstm_persistent_bwd_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_FP32, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
diag_lstm_persistent_bwd_tf32_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_TF32, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
diag_lstm_persistent_bwd_bf16_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_BF16, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, width, 0);
}
