// masked_conv2d_mma.cuh: the tensor-core implicit GEMM shared by kernels/masked_conv2d_mma.cu
// (fwd, bwd_data) and kernels/masked_conv2d_mma_weight.cu (bwd_weight), written once for both
// precisions: the block tile, the warp tile of mma.sync fragments (kernels/mma.cuh) and the
// double-buffered main loop; the two files supply the loaders (what an element of each tile
// is).
//
// Block tile: MCM_M rows x MCM_N columns of the output, K in chunks of MCM_K, 256 threads = 8
// warps as 4 (rows) x 2 (columns), each warp 32 x 32 = 2 x 4 mma tiles of 16 x 8 (32 fp32
// accumulators per thread). Both operands sit in shared memory K-contiguous, A as [row][k] and
// B as [column][k] (the "row.col" operands of mma.sync), already rounded to the precision by
// the loader that stored them, so a fragment is read without conversion: tf32 as the float's
// bits, bf16 as two floats' upper halves packed into one register. Row pitch (floats): 20 for
// tf32, so that a fragment read (lane g*4+t at row g, column t) hits banks 20g + t mod 32, all
// 32 distinct; 24 for bf16, whose 8-byte pairs (row g, columns 2t, 2t+1) are served per half
// warp, 24g + 2t over g < 4 distinct. Double buffering: the next chunk is loaded into registers
// while the warps multiply this one, then stored into the other buffer; one barrier per chunk.
#pragma once

#include "common.cuh"
#include "mma.cuh"

#define MCM_TF32 0
#define MCM_BF16 1
#define MCM_M 128
#define MCM_N 64
#define MCM_K 16
// Row index of the tile rows past the last position: outside the map under every tap (as
// MASKED_CONV2D_FAR; the host limits maps and kernels to far less).
#define MCM_FAR (1 << 29)

template <int P>
struct McmPrec;
template <>
struct McmPrec<MCM_TF32> {
    static constexpr int PITCH = 20;
    static constexpr int KSTEP = 8;  // m16n8k8
};
template <>
struct McmPrec<MCM_BF16> {
    static constexpr int PITCH = 24;
    static constexpr int KSTEP = 16;  // m16n8k16
};

// An operand element as the tensor cores will see it (rounded once, when staged).
template <int P>
PIXELRNN_DEVICE float mcm_round(float x) {
    return P == MCM_TF32 ? pixelrnn_round_tf32(x) : pixelrnn_round_bf16(x);
}

// Two adjacent bf16 values of a tile row (an even column: 8-byte aligned, the rows being 96
// bytes apart in 16-byte aligned tiles) as one register: one 8-byte shared load, which a half
// warp's 16 lanes (rows g < 4, columns 2t) serve from 32 distinct banks at pitch 24.
PIXELRNN_DEVICE unsigned mcm_pair(const float* p) {
    const float2 v = *reinterpret_cast<const float2*>(p);
    return pixelrnn_pack_bf16x2(v.x, v.y);
}

// acc[mi][ni] += A rows (warp row wm) x B columns (warp column wn) over one K chunk of the
// shared tiles. Thread (g, t) = (lane >> 2, lane % 4) reads its fragments per kernels/mma.cuh.
template <int P>
PIXELRNN_DEVICE void mcm_chunk(float (*As)[McmPrec<P>::PITCH], float (*Bs)[McmPrec<P>::PITCH],
                               float acc[2][4][4], int wm, int wn, int g, int t) {
#pragma unroll
    for (int ks = 0; ks < MCM_K; ks += McmPrec<P>::KSTEP) {
        unsigned af[2][4], bq[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
            const float* r0 = As[wm * 32 + mi * 16 + g];
            const float* r1 = As[wm * 32 + mi * 16 + g + 8];
            if (P == MCM_TF32) {
                af[mi][0] = pixelrnn_float_bits(r0[ks + t]);
                af[mi][1] = pixelrnn_float_bits(r1[ks + t]);
                af[mi][2] = pixelrnn_float_bits(r0[ks + t + 4]);
                af[mi][3] = pixelrnn_float_bits(r1[ks + t + 4]);
            } else {
                af[mi][0] = mcm_pair(r0 + ks + 2 * t);
                af[mi][1] = mcm_pair(r1 + ks + 2 * t);
                af[mi][2] = mcm_pair(r0 + ks + 2 * t + 8);
                af[mi][3] = mcm_pair(r1 + ks + 2 * t + 8);
            }
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const float* c = Bs[wn * 32 + ni * 8 + g];
            if (P == MCM_TF32) {
                bq[ni][0] = pixelrnn_float_bits(c[ks + t]);
                bq[ni][1] = pixelrnn_float_bits(c[ks + t + 4]);
            } else {
                bq[ni][0] = mcm_pair(c + ks + 2 * t);
                bq[ni][1] = mcm_pair(c + ks + 2 * t + 8);
            }
        }
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                if (P == MCM_TF32) {
                    pixelrnn_mma_tf32_m16n8k8(acc[mi][ni], af[mi], bq[ni], acc[mi][ni]);
                } else {
                    pixelrnn_mma_bf16_m16n8k16(acc[mi][ni], af[mi], bq[ni], acc[mi][ni]);
                }
            }
        }
    }
}

