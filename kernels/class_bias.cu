// class_bias.cu: class conditioning (`--condition class`). A layer's learned table
// [K, F] (one row per class) is added to its gate or input-to-state pre-activations:
// forward out[b, p, f] = x[b, p, f] + table[label[b], f] at every position p of image b;
// backward dtable[k, f] = sum over the images b of class k and their positions p of
// dy[b, p, f]. CPU twin: src/backend/cpu/class_bias.rs.
//
// Versions:
//   v1: class_bias_fwd_v1: one thread per output element, grid-stride; a label that is not a
//       class (out of 0..K, or not an integer) writes NaN, so that it reaches the loss's
//       non-finite check instead of reading outside the table.
//       class_bias_bwd_v1: one thread per table entry (k, f), grid-stride; it walks the images
//       in order and, for each of class k, sums that image's positions in raster order, then
//       adds the image's sum: a fixed order, no atomics, so the gradient is deterministic
//       and equal to the CPU twin's bit for bit (the twin sums in the same order). Threads of
//       a warp read consecutive f of one position: coalesced.
//
// Layout: x, out, dy [n, H, W, F] (NHWC, `positions` = H * W); table, dtable [K, F];
// labels [n], class indices stored as floats (exact below 2^24).
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = n * H * W * F.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
class_bias_fwd_v1(const float* __restrict__ x, const float* __restrict__ table,
                  const float* __restrict__ labels, float* __restrict__ out,
                  pixelrnn_index_t total, pixelrnn_index_t per_image, int features,
                  int classes) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const float lf = labels[idx / per_image];
        // The cast only for a label in range (a NaN or huge float cast to int is undefined).
        const bool in_range = lf >= 0.0f && lf < (float)classes;
        const int k = in_range ? (int)lf : 0;
        const int f = (int)(idx % features);
        out[idx] = in_range && (float)k == lf
                       ? x[idx] + table[(pixelrnn_index_t)k * features + f]
                       : __int_as_float(0x7fffffff);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (grid-stride); total = K * F.
// dtable[k, f] = sum_b [label b == k] (sum_p dy[b, p, f]).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
class_bias_bwd_v1(const float* __restrict__ dy, const float* __restrict__ labels,
                  float* __restrict__ dtable, int n, pixelrnn_index_t positions, int features,
                  int classes) {
    const pixelrnn_index_t total = (pixelrnn_index_t)classes * features;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int k = (int)(idx / features);
        const int f = (int)(idx % features);
        float acc = 0.0f;
        for (int b = 0; b < n; ++b) {
            if (labels[b] != (float)k) {
                continue;
            }
            const float* img = dy + (pixelrnn_index_t)b * positions * features + f;
            float s = 0.0f;
            for (pixelrnn_index_t p = 0; p < positions; ++p) {
                s += img[p * features];
            }
            acc += s;
        }
        dtable[idx] = acc;
    }
}
