// pixelrnn: arch compute_90
// diag_lstm_skewed_persistent_v5.cu: the Diagonal LSTM's persistent v5 recurrence,
// materialised layout (fp32 only, as v2's to v4's): the forward
// (diag_lstm_skewed_persistent_fwd_v5: v2's clusters and 16 x 32 block tile over an 8
// positions x 2 units x 4 gates thread tile, the K range split over 4 K-groups of each warp, 8
// FLOPs per shared word; kernels/lstm_persistent_fwd_v5.cuh). Compute_90 PTX (the first line:
// clusters).
#include "lstm_persistent_fwd_v5.cuh"

// Launch of the forward: as row_lstm_persistent_fwd_v5's (kernels/row_lstm_persistent_v5.cu):
// 128 threads, clusters of C = ceil(h / 32) * G <= 8 blocks (16-position tiles), dynamic shared
// memory >= 32 * 4h * 2 floats. h and c are not __restrict__ (read by other blocks next step).
//
// Diagonal LSTM forward over the skewed maps (row stride `skewed`).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_FWD_V5_THREADS, 1)
diag_lstm_skewed_persistent_fwd_v5(const float* __restrict__ is, const float* __restrict__ w,
                                   float* h, float* c, float* __restrict__ gates, int n,
                                   int height, int width, int hidden, int skewed) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_v5_body<PIXELRNN_ROUND_FP32>(is, w, w_s, h, c, gates, height, width,
                                                          hidden, skewed, 1);
}
