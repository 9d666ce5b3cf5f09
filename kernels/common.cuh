// common.cuh: helpers shared by every kernel in kernels/*.cu.
//
// Each kernels/<op>.cu is compiled by build.rs as its own PTX module (NVRTC or nvcc, virtual
// arch compute_80, -I kernels/ and the CUDA headers of .cuda-toolchain/), so this header must
// stay self-contained: no host headers, no <cstdint>, nothing that NVRTC lacks.
//
// Conventions followed by every kernel:
// - entry points are extern "C" (unmangled, so the host side finds them by name) and are named
//   <op>_<pass>_v<N>, e.g. softmax_nll_fwd_bwd_v1; older versions stay for parity and benches;
// - tensors are dense fp32 unless the name says otherwise; element offsets that can exceed
//   2^31 are computed in 64 bits (pixelrnn_index_t);
// - blocks are 1-D with PIXELRNN_BLOCK threads unless a kernel's comment says otherwise.
#pragma once

// The CPU emulator (build.rs compiles every kernel file a second time with g++ and
// PIXELRNN_EMU defined) gets the CUDA language from a host header instead of NVRTC.
#ifdef PIXELRNN_EMU
#include "emu/cuda_emu.h"
#endif

// Dynamic shared memory (LaunchCfg::shared_bytes bytes per block), declared inside a kernel:
// `PIXELRNN_DYNAMIC_SHARED(float, smem);` then smem[i]. The emulator cannot see an
// `extern __shared__` array, so every kernel declares it through this macro.
#ifdef PIXELRNN_EMU
#define PIXELRNN_DYNAMIC_SHARED(type, name) PIXELRNN_EMU_DYNAMIC_SHARED(type, name)
#else
#define PIXELRNN_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// A static shared array, declared inside a kernel or device function:
// `PIXELRNN_SHARED(float, tile, [32][33]);` then tile[i][j], as `__shared__ float tile[32][33]`.
// 16-byte aligned (128-bit shared loads may read it). The emulator keeps these arrays in a
// per-worker arena instead of thread-local storage (kernels/emu/cuda_emu.h says why), so
// every kernel declares them through this macro; a plain `__shared__` does not compile there.
#ifdef PIXELRNN_EMU
#define PIXELRNN_SHARED(type, name, dims) PIXELRNN_EMU_SHARED(type, name, dims)
#else
#define PIXELRNN_SHARED(type, name, dims) __shared__ __align__(16) type name dims
#endif

#define PIXELRNN_WARP 32
#define PIXELRNN_BLOCK 256
#define PIXELRNN_FULL_MASK 0xffffffffu

#define PIXELRNN_DEVICE __device__ __forceinline__
#define PIXELRNN_KERNEL extern "C" __global__

typedef long long pixelrnn_index_t;

// Multi-tensor launches (optim_*_multi, reduce_sum_squares_multi): one block per row of a chunk
// table of PIXELRNN_MULTI_ROW 8-byte words, [4 device pointers, start, end], each row at most
// PIXELRNN_MULTI_CHUNK elements of one tensor. The host builds the table with the same two
// constants (src/backend/cuda/multi_tensor.rs, checked against these in its tests).
#define PIXELRNN_MULTI_ROW 6
#define PIXELRNN_MULTI_CHUNK 16384

// Largest finite float; -PIXELRNN_FLT_MAX is the identity of a max reduction that is safe to
// subtract from (unlike -inf, which gives nan for -inf - -inf).
#define PIXELRNN_FLT_MAX 3.402823466e+38f

PIXELRNN_DEVICE int pixelrnn_ceil_div(int a, int b) { return (a + b - 1) / b; }

// Global index of this thread in a 1-D launch, and the stride of a grid-stride loop.
PIXELRNN_DEVICE pixelrnn_index_t pixelrnn_global_thread() {
    return (pixelrnn_index_t)blockIdx.x * blockDim.x + threadIdx.x;
}
PIXELRNN_DEVICE pixelrnn_index_t pixelrnn_grid_stride() {
    return (pixelrnn_index_t)gridDim.x * blockDim.x;
}

// Butterfly reductions over a full warp: every lane gets the result.
PIXELRNN_DEVICE float pixelrnn_warp_sum(float v) {
#pragma unroll
    for (int offset = PIXELRNN_WARP / 2; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(PIXELRNN_FULL_MASK, v, offset);
    }
    return v;
}

PIXELRNN_DEVICE float pixelrnn_warp_max(float v) {
#pragma unroll
    for (int offset = PIXELRNN_WARP / 2; offset > 0; offset >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(PIXELRNN_FULL_MASK, v, offset));
    }
    return v;
}

