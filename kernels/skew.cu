// skew.cu: the materialised skew of the Diagonal BiLSTM and its adjoint, unskew. The diagonal
// scan folds the skew into its indexing (diag_lstm.cu); these serve the layer's comparisons,
// the tests' independent reference and the "materialised skew" variant. CPU twin:
// src/backend/cpu/skew.rs.
//
// Versions:
//   v1: skew_fwd_v1 (skew) and skew_unskew_v1 (unskew, which is also skew's backward): one
//       thread per output element, grid-stride; skew writes the zeros of the padding itself,
//       so its output needs no memset.
//
// Layout: x [n, H, W, C], S [n, H, Ws, C] with Ws = max(2W-1, H+W-1); S[r, r + j] = x[r, j],
// zero elsewhere.
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * Ws * C.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
skew_fwd_v1(const float* __restrict__ x, float* __restrict__ s, pixelrnn_index_t total,
            int height, int width, int skewed, int channels) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int ch = (int)(idx % channels);
        const pixelrnn_index_t pos = idx / channels;
        const int js = (int)(pos % skewed);
        const pixelrnn_index_t row = pos / skewed;  // b * H + r
        const int r = (int)(row % height);
        const int j = js - r;
        s[idx] = (j >= 0 && j < width) ? x[(row * width + j) * channels + ch] : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// out[r, j] = S[r, r + j].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
skew_unskew_v1(const float* __restrict__ s, float* __restrict__ x, pixelrnn_index_t total,
               int height, int width, int skewed, int channels) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int ch = (int)(idx % channels);
        const pixelrnn_index_t pos = idx / channels;
        const int j = (int)(pos % width);
        const pixelrnn_index_t row = pos / width;  // b * H + r
        const int r = (int)(row % height);
        x[idx] = s[(row * skewed + r + j) * channels + ch];
    }
}
