// pixelrnn: arch compute_90
// diag_lstm_skewed_persistent_v4.cu: the Diagonal LSTM's persistent v4 backward,
// materialised layout (diag_lstm_skewed_persistent_bwd_v4, fp32 only as v3's):
// v2's clusters over a K-split 8 x 8 register tile, 8 FLOPs per shared word
// (kernels/lstm_persistent_v4.cuh has the design). Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_v4.cuh"

// Launch (every kernel of this file): gridDim.x = n * C, blockDim.x =
// LSTM_PERSISTENT_V4_THREADS (64), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8
// (G >= 1 position groups of 64-position tiles), dynamic shared memory >= 32 * 4h * taps
// floats (opted in above 48 KiB).
// The maps written in one step and read by other blocks in the next (d_is, dc_carry) are not
// __restrict__: their loads must not take the read-only (non-coherent) path. dc_carry zeroed
// by the host.

// Diagonal LSTM backward over the skewed maps (row stride `skewed`).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V4_THREADS, 1)
diag_lstm_skewed_persistent_bwd_v4(const float* __restrict__ w, const float* __restrict__ gates,
                                   const float* __restrict__ c, const float* __restrict__ dh,
                                   float* dc_carry, float* d_is, int n, int height, int width,
                                   int hidden, int skewed) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_v4_body<PIXELRNN_ROUND_FP32>(w, w_s, gates, c, dh, dc_carry,
        d_is, height, width, hidden, skewed, 1);
}
