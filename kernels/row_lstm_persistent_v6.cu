// pixelrnn: arch compute_90
// row_lstm_persistent_v6.cu: the Row LSTM's persistent v6 recurrence, forward and backward.
// CPU twin: src/backend/cpu/lstm.rs; host side: src/backend/cuda/lstm_persistent.rs.
// Versions:
//   fwd v6 (row_lstm_persistent_fwd_v6, rounded twins row_lstm_persistent_fwd_{tf32,bf16}_v6):
//     v5's 16 x 32 block tile and thread tile on 256 threads, two warp groups each taking half
//     of every chunk's features, their partials exchanged through the staging tile; 8 warps per
//     SM where v5 has 4. kernels/lstm_persistent_fwd_v5.cuh (the bodies at WG = 2).
//   bwd v6 (row_lstm_persistent_bwd_v6, rounded twins row_lstm_persistent_bwd_{tf32,bf16}_v6):
//     v2's 16-position block tiles (so v2's clusters: twice v5's blocks at W = 32) over v5's
//     8 x 8 thread tile on 256 threads, 8 warp groups each taking an eighth of every chunk's
//     features, their partials summed through the staging tile; 8 warps per SM where v5 has 2.
//     kernels/lstm_persistent_bwd_v5.cuh (the bodies at lstm_bwd6_design).
// Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_bwd_v5.cuh"
#include "lstm_persistent_fwd_v5.cuh"

// Launch of the forward: gridDim.x = n * C, blockDim.x = LSTM_PERSISTENT_FWD_V6_THREADS (256),
// clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G >= 1 position groups of
// 16-position tiles: v2's and v5's launch), dynamic shared memory >= 32 * 4h * taps floats
// (opted in above 48 KiB). h and c, written in one step and read by other blocks in the next,
// are not __restrict__.
//
// Row LSTM forward of the whole scan: rows top-down, h, c and the activated gates written as
// by row_lstm_persistent_fwd_v2 (another summation order: the K-groups' partials). Then the
// same at tf32 and bf16 (the weight rounded as it is staged, h as each chunk is staged, fp32
// FMA; the launches and parameters are the fp32 kernel's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_v6(const float* __restrict__ is, const float* __restrict__ w, float* h,
                           float* c, float* __restrict__ gates, int n, int height, int width,
                           int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_FP32, 2>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_tf32_v6(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_TF32, 2>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V6_THREADS, 1)
row_lstm_persistent_fwd_bf16_v6(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_BF16, 2>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
}

// Launch of the backward (every kernel below): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_BWD_V6_THREADS (256), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8
// (G >= 1 position groups of 16-position tiles: v2's launch), dynamic shared memory >= 32 * 4h
// * taps floats (opted in above 48 KiB). The maps written in one step and read by other blocks
// in the next (d_is, dc_carry) are not __restrict__: their loads must not take the read-only
// (non-coherent) path. dc_carry zeroed by the host.
//
// Row LSTM backward of the whole scan: rows bottom-up (row_lstm_persistent_bwd_v3's
// semantics, another summation order: the K-groups' and warp groups' partials). Then the same at tf32 and bf16
// (the weight rounded as it is staged, d_is as each chunk is staged, fp32 FMA; the launches
// and parameters are the fp32 kernel's).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_v6(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_FP32, lstm_bwd6_design>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_tf32_v6(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_TF32, lstm_bwd6_design>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_BWD_V6_THREADS, 1)
row_lstm_persistent_bwd_bf16_v6(const float* __restrict__ w, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v5_body<PIXELRNN_ROUND_BF16, lstm_bwd6_design>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, k);
}
