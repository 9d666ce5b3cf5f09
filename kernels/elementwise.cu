// elementwise.cu: the pointwise ops of the layers: ReLU forward and backward, the residual
// add, and in-place scaling (gradient clipping). CPU twin: src/backend/cpu/elementwise.rs.
//
// Entry points are elementwise_<pass>_v<N>, one pass per op: relu_fwd, relu_bwd, add_fwd,
// scale_fwd. The version is chosen per family (CudaBackend::set_version("elementwise", n)).
//
// Versions (every pass):
//   v1: one thread per element, grid-stride loop. Memory-bound (8 to 12 bytes per element);
//       the reference version.
//
// Semantics, over n elements (same as the CPU twin, element by element):
//   relu_fwd:  y  = (x > 0 || x != x) ? x : 0  (max(x, 0) with NaN propagated, as PyTorch's
//                                              ReLU; fmaxf would turn NaN into 0 and hide it)
//   relu_bwd:  dx = y > 0 ? dy : 0      (y is the ReLU's output; NaN y gives 0)
//   add_fwd:   c  = a + b
//   scale_fwd: x  = x * s               (in place)
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (e.g. min(ceil(n / 256), 65535)).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
elementwise_relu_fwd_v1(const float* __restrict__ x, float* __restrict__ y,
                        pixelrnn_index_t n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float v = x[i];
        y[i] = (v > 0.0f || v != v) ? v : 0.0f;  // v != v: NaN stays NaN
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
elementwise_relu_bwd_v1(const float* __restrict__ y, const float* __restrict__ dy,
                        float* __restrict__ dx, pixelrnn_index_t n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
elementwise_add_fwd_v1(const float* __restrict__ a, const float* __restrict__ b,
                       float* __restrict__ c, pixelrnn_index_t n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        c[i] = a[i] + b[i];
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
elementwise_scale_fwd_v1(float* __restrict__ x, pixelrnn_index_t n, float s) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        x[i] *= s;
    }
}
