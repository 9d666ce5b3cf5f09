// reduce.cu: sums of a whole buffer accumulated in f64: `sum` (metrics) and `sum_squares`
// (the global gradient norm of clipping). CPU twins: sum and sum_squares in
// src/backend/cpu/elementwise.rs (rayon, f64).
//
// Entry points: reduce_sum_fwd_v<N> and reduce_sum_squares_fwd_v<N> (first pass),
// reduce_sum_squares_multi_v<N> (the first pass of the global norm over every tensor of the
// model in one launch, from a chunk table:
// src/backend/cuda/multi_tensor.rs), reduce_finish_v<N> (second pass, shared) and
// reduce_finish_checked_v<N> (the same, carrying a loss's target-check flag in the result, so
// that one download returns both: src/backend/cuda/loss_targets.rs). Version chosen per
// family ("reduce").
//
// Versions:
//   v1: two passes. sum_fwd / sum_squares_fwd: each thread accumulates its grid-stride share
//       in double, the block reduces in shared memory (double, tree) and writes one double
//       partial per block; finish: one block sums the partials into one double. Every
//       addition is in f64, so the result agrees with the CPU's f64 sum to ~1e-14 relative
//       (only the order of the additions differs). sum_squares_multi: one block per chunk
//       table row (at most PIXELRNN_MULTI_CHUNK elements of one tensor), one partial per row.
//
// Buffers of doubles are float buffers of twice the length viewed as double* (the host
// allocates 2 floats per double and reassembles the bits after download).
#include "common.cuh"

// Tree reduction of one double per thread over the block (blockDim.x == PIXELRNN_BLOCK, a
// power of two); thread 0 gets the total. Contains __syncthreads(): call from all threads.
PIXELRNN_DEVICE double reduce_block_sum_f64(double v, double* scratch) {
    scratch[threadIdx.x] = v;
    __syncthreads();
#pragma unroll
    for (int half = PIXELRNN_BLOCK / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) {
            scratch[threadIdx.x] += scratch[threadIdx.x + half];
        }
        __syncthreads();
    }
    return scratch[0];
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = blocks (at most the partials' length),
// e.g. min(ceil(n / 256), 1024). Writes partials[blockIdx.x].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
reduce_sum_fwd_v1(const float* __restrict__ x, double* __restrict__ partials,
                  pixelrnn_index_t n) {
    PIXELRNN_SHARED(double, scratch, [PIXELRNN_BLOCK]);
    double acc = 0.0;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        acc += (double)x[i];
    }
    const double total = reduce_block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Launch: as reduce_sum_fwd_v1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
reduce_sum_squares_fwd_v1(const float* __restrict__ x, double* __restrict__ partials,
                          pixelrnn_index_t n) {
    PIXELRNN_SHARED(double, scratch, [PIXELRNN_BLOCK]);
    double acc = 0.0;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t i = pixelrnn_global_thread(); i < n; i += stride) {
        const double v = (double)x[i];
        acc += v * v;  // exact: the square of a float fits a double's mantissa
    }
    const double total = reduce_block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = 1. out[0] = sum of partials[0..count).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
reduce_finish_v1(const double* __restrict__ partials, double* __restrict__ out,
                 int count) {
    PIXELRNN_SHARED(double, scratch, [PIXELRNN_BLOCK]);
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        acc += partials[i];
    }
    const double total = reduce_block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) out[0] = total;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = chunks (one block per chunk table row:
// [x, unused, unused, unused, start, end]). Writes partials[blockIdx.x]: the sum of squares of
// the row's elements; reduce_finish_v1 over all rows gives the global gradient norm's square.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
reduce_sum_squares_multi_v1(const long long* __restrict__ table,
                            double* __restrict__ partials) {
    PIXELRNN_SHARED(double, scratch, [PIXELRNN_BLOCK]);
    const long long* row = table + (pixelrnn_index_t)blockIdx.x * PIXELRNN_MULTI_ROW;
    const float* x = reinterpret_cast<const float*>(static_cast<unsigned long long>(row[0]));
    const pixelrnn_index_t end = row[5];
    double acc = 0.0;
    for (pixelrnn_index_t i = row[4] + threadIdx.x; i < end; i += blockDim.x) {
        const double v = (double)x[i];
        acc += v * v;
    }
    const double total = reduce_block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = 1. As reduce_finish_v1, and the 4-byte word
// flag[0] (a loss's target check: 0 or 1) copied to out's third word (out is 4 floats: the
// double total, the flag, 0), so that the host learns both in one download.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
reduce_finish_checked_v1(const double* __restrict__ partials, double* __restrict__ out,
                         int count, const float* __restrict__ flag) {
    PIXELRNN_SHARED(double, scratch, [PIXELRNN_BLOCK]);
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
        acc += partials[i];
    }
    const double total = reduce_block_sum_f64(acc, scratch);
    if (threadIdx.x == 0) {
        out[0] = total;
        float* words = reinterpret_cast<float*>(out);
        words[2] = flag[0];
        words[3] = 0.0f;
    }
}
