// optim.cu: optimizer updates, in place on the parameters and their running statistics.
// CPU twins: src/backend/cpu/optim.rs (same formulas, same order of operations).
//
// Entry points: optim_rmsprop_v<N>, optim_adam_v<N> (one tensor per launch), and
// optim_rmsprop_multi_v<N>, optim_adam_multi_v<N> (every parameter of the model in one launch,
// from a chunk table: src/backend/cuda/multi_tensor.rs); version chosen per family ("optim").
//
// Versions (all four):
//   v1: one thread per parameter, grid-stride loop. Memory-bound (RMSProp: 12 bytes read,
//       8 written per parameter; Adam: 16 read, 12 written); the reference version.
//       rmsprop_multi / adam_multi: the same update, one block per chunk of at most
//       PIXELRNN_MULTI_CHUNK elements of one tensor (the block's row of the chunk table),
//       the gradient first multiplied by grad_scale and written back when grad_scale != 1
//       (global-norm clipping folded in: the same floats as scale_inplace then the update).
//       One launch for the whole model instead of one per tensor (and one per tensor for
//       the clipping): a PixelCNN step at cifar-large has 78 parameter tensors.
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

// The tensors of chunk table row `row` (src/backend/cuda/multi_tensor.rs): up to four device
// pointers, then the chunk's element range [start, end) in all of them.
PIXELRNN_DEVICE float* optim_multi_ptr(const long long* __restrict__ row, int k) {
    return reinterpret_cast<float*>(static_cast<unsigned long long>(row[k]));
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = chunks (one block per table row).
// Row: [param, grad, ms, unused, start, end].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
optim_rmsprop_multi_v1(const long long* __restrict__ table, float lr, float decay, float eps,
                       float grad_scale) {
    const long long* row = table + (pixelrnn_index_t)blockIdx.x * PIXELRNN_MULTI_ROW;
    // Pointers to the chunk's first element and an int index: fewer 64-bit values live across
    // the division's slow path (which otherwise spills under the call ABI).
    const pixelrnn_index_t start = row[4];
    const int len = (int)(row[5] - start);
    float* param = optim_multi_ptr(row, 0) + start;
    float* grad = optim_multi_ptr(row, 1) + start;
    float* ms = optim_multi_ptr(row, 2) + start;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        float g = grad[i];
        if (grad_scale != 1.0f) {
            g *= grad_scale;
            grad[i] = g;
        }
        const float s = decay * ms[i] + (1.0f - decay) * g * g;
        ms[i] = s;
        param[i] -= lr * g / sqrtf(s + eps);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = chunks (one block per table row).
// Row: [param, grad, m, v, start, end].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
optim_adam_multi_v1(const long long* __restrict__ table, float lr, float beta1, float beta2,
                    float eps, float bias_correction1, float bias_correction2,
                    float grad_scale) {
    const long long* row = table + (pixelrnn_index_t)blockIdx.x * PIXELRNN_MULTI_ROW;
    const pixelrnn_index_t start = row[4];
    const int len = (int)(row[5] - start);  // at most PIXELRNN_MULTI_CHUNK
    float* param = optim_multi_ptr(row, 0) + start;
    float* grad = optim_multi_ptr(row, 1) + start;
    float* m = optim_multi_ptr(row, 2) + start;
    float* v = optim_multi_ptr(row, 3) + start;
    for (int i = threadIdx.x; i < len; i += blockDim.x) {
        float g = grad[i];
        if (grad_scale != 1.0f) {
            g *= grad_scale;
            grad[i] = g;
        }
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias_correction1;
        const float v_hat = vi / bias_correction2;
        param[i] -= lr * m_hat / (sqrtf(v_hat) + eps);
    }
}
