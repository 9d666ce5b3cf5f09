// softmax_nll.cu: 256-way softmax cross-entropy of the PixelCNN/PixelRNN output head, forward
// and backward in one pass. CPU twin: src/backend/cpu/softmax_nll.rs.
//
// Versions:
//   v1: one warp per (position, channel); each lane keeps 8 of the 256 logits in registers,
//       warp-shuffle max and sum (log-sum-exp), writes nll and dlogits. Reference version.
//
// Layout (shared with the CPU twin):
//   logits  [positions, 256 * channels]  the logit of value k for channel c is at k*channels + c
//                                        (interleaved: feature f belongs to channel f % channels)
//   targets [positions, channels]        integer values 0..255 stored as floats
//   nll     [positions, channels]        -log softmax(logits of channel c)[target]
//   dlogits same shape as logits         (softmax - onehot(target)) * grad_scale
// A target that is not an integer in 0..255 (or is nan) gives nan in nll and in that channel's
// dlogits, so the host's non-finite-loss check reports it instead of training on garbage.
#include "common.cuh"

#define SOFTMAX_NLL_VALUES 256
#define SOFTMAX_NLL_PER_LANE (SOFTMAX_NLL_VALUES / PIXELRNN_WARP)

// Launch: blockDim.x = PIXELRNN_BLOCK (8 warps), gridDim.x = ceil(positions * channels / 8).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
softmax_nll_fwd_bwd_v1(const float* __restrict__ logits, const float* __restrict__ targets,
                       float* __restrict__ nll, float* __restrict__ dlogits, int positions,
                       int channels, float grad_scale) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const pixelrnn_index_t warp =
        ((pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x) / PIXELRNN_WARP;
    const pixelrnn_index_t rows = (pixelrnn_index_t)positions * channels;
    if (warp >= rows) return;  // whole warp leaves together: shuffles below stay full-mask

    const pixelrnn_index_t position = warp / channels;
    const int channel = (int)(warp % channels);
    const pixelrnn_index_t base =
        position * SOFTMAX_NLL_VALUES * (pixelrnn_index_t)channels + channel;

    float v[SOFTMAX_NLL_PER_LANE];
    float local_max = -PIXELRNN_FLT_MAX;
#pragma unroll
    for (int i = 0; i < SOFTMAX_NLL_PER_LANE; ++i) {
        const int k = lane + i * PIXELRNN_WARP;
        v[i] = logits[base + (pixelrnn_index_t)k * channels];
        local_max = fmaxf(local_max, v[i]);
    }
    const float row_max = pixelrnn_warp_max(local_max);

    float local_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < SOFTMAX_NLL_PER_LANE; ++i) {
        local_sum += expf(v[i] - row_max);
    }
    const float sum = pixelrnn_warp_sum(local_sum);
    const float inv_sum = 1.0f / sum;

    const float t = targets[warp];
    const bool valid = t >= 0.0f && t <= 255.0f && t == rintf(t);  // false for nan
    const int target = valid ? (int)t : 0;

    // Every lane reads the target's logit from memory (one broadcast load, already in L1).
    // Picking it out of v[] by the dynamic index target / 32 would move v[] to local memory;
    // NVVM turns unrolled selects back into exactly that, so it is not done here.
    const float target_logit = logits[base + (pixelrnn_index_t)target * channels];

    const float nan = __int_as_float(0x7fffffff);
    if (lane == 0) {
        // (max - l_t) + log(sum), never (max + log(sum)) - l_t: at |max| ~ 1e12 the latter
        // rounds log(sum) away (equal logits scored 0 instead of ln 256); max - l_t is exact
        // when the two are close, so the NLL keeps f32's relative precision at any magnitude.
        nll[warp] = valid ? (row_max - target_logit) + logf(sum) : nan;
    }
#pragma unroll
    for (int i = 0; i < SOFTMAX_NLL_PER_LANE; ++i) {
        const int k = lane + i * PIXELRNN_WARP;
        // exp(l - max) / sum, as the CPU twin: exp(l - (max + log(sum))) loses log(sum) the
        // same way at large magnitude.
        const float p = expf(v[i] - row_max) * inv_sum;
        const float g = (p - (k == target ? 1.0f : 0.0f)) * grad_scale;
        dlogits[base + (pixelrnn_index_t)k * channels] = valid ? g : nan;
    }
}
