// diag_bilstm_combine.cu: the output write of a Diagonal BiLSTM layer, fused. The right
// direction runs on the mirrored image; its hidden map is mirrored back, shifted down one row
// (so that no position sees its own row to the right: MODELS.md) and added to the left
// direction's map. Unfused that is three launches and two intermediate maps (mirror_width,
// shift_down, add); here it is one pass. The skew needs no unskew: both scans fold it into
// their indexing and write unskewed maps. CPU twin: the default `Backend::diag_bilstm_combine`
// (the composition of the three ops), src/backend/mod.rs.
//
// Versions:
//   v1: diag_bilstm_combine_fwd_v1, diag_bilstm_combine_bwd_v1: one thread per output
//       element, grid-stride; row 0 of the shifted map (forward) and row H-1 of the gradient
//       (backward) are written as zeros by the kernel.
//
// Layout: left, right, out, dh, dright [n, H, W, C].
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// out[r, j] = left[r, j] + (r > 0 ? right[r-1, W-1-j] : 0).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_bilstm_combine_fwd_v1(const float* __restrict__ left, const float* __restrict__ right,
                           float* __restrict__ out, pixelrnn_index_t total, int height,
                           int width, int channels) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int ch = (int)(idx % channels);
        const pixelrnn_index_t pos = idx / channels;
        const int j = (int)(pos % width);
        const pixelrnn_index_t row = pos / width;  // image * height + r
        const int r = (int)(row % height);
        const float from_right =
            r > 0 ? right[((row - 1) * width + (width - 1 - j)) * channels + ch] : 0.0f;
        out[idx] = left[idx] + from_right;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * C.
// The gradient reaching the right direction's map: dright[r, j] = dh[r+1, W-1-j], row H-1
// zero (the left direction's gradient is dh itself).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_bilstm_combine_bwd_v1(const float* __restrict__ dh, float* __restrict__ dright,
                           pixelrnn_index_t total, int height, int width, int channels) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int ch = (int)(idx % channels);
        const pixelrnn_index_t pos = idx / channels;
        const int j = (int)(pos % width);
        const pixelrnn_index_t row = pos / width;
        const int r = (int)(row % height);
        dright[idx] =
            r + 1 < height ? dh[((row + 1) * width + (width - 1 - j)) * channels + ch] : 0.0f;
    }
}
