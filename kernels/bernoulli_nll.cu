// bernoulli_nll.cu: sigmoid cross-entropy for binary images (binarized MNIST output head),
// forward and backward in one pass. CPU twin: src/backend/cpu/bernoulli_nll.rs.
//
// Versions:
//   v1: one thread per element, grid-stride loop; stable softplus and sigmoid. Reference
//       version (memory-bound: 8 bytes read, 8 bytes written per element).
//
// Semantics, elementwise over n values (targets in {0, 1}):
//   nll     = softplus(l) - t*l = max(l, 0) - t*l + log1p(exp(-|l|))
//   dlogits = (sigmoid(l) - t) * grad_scale
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x (e.g. min(ceil(n / 256), 4 * SMs * 8)).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
bernoulli_nll_fwd_bwd_v1(const float* __restrict__ logits, const float* __restrict__ targets,
                         float* __restrict__ nll, float* __restrict__ dlogits, int n,
                         float grad_scale) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float l = logits[i];
        const float t = targets[i];
        nll[i] = fmaxf(l, 0.0f) - t * l + log1pf(expf(-fabsf(l)));
        dlogits[i] = (pixelrnn_sigmoid(l) - t) * grad_scale;
    }
}
