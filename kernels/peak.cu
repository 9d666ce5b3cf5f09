// peak.cu: the device's FP32 ceiling for `pixelrnn bench` (the fraction of peak that each
// kernel reaches is reported against it). CPU twin: `bench::peak_fma_expected`, which computes
// what each thread writes, so the bench checks the kernel before it trusts its time.
//
// Versions:
//   v1: 8 independent chains x = a * x + b per thread in registers (contracted to FMA by the
//       compiler), 4 per chain per loop round; no memory traffic except one store per thread.
//       Enough independent work per warp to keep every FP32 pipe busy at full occupancy.
//
// Semantics: thread t (global index) starts chain k at (t % 1024) * 1e-3 + k, applies
// x = a * x + b `rounds * 4` times to each chain, and writes the sum of its chains to out[t].
// FLOPs: 2 * 8 * 4 * rounds per thread.
#include "common.cuh"

#define PEAK_CHAIN(x) x = a * x + b

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = out's length / PIXELRNN_BLOCK (exactly one
// thread per element of out).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
peak_fma_v1(float* __restrict__ out, int rounds, float a, float b) {
    const pixelrnn_index_t t = pixelrnn_global_thread();
    const float base = (float)(t % 1024) * 1e-3f;
    float x0 = base, x1 = base + 1.0f, x2 = base + 2.0f, x3 = base + 3.0f;
    float x4 = base + 4.0f, x5 = base + 5.0f, x6 = base + 6.0f, x7 = base + 7.0f;
    for (int r = 0; r < rounds; ++r) {
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            PEAK_CHAIN(x0);
            PEAK_CHAIN(x1);
            PEAK_CHAIN(x2);
            PEAK_CHAIN(x3);
            PEAK_CHAIN(x4);
            PEAK_CHAIN(x5);
            PEAK_CHAIN(x6);
            PEAK_CHAIN(x7);
        }
    }
    out[t] = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
}