// Block-wide sum for blockDim.x a multiple of 32 (at most 1024); every thread gets the result.
// `scratch` is __shared__ float[32]. Contains __syncthreads(): call from all threads.
PIXELRNN_DEVICE float pixelrnn_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const int warp = threadIdx.x / PIXELRNN_WARP;
    const int warps = blockDim.x / PIXELRNN_WARP;
    v = pixelrnn_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return pixelrnn_warp_sum(v);
}

// Block-wide max, same contract as pixelrnn_block_sum.
PIXELRNN_DEVICE float pixelrnn_block_max(float v, float* scratch) {
    const int lane = threadIdx.x % PIXELRNN_WARP;
    const int warp = threadIdx.x / PIXELRNN_WARP;
    const int warps = blockDim.x / PIXELRNN_WARP;
    v = pixelrnn_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -PIXELRNN_FLT_MAX;
    return pixelrnn_warp_max(v);
}

// Numerically stable activations, shared by the losses and the LSTM cells.
PIXELRNN_DEVICE float pixelrnn_sigmoid(float x) {
    // exp of a non-positive argument only: no overflow for large |x|.
    if (x >= 0.0f) {
        return 1.0f / (1.0f + expf(-x));
    }
    const float e = expf(x);
    return e / (1.0f + e);
}

// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
PIXELRNN_DEVICE float pixelrnn_softplus(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

// The LSTM cell of one unit, forward: from the pre-activations of its gates (o, f, i, g) and
// the previous cell `cp` (0 where there is none), writes the cell, the hidden state and, when
// `gates_out` is not null, the activated gates (gates_out[0], [hidden], [2*hidden],
// [3*hidden]). Every recurrence kernel (unfused gates, fused step, persistent, one position)
// calls this one function, so they agree bit for bit. CPU twin: cell_forward in
// src/backend/cpu/lstm.rs.
PIXELRNN_DEVICE void pixelrnn_lstm_cell_fwd(float po, float pf, float pi, float pg, float cp,
                                            float* gates_out, int hidden, float* c_out,
                                            float* h_out) {
    const float og = pixelrnn_sigmoid(po);
    const float fg = pixelrnn_sigmoid(pf);
    const float ig = pixelrnn_sigmoid(pi);
    const float gg = tanhf(pg);
    const float cu = fg * cp + ig * gg;
    if (gates_out != 0) {
        gates_out[0] = og;
        gates_out[hidden] = fg;
        gates_out[2 * hidden] = ig;
        gates_out[3 * hidden] = gg;
    }
    *c_out = cu;
    *h_out = og * tanhf(cu);
}

// The LSTM cell of one unit, backward: `g` points at its activated gate o (f, i, g `hidden`
// apart), `c` is its cell, `cp` the previous cell (0 where there is none), `dh_tot` the whole
// gradient reaching its hidden state, `dc_in` the cell gradient from the next step. Writes the
// pre-activation gradients d[0], d[hidden], d[2*hidden], d[3*hidden] and returns the gradient
// for the previous cell. CPU twin: cell_backward in src/backend/cpu/lstm.rs.
PIXELRNN_DEVICE float pixelrnn_lstm_cell_bwd(const float* g, int hidden, float c, float cp,
                                             float dh_tot, float dc_in, float* d) {
    const float og = g[0];
    const float fg = g[hidden];
    const float ig = g[2 * hidden];
    const float gg = g[3 * hidden];
    const float tc = tanhf(c);
    const float dc = dc_in + dh_tot * og * (1.0f - tc * tc);
    d[0] = dh_tot * tc * og * (1.0f - og);
    d[hidden] = dc * cp * fg * (1.0f - fg);
    d[2 * hidden] = dc * gg * ig * (1.0f - ig);
    d[3 * hidden] = dc * ig * (1.0f - gg * gg);
    return dc * fg;
}

// Staging of an LSTM state-to-state weight in shared memory by the persistent kernels. The
// weight is [4h, h, .., taps] in global memory, element e = (o*h + v)*taps + t with o = x*h + u
// (Row LSTM: [4h, h, 1, k], taps = k; Diagonal LSTM: [4h, h, 2, 1], taps = 2). Read in global
// order (coalesced), written transposed so that the lanes of a warp (consecutive units) read
// consecutive words. Call from every thread of the block, then __syncthreads().
//   forward:  w_s[(t*h + v)*4h + o]   (the product over inputs v for outputs o)
//   backward: w_s[(t*4h + o)*h + v]   (the transposed product, over outputs o for inputs v)
PIXELRNN_DEVICE void pixelrnn_lstm_stage_weights(const float* __restrict__ w, float* w_s,
                                                 int hidden, int taps, bool transposed) {
    const int g4 = 4 * hidden;
    const int total = g4 * hidden * taps;
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
        const int t = e % taps;
        const int v = (e / taps) % hidden;
        const int o = e / (taps * hidden);
        w_s[transposed ? (t * g4 + o) * hidden + v : (t * hidden + v) * g4 + o] = w[e];
    }
}
