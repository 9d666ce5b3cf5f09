// peak_mma.cu: the device's tensor-core ceilings for `pixelrnn bench` (tf32 and bf16 rows are
// set against them, fp32 rows against peak_fma_v1 of kernels/peak.cu). CPU twin:
// `bench::peak_mma_expected`, which computes what each thread writes, so the bench checks the
// kernel (and with it the fragment layouts of kernels/mma.cuh) before it trusts its time.
//
// Versions:
//   tf32 v1: 8 independent accumulator chains per warp, D_c = A * B + D_c with
//            pixelrnn_mma_tf32_m16n8k8, 2 per chain per loop round (16 mma per round); A and B
//            fixed in registers, no memory traffic except one store per thread. 8 chains x 4
//            accumulators = 32 registers: enough mma in flight per warp to cover the
//            tensor pipe's latency with a few warps per SM sub-partition.
//   bf16 v1: the same with pixelrnn_mma_bf16_m16n8k16.
//
// Semantics (small integers, exact in tf32, bf16 and fp32, so the result does not depend on
// the tensor core's accumulation order: the twin checks it bit for bit). With w the global warp
// index, s = w % 7, K = 8 (tf32) or 16 (bf16):
//   A[i][k] = (i + 2k + s) % 3              (16 x K, in 0..2)
//   B[k][n] = (3k + n + s) % 5 - 1          (K x 8, in -1..3: mostly positive products, so
//                                            a thread's sum moves with every mma)
//   chain c starts at C_c[i][n] = 256c + 8i + n - 64
// and after M = rounds * 2 mma holds C_c + M * (A B). Each thread writes the sum over the
// chains of its four D elements (the C/D layout of mma.cuh). The host keeps
// |out| < 2^24 (bench::peak_mma_check_rounds), so every partial sum is exact.
// FLOPs: 2 * 16 * 8 * K per mma, 16 * rounds mma per warp.
#include "common.cuh"
#include "mma.cuh"

#define PEAK_MMA_CHAINS 8

// The A, B and C values of the semantics above.
PIXELRNN_DEVICE float peak_mma_a(int i, int k, int s) { return (float)((i + 2 * k + s) % 3); }
PIXELRNN_DEVICE float peak_mma_b(int k, int n, int s) { return (float)((3 * k + n + s) % 5 - 1); }
PIXELRNN_DEVICE float peak_mma_c(int c, int i, int n) { return (float)(256 * c + 8 * i + n - 64); }

// This lane's accumulators of every chain, in the C/D layout: c0,c1 (g, 2t..2t+1), c2,c3 (g+8,
// 2t..2t+1).
PIXELRNN_DEVICE void peak_mma_init(float acc[PEAK_MMA_CHAINS][4], int g, int t) {
#pragma unroll
    for (int c = 0; c < PEAK_MMA_CHAINS; ++c) {
        acc[c][0] = peak_mma_c(c, g, 2 * t);
        acc[c][1] = peak_mma_c(c, g, 2 * t + 1);
        acc[c][2] = peak_mma_c(c, g + 8, 2 * t);
        acc[c][3] = peak_mma_c(c, g + 8, 2 * t + 1);
    }
}

// The sum of this lane's accumulators, chain by chain (exact: integers below 2^24).
PIXELRNN_DEVICE float peak_mma_sum(const float acc[PEAK_MMA_CHAINS][4]) {
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < PEAK_MMA_CHAINS; ++c) sum += (acc[c][0] + acc[c][1]) + (acc[c][2] + acc[c][3]);
    return sum;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = out's length / PIXELRNN_BLOCK (one thread
// per element of out; whole warps, as mma.sync needs).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
peak_mma_tf32_v1(float* __restrict__ out, int rounds) {
    const pixelrnn_index_t t = pixelrnn_global_thread();
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const int s = (int)((t / PIXELRNN_WARP) % 7);
    const int g = lane >> 2, q = lane & 3;
    // A: a0 (g, q), a1 (g+8, q), a2 (g, q+4), a3 (g+8, q+4); B: b0 (q, g), b1 (q+4, g).
    unsigned a[4], b[2];
    a[0] = pixelrnn_tf32(peak_mma_a(g, q, s));
    a[1] = pixelrnn_tf32(peak_mma_a(g + 8, q, s));
    a[2] = pixelrnn_tf32(peak_mma_a(g, q + 4, s));
    a[3] = pixelrnn_tf32(peak_mma_a(g + 8, q + 4, s));
    b[0] = pixelrnn_tf32(peak_mma_b(q, g, s));
    b[1] = pixelrnn_tf32(peak_mma_b(q + 4, g, s));
    float acc[PEAK_MMA_CHAINS][4];
    peak_mma_init(acc, g, q);
    for (int r = 0; r < rounds; ++r) {
#pragma unroll
        for (int u = 0; u < 2; ++u) {
#pragma unroll
            for (int c = 0; c < PEAK_MMA_CHAINS; ++c) pixelrnn_mma_tf32_m16n8k8(acc[c], a, b, acc[c]);
        }
    }
    out[t] = peak_mma_sum(acc);
}

// Launch: as peak_mma_tf32_v1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
peak_mma_bf16_v1(float* __restrict__ out, int rounds) {
    const pixelrnn_index_t t = pixelrnn_global_thread();
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const int s = (int)((t / PIXELRNN_WARP) % 7);
    const int g = lane >> 2, q = lane & 3;
    // A: a0,a1 (g, 2q..), a2,a3 (g+8, 2q..), a4,a5 (g, 2q+8..), a6,a7 (g+8, 2q+8..);
    // B: b0,b1 (k = 2q.., n = g), b2,b3 (k = 2q+8.., n = g). Small integers: bf16 exactly.
    unsigned a[4], b[2];
    a[0] = pixelrnn_pack_bf16x2(peak_mma_a(g, 2 * q, s), peak_mma_a(g, 2 * q + 1, s));
    a[1] = pixelrnn_pack_bf16x2(peak_mma_a(g + 8, 2 * q, s), peak_mma_a(g + 8, 2 * q + 1, s));
    a[2] = pixelrnn_pack_bf16x2(peak_mma_a(g, 2 * q + 8, s), peak_mma_a(g, 2 * q + 9, s));
    a[3] = pixelrnn_pack_bf16x2(peak_mma_a(g + 8, 2 * q + 8, s), peak_mma_a(g + 8, 2 * q + 9, s));
    b[0] = pixelrnn_pack_bf16x2(peak_mma_b(2 * q, g, s), peak_mma_b(2 * q + 1, g, s));
    b[1] = pixelrnn_pack_bf16x2(peak_mma_b(2 * q + 8, g, s), peak_mma_b(2 * q + 9, g, s));
    float acc[PEAK_MMA_CHAINS][4];
    peak_mma_init(acc, g, q);
    for (int r = 0; r < rounds; ++r) {
#pragma unroll
        for (int u = 0; u < 2; ++u) {
#pragma unroll
            for (int c = 0; c < PEAK_MMA_CHAINS; ++c) pixelrnn_mma_bf16_m16n8k16(acc[c], a, b, acc[c]);
        }
    }
    out[t] = peak_mma_sum(acc);
}
