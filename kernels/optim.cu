// optim.cu: optimizer updates, in place on the parameters and their running statistics.
// CPU twins: src/backend/cpu/optim.rs (same formulas, same order of operations).
//
// Entry points: optim_rmsprop_v<N>, optim_adam_v<N>; version chosen per family ("optim").
//
// Versions (both ops):
//   v1: one thread per parameter, grid-stride loop. Memory-bound (RMSProp: 12 bytes read,
//       8 written per parameter; Adam: 16 read, 12 written); the reference version.
//
// Semantics, per parameter:
//   rmsprop_update: ms = decay ms + (1 - decay) g^2;  p -= lr g / sqrt(ms + eps)
//   adam_update:    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//                   p -= lr (m / bc1) / (sqrt(v / bc2) + eps)
//                   (bc1 = 1 - b1^t, bc2 = 1 - b2^t: the host passes this step's values)
#include "common.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
optim_rmsprop_v1(float* __restrict__ param, const float* __restrict__ grad,
                 float* __restrict__ ms, pixelrnn_index_t n, float lr, float decay,
                 float eps) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float g = grad[i];
        const float s = decay * ms[i] + (1.0f - decay) * g * g;
        ms[i] = s;
        param[i] -= lr * g / sqrtf(s + eps);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
optim_adam_v1(float* __restrict__ param, const float* __restrict__ grad,
              float* __restrict__ m, float* __restrict__ v, pixelrnn_index_t n, float lr,
              float beta1, float beta2, float eps, float bias_correction1,
              float bias_correction2) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float g = grad[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias_correction1;
        const float v_hat = vi / bias_correction2;
        param[i] -= lr * m_hat / (sqrtf(v_hat) + eps);
    }
}
