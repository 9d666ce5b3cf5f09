// lstm_mma_weight.cu: the recurrences' state-to-state weight gradient on the tensor cores
// (mma.sync), both scans: lstm_ss_bwd_weight_v2's split-K GEMM (kernels/lstm.cu) with the
// block tile of masked_conv2d_mma.cuh (mcm_gemm), finished by the same fixed-order reduction,
// lstm_ss_bwd_weight_sum_v2 (deterministic, no atomics). CPU twin: the CPU backend's Row /
// Diagonal LSTM backward at the same precision (src/backend/cpu/lstm.rs); host side:
// src/backend/cuda/lstm.rs `weight_gradient`, selected by Variants::lstm_weight.
//
// Versions:
//   ss_bwd_weight_tf32 v2: part[s, o, t*h + v] = sum over the positions p of split s of
//       d_is[p, o] * h[p - back(t), v] (0 where tap t's source is outside the map): M = 4h
//       gate rows, N = taps*h (tap, unit) columns, K = positions; 128 x 64 block tiles of 8
//       warps (32 x 32 each, mma.m16n8k8 .tf32), K in chunks of 16 positions, both operands
//       rounded to tf32 when staged, fp32 accumulation. The gather is v1's (lstm.cu): Row,
//       taps along the previous row with zero padding; Diagonal, the pixel above and the one
//       to the left in the folded layout.
//   ss_bwd_weight_bf16 v2: the same with mma.m16n8k16 .bf16, operands rounded to bf16.
//   ss_bwd_weight_tf32_swapped v2: the mutation check's kernel (A's K columns exchanged
//       within each mma K step, as if A fragment registers 0 <-> 2 and 1 <-> 3 were swapped);
//       tests/cuda/lstm_mma_weight.rs only, never selected by the host.
#include "common.cuh"
#include "masked_conv2d_mma.cuh"

// mcm_gemm's loader. A[o][k] = d_is[(pk + k) * 4h + o]: thread (ob = tid / 4, kb = tid % 4)
// loads gate rows ob and ob + 64 at positions 4j + kb, j < 4 (a warp reads 4 positions x 8
// consecutive rows). B[c][k] = h[(p - back) * h + v] for the thread's one column
// c = c0 + tid / 4 (tap t, unit v, decoded once) at the same positions, 0 where v1 gives 0.
// The (row, column) of each position is advanced incrementally, without a division in the
// K loop. SWAP: see the header.
template <int P, bool SWAP>
struct LstmWgLoader {
    const float* __restrict__ h;
    const float* __restrict__ d_is;
    pixelrnn_index_t p_end, cur, back;
    int g4, hidden, height, width;
    int o_a, v_b, tap_dy, tap_dx, ob, kb;
    bool col_ok;
    int yy[4], xx[4];
    float va[8], vb[4];

    PIXELRNN_DEVICE void load(pixelrnn_index_t pk) {
        if (pk != cur) {  // the next chunk: MCM_K positions on
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                xx[j] += (int)(pk - cur);
                while (xx[j] >= width) {
                    xx[j] -= width;
                    if (++yy[j] == height) yy[j] = 0;
                }
            }
            cur = pk;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const pixelrnn_index_t p = pk + 4 * j + kb;
            const bool in = p < p_end;
#pragma unroll
            for (int s = 0; s < 2; ++s) {
                const int o = o_a + 64 * s;
                va[2 * j + s] = in && o < g4 ? d_is[p * g4 + o] : 0.0f;
            }
            const int jj = xx[j] + tap_dx;
            const bool inside = yy[j] >= tap_dy && jj >= 0 && jj < width;
            vb[j] = in && col_ok && inside ? h[(p - back) * hidden + v_b] : 0.0f;
        }
    }

    PIXELRNN_DEVICE void store(float (*As)[McmPrec<P>::PITCH], float (*Bs)[McmPrec<P>::PITCH]) {
        constexpr int X = SWAP ? McmPrec<P>::KSTEP / 2 : 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            As[ob][(4 * j + kb) ^ X] = mcm_round<P>(va[2 * j]);
            As[ob + 64][(4 * j + kb) ^ X] = mcm_round<P>(va[2 * j + 1]);
            Bs[ob][4 * j + kb] = mcm_round<P>(vb[j]);
        }
    }
};

