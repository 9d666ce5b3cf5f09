// position.cu: the features of one position (i, j) of an NHWC map, for every image of the
// batch, read out or written in (incremental sampling, src/sample.rs). CPU twin:
// src/backend/cpu/position.rs.
//
// Entry points: position_read_v<N>, position_write_v<N>; version chosen per family
// ("position").
//
// Versions (both ops):
//   v1: one thread per (image, feature), grid-stride loop; consecutive threads touch
//       consecutive features of one position, so the accesses are coalesced.
//
// Layout: map x [n, h, w, f]; values v [n, f]; v[b, k] <-> x[b, i, j, k].
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (e.g. ceil(n * f / 256)).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
position_read_v1(const float* __restrict__ x, float* __restrict__ out, pixelrnn_index_t n,
                 pixelrnn_index_t h, pixelrnn_index_t w, pixelrnn_index_t f,
                 pixelrnn_index_t i, pixelrnn_index_t j) {
    const pixelrnn_index_t total = n * f;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const pixelrnn_index_t b = e / f;
        const pixelrnn_index_t k = e - b * f;
        out[e] = x[((b * h + i) * w + j) * f + k];
    }
}

// Launch: as position_read_v1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
position_write_v1(float* __restrict__ x, const float* __restrict__ v, pixelrnn_index_t n,
                  pixelrnn_index_t h, pixelrnn_index_t w, pixelrnn_index_t f,
                  pixelrnn_index_t i, pixelrnn_index_t j) {
    const pixelrnn_index_t total = n * f;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const pixelrnn_index_t b = e / f;
        const pixelrnn_index_t k = e - b * f;
        x[((b * h + i) * w + j) * f + k] = v[e];
    }
}
