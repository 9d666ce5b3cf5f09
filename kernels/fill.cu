// fill.cu: sets every element of a buffer to one value. Used to poison fresh output buffers
// with NaN in the parity tests (an output element a kernel forgets to write stays NaN).
// CPU twin: `vec![value; n]`.
//
// Versions:
//   v1: one thread per element, grid-stride loop.
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
fill_fwd_v1(float* __restrict__ x, pixelrnn_index_t n, float value) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        x[i] = value;
    }
}
