// mirror_shift.cu: the moves of the Diagonal BiLSTM's right direction: mirror left-right
// (its own backward), shift down one row and its backward, shift up one row. CPU twin:
// src/backend/cpu/mirror_shift.rs.
//
// Versions:
//   v1: mirror_shift_mirror_width_v1, mirror_shift_shift_down_v1, mirror_shift_shift_up_v1:
//       one thread per output element, grid-stride; the row shifted in is written as zeros
//       by the kernel (outputs need no memset).
//
// Layout: x, out [n, H, W, C].
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// out[r, j] = x[r, W-1-j].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
mirror_shift_mirror_width_v1(const float* __restrict__ x, float* __restrict__ out,
                             pixelrnn_index_t total, int width, int channels) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int ch = (int)(idx % channels);
        const pixelrnn_index_t pos = idx / channels;
        const int j = (int)(pos % width);
        const pixelrnn_index_t row = pos / width;
        out[idx] = x[(row * width + (width - 1 - j)) * channels + ch];
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// out[r] = x[r-1], row 0 zero. `row_len` = W * C.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
mirror_shift_shift_down_v1(const float* __restrict__ x, float* __restrict__ out,
                           pixelrnn_index_t total, int height, pixelrnn_index_t row_len) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int r = (int)((idx / row_len) % height);
        out[idx] = r > 0 ? x[idx - row_len] : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// out[r] = x[r+1], last row zero (the backward of shift down). `row_len` = W * C.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
mirror_shift_shift_up_v1(const float* __restrict__ x, float* __restrict__ out,
                         pixelrnn_index_t total, int height, pixelrnn_index_t row_len) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int r = (int)((idx / row_len) % height);
        out[idx] = r + 1 < height ? x[idx + row_len] : 0.0f;
    }
}