// Block (s, bn, bm): positions [s * chunk, min((s + 1) * chunk, n*H*W)), gate rows bm * 128..,
// columns bn * 64..; writes its whole partial tile (zeros past the edges).
template <int P, bool SWAP>
PIXELRNN_DEVICE void lstm_mma_weight(const float* __restrict__ h, const float* __restrict__ d_is,
                                     float* __restrict__ partial, int n, int height, int width,
                                     int hidden, int taps, int diagonal,
                                     pixelrnn_index_t chunk) {
    const int tid = threadIdx.x;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end = p_begin + chunk < positions ? p_begin + chunk : positions;
    const int o0 = blockIdx.z * MCM_M, c0 = blockIdx.y * MCM_N;
    const int ld_m = gridDim.z * MCM_M, ld_n = gridDim.y * MCM_N;
    LstmWgLoader<P, SWAP> ld;
    ld.h = h;
    ld.d_is = d_is;
    ld.p_end = p_end;
    ld.cur = p_begin;
    ld.g4 = 4 * hidden;
    ld.hidden = hidden;
    ld.height = height;
    ld.width = width;
    ld.ob = tid / 4;
    ld.kb = tid % 4;
    ld.o_a = o0 + ld.ob;
    const int c = c0 + ld.ob;
    ld.col_ok = c < taps * hidden;
    const int t = ld.col_ok ? c / hidden : 0;
    ld.v_b = ld.col_ok ? c - t * hidden : 0;
    // The tap's offsets exactly as lstm_ss_bwd_weight_body's: source = p - back, live where
    // the position's row is >= dy and its column + dx is inside the map.
    ld.tap_dy = diagonal ? (t == 0 ? 1 : 0) : 1;
    ld.tap_dx = diagonal ? (t == 0 ? 0 : -1) : t - taps / 2;
    ld.back = (pixelrnn_index_t)ld.tap_dy * width - ld.tap_dx;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const pixelrnn_index_t p = p_begin + 4 * j + ld.kb;
        ld.xx[j] = (int)(p % width);
        ld.yy[j] = (int)((p / width) % height);
    }
    float acc[2][4][4];
    mcm_gemm<P>(ld, p_begin, p_end, acc);

    // The whole tile (mcm_store_tile).
    float* tile = partial + ((pixelrnn_index_t)blockIdx.x * ld_m + o0) * ld_n + c0;
    mcm_store_tile(tile, ld_n, acc);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(taps*h / 64),
// ceil(4h / 128)); `chunk` positions per split (a multiple of 16). Partials
// [splits, mpad = gridDim.z * 128, npad = gridDim.y * 64] as lstm_ss_bwd_weight_v2's, summed by
// lstm_ss_bwd_weight_sum_v2. Operands rounded to tf32.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_ss_bwd_weight_tf32_v2(const float* __restrict__ h, const float* __restrict__ d_is,
                           float* __restrict__ partial, int n, int height, int width, int hidden,
                           int taps, int diagonal, int chunk) {
    lstm_mma_weight<MCM_TF32, false>(h, d_is, partial, n, height, width, hidden, taps, diagonal,
                                     chunk);
}

// Launch: as lstm_ss_bwd_weight_tf32_v2; operands rounded to bf16.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_ss_bwd_weight_bf16_v2(const float* __restrict__ h, const float* __restrict__ d_is,
                           float* __restrict__ partial, int n, int height, int width, int hidden,
                           int taps, int diagonal, int chunk) {
    lstm_mma_weight<MCM_BF16, false>(h, d_is, partial, n, height, width, hidden, taps, diagonal,
                                     chunk);
}

// Launch: as lstm_ss_bwd_weight_tf32_v2. The mutant (see the header): never selected.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_ss_bwd_weight_tf32_swapped_v2(const float* __restrict__ h, const float* __restrict__ d_is,
                                   float* __restrict__ partial, int n, int height, int width,
                                   int hidden, int taps, int diagonal, int chunk) {
    lstm_mma_weight<MCM_TF32, true>(h, d_is, partial, n, height, width, hidden, taps, diagonal,
                                    chunk);
}
