// pixelrnn: arch compute_90
// row_lstm_persistent_v7.cu: the Row LSTM's persistent v7 recurrence, forward and backward.
// CPU twin: src/backend/cpu/lstm.rs; host side: src/backend/cuda/lstm_persistent.rs.
// Versions:
//   fwd v7 (row_lstm_persistent_fwd_v7, rounded twins row_lstm_persistent_fwd_{tf32,bf16}_v7):
//     v6's block, tiles and exchange, with every tap's chunk staged between one pair of
//     barriers (batched loads: one round per tap) into dynamic shared memory and the exchange
//     in a buffer of its own: 2 block barriers per row at h <= 128 where v6 takes 8.
//     kernels/lstm_persistent_fwd_v5.cuh (the bodies at WG = 2, V7).
//   bwd v7 (row_lstm_persistent_bwd_v7, rounded twins row_lstm_persistent_bwd_{tf32,bf16}_v7):
//     v6's block, tiles and exchange, with chunks of 512 gate rows (a tap at h = 128) staged 16
//     loads at a time: 7 block barriers and 6 staging rounds per row at h = 128 where v6 takes
//     14 and 96. kernels/lstm_persistent_bwd_v5.cuh (the bodies at lstm_bwd7_design).
// Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_bwd_v5.cuh"
#include "lstm_persistent_fwd_v5.cuh"

// Launch of the forward: gridDim.x = n * C, blockDim.x = LSTM_PERSISTENT_FWD_V6_THREADS (256),
// clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G >= 1 position groups of
// 16-position tiles: v6's launch), dynamic shared memory >= (32 * 4h + 2048) * taps + 2048
// floats (the weight slice, every tap's staging tile, the exchange buffer; opted in above
// 48 KiB). h and c, written in one step and read by other blocks in the next, are not
// __restrict__.
//
// Row LSTM forward of the whole scan: rows top-down, h, c and the activated gates written as
// by row_lstm_persistent_fwd_v2 (another summation order: the K-groups' partials). Then the
// same at tf32 and bf16 (the weight rounded as it is staged, h as each chunk is staged, fp32
// FMA; the launches and parameters are the fp32 kernel's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_v7(const float* __restrict__ is, const float* __restrict__ w, float* h,
                           float* c, float* __restrict__ gates, int n, int height, int width,
                           int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_FP32, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_tf32_v7(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_TF32, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_bf16_v7(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_BF16, 2, true>(
        is, w, w_s, h, c, gates, height, width, hidden, k);
}

// Launch of the backward (every kernel below): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_BWD_V6_THREADS (256), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G
// >= 1 position groups of 16-position tiles: v2's launch), dynamic shared memory >= 32 * 4h * taps
// floats (opted in; with the 32 KiB static staging tile). The maps written in one step and read by
// other blocks in the next (d_is, dc_carry) are not __restrict__: their loads must not take the
// read-only (non-coherent) path. dc_carry zeroed by the host.
//
// Row LSTM backward of the whole scan: rows bottom-up (row_lstm_persistent_bwd_v3's semantics,
// another summation order: the K-groups' and warp groups' partials). Then the same at tf32 and bf16
// (the weight rounded as it is staged, d_is as each chunk is staged, fp32 FMA; the launches and
// parameters are the fp32 kernel's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_FP32, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_tf32_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_TF32, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_bf16_v7(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_BF16, lstm_bwd7_design>(
        w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden, k);
}
