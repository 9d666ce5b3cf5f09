// loss_targets.cu: the check that a loss's targets are valid, so that softmax_nll and
// bernoulli_nll on CUDA return the same error as the CPU backend for an invalid target (the
// loss kernels themselves give NaN, softmax_nll, or a meaningless finite value,
// bernoulli_nll, and are left as they are). CPU twin: src/backend/cpu/loss_targets.rs.
//
// Versions:
//   v1: one thread per target, grid-stride loop. A target is valid when it is an integer in
//       0..max_value (255 for softmax_nll, 1 for bernoulli_nll); NaN and infinities are not.
//       A thread that finds an invalid target sets *invalid to 1 (atomicExch: every writer
//       writes the same value, so the result does not depend on their order). Memory-bound:
//       4 bytes read per target, one word written when a target is invalid.
//
// The host clears *invalid, launches this kernel beside the loss kernel and downloads the one
// word (src/backend/cuda/loss_targets.rs).
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (e.g. min(ceil(n / 256), 65535)).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
loss_targets_check_v1(const float* __restrict__ targets, float* invalid, pixelrnn_index_t n,
                      float max_value) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float t = targets[i];
        const bool valid = t >= 0.0f && t <= max_value && t == rintf(t);  // false for nan
        if (!valid) atomicExch(invalid, 1.0f);
    }
}
