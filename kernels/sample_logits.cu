// sample_logits.cu: draws values from the output head's logits by inverting the CDF with
// given uniforms (sampling, src/sample.rs), so that only the drawn values, not the logits,
// travel to the host. CPU twin: src/backend/cpu/sample_logits.rs.
//
// Versions:
//   v1 (fwd): 256-way softmax, one warp per (row, channel); each lane keeps 8 of the 256
//       logits in registers (value k = 32 i + lane), warp max, exponentials, then a warp
//       inclusive prefix scan (shuffles) over the 256 unnormalised probabilities in value
//       order, chunk by chunk; the first value whose cumulative weight exceeds u * total is a
//       warp min. Reference version.
//   v1 (binary): Bernoulli, one thread per element, grid-stride loop.
//
// Layout (shared with softmax_nll.cu):
//   logits   [rows, 256 * channels]  the logit of value k for channel c is at k*channels + c
//            (binary: [rows, channels], one logit per value)
//   uniforms [rows, channels]        u in [0, 1)
//   out      [rows, channels]        the drawn value as a float (0..255; binary 0 or 1)
// Semantics:
//   softmax: with w_k = exp(l_k - max l) and W_k = w_0 + ... + w_k (f32), the smallest k with
//            u * W_255 < W_k. Using the scanned total W_255 itself (not a separate sum) makes
//            this well defined under rounding: a value of zero weight is never drawn, and
//            since u < 1 some k always qualifies. Only u >= 1 leaves none: then 255.
//   binary:  1 if u < sigmoid(l), else 0.
//   Either:  NaN if a logit of the row (softmax: any of the channel's 256) is NaN or
//            infinite, so that the host refuses it (Backend::sample_logits says why).
#include "common.cuh"

#define SAMPLE_LOGITS_VALUES 256
#define SAMPLE_LOGITS_PER_LANE (SAMPLE_LOGITS_VALUES / PIXELRNN_WARP)

// Inclusive prefix sum over the lanes of a full warp (Hillis-Steele with shuffles).
PIXELRNN_DEVICE float sample_logits_warp_scan(float x, int lane) {
#pragma unroll
    for (int offset = 1; offset < PIXELRNN_WARP; offset <<= 1) {
        const float y = __shfl_up_sync(PIXELRNN_FULL_MASK, x, offset);
        if (lane >= offset) x += y;
    }
    return x;
}

// Launch: blockDim.x = PIXELRNN_BLOCK (8 warps), gridDim.x = ceil(rows * channels / 8).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
sample_logits_fwd_v1(const float* __restrict__ logits, const float* __restrict__ uniforms,
                     float* __restrict__ out, pixelrnn_index_t rows, int channels) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const pixelrnn_index_t warp =
        ((pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x) / PIXELRNN_WARP;
    if (warp >= rows * channels) return;  // whole warp leaves together: shuffles stay full

    const pixelrnn_index_t row = warp / channels;
    const int channel = (int)(warp % channels);
    const pixelrnn_index_t base = row * SAMPLE_LOGITS_VALUES * (pixelrnn_index_t)channels + channel;

    float w[SAMPLE_LOGITS_PER_LANE];
    float local_max = -PIXELRNN_FLT_MAX;
    int non_finite = 0;
#pragma unroll
    for (int i = 0; i < SAMPLE_LOGITS_PER_LANE; ++i) {
        const int k = i * PIXELRNN_WARP + lane;
        w[i] = logits[base + (pixelrnn_index_t)k * channels];
        local_max = fmaxf(local_max, w[i]);
        non_finite |= !(fabsf(w[i]) <= PIXELRNN_FLT_MAX);  // NaN fails the comparison
    }
    if (__any_sync(PIXELRNN_FULL_MASK, non_finite)) {
        if (lane == 0) out[warp] = __int_as_float(0x7fffffff);
        return;  // the whole warp leaves together
    }
    const float max = pixelrnn_warp_max(local_max);

    // w[i] becomes the cumulative weight W_k of value k = 32 i + lane.
    float running = 0.0f;
#pragma unroll
    for (int i = 0; i < SAMPLE_LOGITS_PER_LANE; ++i) {
        const float scanned = sample_logits_warp_scan(expf(w[i] - max), lane);
        w[i] = running + scanned;
        running += __shfl_sync(PIXELRNN_FULL_MASK, scanned, PIXELRNN_WARP - 1);
    }

    // running == W_255 in every lane (the same additions in the same order).
    const float target = uniforms[warp] * running;
    float pick = (float)(SAMPLE_LOGITS_VALUES - 1);
#pragma unroll
    for (int i = SAMPLE_LOGITS_PER_LANE - 1; i >= 0; --i) {
        if (target < w[i]) pick = (float)(i * PIXELRNN_WARP + lane);
    }
    // Warp min of the lanes' first qualifying values (small integers: exact in float).
#pragma unroll
    for (int offset = PIXELRNN_WARP / 2; offset > 0; offset >>= 1) {
        pick = fminf(pick, __shfl_xor_sync(PIXELRNN_FULL_MASK, pick, offset));
    }
    if (lane == 0) out[warp] = pick;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, any gridDim.x.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
sample_logits_binary_v1(const float* __restrict__ logits, const float* __restrict__ uniforms,
                        float* __restrict__ out, pixelrnn_index_t n) {
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const float l = logits[i];
        out[i] = !(fabsf(l) <= PIXELRNN_FLT_MAX) ? __int_as_float(0x7fffffff)
                 : uniforms[i] < pixelrnn_sigmoid(l) ? 1.0f : 0.0f;
    }
}
