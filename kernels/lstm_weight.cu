// lstm_weight.cu: lstm_ss_bwd_weight_v3 and v4 (v3 through cp.async: wgrad_gemm_async), the
// recurrences' fp32 state-to-state weight gradient
// (both scans) as the split-K implicit GEMM of kernels/wgrad_gemm.cuh, the one
// masked_conv2d_bwd_weight_v2 runs: M = 4h gate rows, N = taps * h (tap, input unit) columns,
// K = n*H*W positions, 128 x 128 block tiles of 256 threads (8x8 micro-tiles, 8 FLOPs per shared
// word), 8 positions per double-buffered chunk with the next chunk's loads in flight during
// the FMAs, the taps decoded once per block (no division in the K loop). The index of every
// version is kernels/lstm.cu's header; v2 (64 x 64 tiles of 64 threads, single-buffered, a
// 64-bit division per load) stays selectable. Its partials [splits, mpad, npad] are v2's, summed
// in split order by lstm_ss_bwd_weight_sum_v2 (deterministic, no atomics).
// CPU twin: src/backend/cpu/lstm.rs (the weight gradient); host side:
// src/backend/cuda/lstm_weight.rs; selection: LstmWeightFp32 in src/backend/cuda/variants/.
#include "wgrad_gemm.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(taps*h / 128),
// ceil(4h / 128)). Block (s, bn, bm) sums positions [s*chunk, min((s+1)*chunk, n*H*W)) (chunk
// a multiple of WGRAD_K; an empty range writes zeros) into
//   partial[(s * mpad + o) * npad + t*h + v] = sum over p of d_is[p, o] * h[src_t(p), v]
// with mpad = gridDim.z * 128, npad = gridDim.y * 128 (every element written, zeros past 4h and
// taps*h: the buffer needs no clearing). The taps, as offsets (rows, columns) to the source:
//   Row LSTM (diagonal = 0, taps = k): (-1, t - k/2), the previous row;
//   Diagonal LSTM (diagonal = 1, taps = 2): t = 0 (-1, 0) above, t = 1 (0, -1) to the left
// (the folded layout's unskewed coordinates, as lstm_ss_bwd_weight_v2).
// ASYNC picks wgrad_gemm_async (v4: 4 cp.async stages) over wgrad_gemm (v3), the same bits.
template <bool ASYNC>
PIXELRNN_DEVICE void lstm_ss_bwd_weight_split(const float* __restrict__ h,
                                              const float* __restrict__ d_is,
                                              float* __restrict__ partial, int n, int height,
                                              int width, int hidden, int taps, int diagonal,
                                              int chunk) {
    PIXELRNN_SHARED(float, dys, [ASYNC ? WGRAD_STAGES : 2][WGRAD_K][WGRAD_M]);
    PIXELRNN_SHARED(float, xs, [ASYNC ? WGRAD_STAGES : 2][WGRAD_K][WGRAD_N]);
    const int g4 = 4 * hidden;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end = p_begin + chunk < positions ? p_begin + chunk : positions;
    const int m0 = blockIdx.z * WGRAD_M;
    const int c0 = blockIdx.y * WGRAD_N;
    const pixelrnn_index_t mpad = (pixelrnn_index_t)gridDim.z * WGRAD_M;
    const int npad = gridDim.y * WGRAD_N;

    // The loader's column: gate row m0 + col of d_is, and (tap, unit) column c0 + col of dw
    // with its tap's offset, fixed for the whole K loop.
    WgradLoader l;
    const int c_ld = wgrad_loader_column(l, m0, c0, g4, taps * hidden);
    const int t = l.col_ok ? c_ld / hidden : 0;
    l.i = l.col_ok ? c_ld - t * hidden : 0;
    l.tap_dy = diagonal ? (t == 0 ? -1 : 0) : -1;
    l.tap_dx = diagonal ? (t == 0 ? 0 : -1) : t - taps / 2;
    l.tap_shift = (pixelrnn_index_t)l.tap_dy * width + l.tap_dx;
    wgrad_loader_rows(l, p_begin, height, width);

    float acc[8][8];
    float unused_bias;  // no bias here: the GEMM's dy column sums go unused
    if (ASYNC) {
        wgrad_gemm_async(h, d_is, dys, xs, acc, false, unused_bias, l, p_begin, p_end, height,
                         width, hidden, g4);
    } else {
        wgrad_gemm(h, d_is, dys, xs, acc, unused_bias, l, p_begin, p_end, height, width, hidden,
                   g4);
    }
    wgrad_store_tile(partial + ((pixelrnn_index_t)blockIdx.x * mpad + m0) * npad + c0, acc, npad);
}

PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
lstm_ss_bwd_weight_v3(const float* __restrict__ h, const float* __restrict__ d_is,
                      float* __restrict__ partial, int n, int height, int width, int hidden,
                      int taps, int diagonal, int chunk) {
    lstm_ss_bwd_weight_split<false>(h, d_is, partial, n, height, width, hidden, taps, diagonal,
                                    chunk);
}

// v3's launch, partials and bits, its tiles staged by cp.async (wgrad_gemm_async).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
lstm_ss_bwd_weight_v4(const float* __restrict__ h, const float* __restrict__ d_is,
                      float* __restrict__ partial, int n, int height, int width, int hidden,
                      int taps, int diagonal, int chunk) {
    lstm_ss_bwd_weight_split<true>(h, d_is, partial, n, height, width, hidden, taps, diagonal,
                                   chunk);
}
