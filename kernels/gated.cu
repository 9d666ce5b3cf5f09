// gated.cu: the gated activation of Gated PixelCNN (docs/gated-pixelcnn.md),
// y = tanh(f) * sigmoid(g), where each position's 2F pre-activation holds the filter block f
// (features 0..F-1) and the gate block g (F..2F-1). CPU twin: src/backend/cpu/gated.rs; host
// side: src/backend/cuda/gated.rs.
//
// Versions:
//   fwd v1: one thread per output element (position r, unit u), grid-stride loop; reads
//           pre[r, u] and pre[r, F + u] (consecutive lanes read consecutive words of each
//           block, so both loads coalesce), writes y[r, u]. Memory-bound: 12 bytes per output.
//   bwd v1: one thread per output element: recomputes tanh and sigmoid from pre (nothing else
//           is kept by the forward) and writes both halves of dpre[r, :],
//           df = dy * s * (1 - t^2), dg = dy * t * s * (1 - s). 20 bytes per output.
//
// Arithmetic as the CPU twin: sigmoid(g) = 1 / (1 + expf(-g)) (exact 0 and 1 in the tails),
// tanhf; NaN propagates.
#include "common.cuh"

PIXELRNN_DEVICE float gated_sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x; n = positions * F.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
gated_fwd_v1(const float* __restrict__ pre, float* __restrict__ y, pixelrnn_index_t n,
             int features) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < n; e += stride) {
        const pixelrnn_index_t r = e / features;
        const int u = (int)(e - r * features);
        const float* p = pre + r * 2 * features;
        y[e] = tanhf(p[u]) * gated_sigmoid(p[features + u]);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x; n = positions * F.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
gated_bwd_v1(const float* __restrict__ pre, const float* __restrict__ dy,
             float* __restrict__ dpre, pixelrnn_index_t n, int features) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < n; e += stride) {
        const pixelrnn_index_t r = e / features;
        const int u = (int)(e - r * features);
        const float* p = pre + r * 2 * features;
        float* d = dpre + r * 2 * features;
        const float t = tanhf(p[u]);
        const float s = gated_sigmoid(p[features + u]);
        const float g = dy[e];
        d[u] = g * s * (1.0f - t * t);
        d[features + u] = g * t * (s * (1.0f - s));
    }
}