// The block's GEMM over K indices [k_begin, k_end) in chunks of MCM_K: `ld.load(k0)` fetches
// chunk k0 into the loader's registers (0 past the edges), `ld.store(A, B)` writes them,
// rounded with mcm_round<P>, into one buffer of the shared tiles. Every thread of the block
// calls it (barriers inside). acc[mi][ni][e]: rows wm*32 + mi*16 + g + 8*(e >> 1), columns
// wn*32 + ni*8 + 2t + (e & 1) of the block tile (mcm_row, mcm_col).
template <int P, class Loader>
PIXELRNN_DEVICE void mcm_gemm(Loader& ld, pixelrnn_index_t k_begin, pixelrnn_index_t k_end,
                              float acc[2][4][4]) {
    constexpr int PITCH = McmPrec<P>::PITCH;
    PIXELRNN_SHARED(float, As, [2][MCM_M][PITCH]);
    PIXELRNN_SHARED(float, Bs, [2][MCM_N][PITCH]);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3, wm = warp & 3, wn = warp >> 2;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
        }
    }
    if (k_begin >= k_end) return;  // uniform over the block
    ld.load(k_begin);
    ld.store(As[0], Bs[0]);
    __syncthreads();
    int buf = 0;
    for (pixelrnn_index_t k0 = k_begin; k0 < k_end; k0 += MCM_K) {
        const bool more = k0 + MCM_K < k_end;
        if (more) ld.load(k0 + MCM_K);  // in flight during this chunk's mma
        mcm_chunk<P>(As[buf], Bs[buf], acc, wm, wn, g, t);
        // The other buffer was last read before the previous barrier: free to overwrite.
        if (more) ld.store(As[buf ^ 1], Bs[buf ^ 1]);
        __syncthreads();
        buf ^= 1;
    }
}

// Block-tile row and column of accumulator (mi, ni, e) of this thread (see mcm_gemm).
PIXELRNN_DEVICE int mcm_row(int mi, int e) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    return (warp & 3) * 32 + mi * 16 + (lane >> 2) + 8 * (e >> 1);
}
PIXELRNN_DEVICE int mcm_col(int ni, int e) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    return (warp >> 2) * 32 + ni * 8 + 2 * (lane & 3) + (e & 1);
}

// Stores this thread's accumulators into the whole block tile at `tile` (row pitch `ld_n`
// floats, a multiple of 64 so that every row of the tile is 8-byte aligned), adjacent column
// pairs as 8-byte stores: a warp writes 8 rows x 32 contiguous bytes per store. The split-K
// weight gradients' partial tiles (kernels/masked_conv2d_mma_weight.cu, lstm_mma_weight.cu).
PIXELRNN_DEVICE void mcm_store_tile(float* tile, pixelrnn_index_t ld_n, float acc[2][4][4]) {
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
            for (int s = 0; s < 2; ++s) {
                float* o = tile + (pixelrnn_index_t)mcm_row(mi, 2 * s) * ld_n + mcm_col(ni, 0);
                *reinterpret_cast<float2*>(o) =
                    make_float2(acc[mi][ni][2 * s], acc[mi][ni][2 * s + 1]);
            }
        }
    }
}
