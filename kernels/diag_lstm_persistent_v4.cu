// pixelrnn: arch compute_90
// diag_lstm_persistent_v4.cu: the Diagonal LSTM's persistent v4 recurrence, skew folded: the
// forward (diag_lstm_persistent_fwd_v4 and its rounded twins
// diag_lstm_persistent_fwd_{tf32,bf16}_v4: v2's clusters over an 8 positions x 2 units x 4
// gates register tile, 8 FLOPs per shared word; kernels/lstm_persistent_fwd_v4.cuh) and the
// backward (diag_lstm_persistent_bwd_v4 and its rounded twins
// diag_lstm_persistent_bwd_{tf32,bf16}_v4: v2's clusters over a K-split 8 x 8 register tile, 8
// FLOPs per shared word; kernels/lstm_persistent_v4.cuh). Compute_90 PTX (the first line:
// clusters).
#include "lstm_persistent_fwd_v4.cuh"
#include "lstm_persistent_v4.cuh"

// Launch of the forward: as row_lstm_persistent_fwd_v4's (kernels/row_lstm_persistent_v4.cu):
// 64 threads, clusters of C = ceil(h / 32) * G <= 8 blocks (32-position tiles), dynamic shared
// memory >= 32 * 4h * 2 floats. h and c are not __restrict__ (read by other blocks next step).
//
// Diagonal LSTM forward, folded layout: anti-diagonals in order, as
// diag_lstm_persistent_fwd_v2 (its summation order).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V4_THREADS, 1)
diag_lstm_persistent_fwd_v4(const float* __restrict__ is, const float* __restrict__ w, float* h,
                            float* c, float* __restrict__ gates, int n, int height, int width,
                            int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v4_body<PIXELRNN_ROUND_FP32>(is, w, w_s, h, c, gates, height, width,
                                                          hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V4_THREADS, 1)
diag_lstm_persistent_fwd_tf32_v4(const float* __restrict__ is, const float* __restrict__ w, float* h,
                                 float* c, float* __restrict__ gates, int n, int height, int width,
                                 int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v4_body<PIXELRNN_ROUND_TF32>(is, w, w_s, h, c, gates, height, width,
                                                          hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V4_THREADS, 1)
diag_lstm_persistent_fwd_bf16_v4(const float* __restrict__ is, const float* __restrict__ w, float* h,
                                 float* c, float* __restrict__ gates, int n, int height, int width,
                                 int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v4_body<PIXELRNN_ROUND_BF16>(is, w, w_s, h, c, gates, height, width,
                                                          hidden, width, 0);
}

// Launch of the backward (every other kernel of this file): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_V4_THREADS (64), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8
// (G >= 1 position groups of 64-position tiles), dynamic shared memory >= 32 * 4h * taps
// floats (opted in above 48 KiB).
// The maps written in one step and read by other blocks in the next (d_is, dc_carry) are not
// __restrict__: their loads must not take the read-only (non-coherent) path. dc_carry zeroed
// by the host.

// Diagonal LSTM backward, skew folded (map stride W, no skew): anti-diagonals in reverse.
// Then the same at tf32 and bf16 (as row_lstm_persistent_v4.cu's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V4_THREADS, 1)
diag_lstm_persistent_bwd_v4(const float* __restrict__ w, const float* __restrict__ gates,
                            const float* __restrict__ c, const float* __restrict__ dh,
                            float* dc_carry, float* d_is, int n, int height, int width,
                            int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v4_body<PIXELRNN_ROUND_FP32>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V4_THREADS, 1)
diag_lstm_persistent_bwd_tf32_v4(const float* __restrict__ w, const float* __restrict__ gates,
                                 const float* __restrict__ c, const float* __restrict__ dh,
                                 float* dc_carry, float* d_is, int n, int height, int width,
                                 int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v4_body<PIXELRNN_ROUND_TF32>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, width, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V4_THREADS, 1)
diag_lstm_persistent_bwd_bf16_v4(const float* __restrict__ w, const float* __restrict__ gates,
                                 const float* __restrict__ c, const float* __restrict__ dh,
                                 float* dc_carry, float* d_is, int n, int height, int width,
                                 int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v4_body<PIXELRNN_ROUND_BF16>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, width, 0);
}
