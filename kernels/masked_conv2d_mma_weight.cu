// masked_conv2d_mma_weight.cu: tensor-core (mma.sync) versions of masked_conv2d's weight (and
// bias) gradient: bwd_weight v2's split-K implicit GEMM (kernels/masked_conv2d.cu) on the
// tensor cores, finished by the same fixed-order reduction, masked_conv2d_bwd_weight_reduce_v1
// (which applies the mask and writes dw [cout, cin, kh, kw] and db). CPU twin: the CPU
// backend's masked_conv2d backward at the same precision; host side:
// src/backend/cuda/masked_conv2d.rs.
//
// Versions:
//   bwd_weight_tf32 v1: part[s, o, c] = sum over the positions p of split s of dy[p, o] *
//                       x[p + off(t), i] (c = t * cin + i): M = cout, N = live taps x cin,
//                       K = positions; 128 x 64 block tiles of 8 warps (32 x 32 each,
//                       mma.m16n8k8 .tf32), K in chunks of 16 positions; both operands rounded
//                       to tf32 when staged, fp32 accumulation; the bias partials
//                       part_db[s, o] = sum of dy[p, o] in fp32 from the unrounded dy (the bias
//                       gradient is a reduction, not a GEMM: it stays fp32).
//   bwd_weight_bf16 v1: the same with mma.m16n8k16 .bf16, operands rounded to bf16.
#include "common.cuh"
#include "masked_conv2d_mma.cuh"

// The loader of the weight gradient. A[o][k] = dy[(pk + k) * cout + o]: thread (ob = tid / 4,
// kb = tid % 4) loads output features ob and ob + 64 at positions 4j + kb, j < 4; a warp reads
// 4 positions x 8 consecutive features (one sector each) and stores them into 32 distinct banks
// of the [o][k] tile. B[c][k] = x[(pk + k + off(t)) * cin + i] for the thread's one column
// c = c0 + tid / 4 (tap t, input feature i decoded once) at positions 4j + kb, j < 4, 0 outside
// the map. The (row, column) of each of its positions is advanced incrementally, without a
// division in the K loop.
template <int P>
struct McmWeightLoader {
    const float* __restrict__ x;
    const float* __restrict__ dy;
    pixelrnn_index_t p_end, cur;
    int cin, cout, height, width;
    int o_a, i_b, tap_dy, tap_dx, ob, kb;
    bool col_ok, bias_block;
    pixelrnn_index_t tap_shift;
    int yy[4], xx[4];
    float va[8], vb[4];
    float bsum[2];

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
            for (int h = 0; h < 2; ++h) {
                const int o = o_a + 64 * h;
                const float v = in && o < cout ? dy[p * cout + o] : 0.0f;
                va[2 * j + h] = v;
                if (bias_block) bsum[h] += v;
            }
            const int iy = yy[j] + tap_dy, ix = xx[j] + tap_dx;
            const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
            vb[j] = in && col_ok && inside ? x[(p + tap_shift) * cin + i_b] : 0.0f;
        }
    }

    PIXELRNN_DEVICE void store(float (*As)[McmPrec<P>::PITCH], float (*Bs)[McmPrec<P>::PITCH]) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            As[ob][4 * j + kb] = mcm_round<P>(va[2 * j]);
            As[ob + 64][4 * j + kb] = mcm_round<P>(va[2 * j + 1]);
            Bs[ob][4 * j + kb] = mcm_round<P>(vb[j]);
        }
    }
};

// Block (s, bn, bm): positions [s * chunk, min((s + 1) * chunk, n*H*W)), output features
// bm * 128.., columns bn * 64..; writes its whole partial tile (zeros past the edges) and, for
// bn = 0, the bias partials of its 128 features.
template <int P>
PIXELRNN_DEVICE void masked_conv2d_mma_weight(const float* __restrict__ x,
                                              const float* __restrict__ dy,
                                              float* __restrict__ part,
                                              float* __restrict__ part_db, int n, int height,
                                              int width, int cin, int cout, int kh, int kw,
                                              int taps, pixelrnn_index_t chunk) {
    const int tid = threadIdx.x;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end = p_begin + chunk < positions ? p_begin + chunk : positions;
    const int o0 = blockIdx.z * MCM_M, c0 = blockIdx.y * MCM_N;
    const int ld_m = gridDim.z * MCM_M, ld_n = gridDim.y * MCM_N;
    McmWeightLoader<P> ld;
    ld.x = x;
    ld.dy = dy;
    ld.p_end = p_end;
    ld.cur = p_begin;
    ld.cin = cin;
    ld.cout = cout;
    ld.height = height;
    ld.width = width;
    ld.ob = tid / 4;
    ld.kb = tid % 4;
    ld.o_a = o0 + ld.ob;
    const int c = c0 + ld.ob;
    ld.col_ok = c < taps * cin;
    const int t = ld.col_ok ? c / cin : 0;
    ld.i_b = ld.col_ok ? c - t * cin : 0;
    ld.tap_dy = t / kw - kh / 2;
    ld.tap_dx = t % kw - kw / 2;
    ld.tap_shift = (pixelrnn_index_t)ld.tap_dy * width + ld.tap_dx;
    ld.bias_block = blockIdx.y == 0;
    ld.bsum[0] = ld.bsum[1] = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const pixelrnn_index_t p = p_begin + 4 * j + ld.kb;
        ld.xx[j] = (int)(p % width);
        ld.yy[j] = (int)((p / width) % height);
    }
    float acc[2][4][4];
    mcm_gemm<P>(ld, p_begin, p_end, acc);

    // The whole tile (mcm_store_tile).
    float* tile = part + ((pixelrnn_index_t)blockIdx.x * ld_m + o0) * ld_n + c0;
    mcm_store_tile(tile, ld_n, acc);
    if (ld.bias_block) {  // uniform over the block: every lane of every warp shuffles
        // The 4 lanes of one feature pair (kb = 0..3, adjacent lanes) meet in a fixed order.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float v = ld.bsum[h];
            v += __shfl_xor_sync(PIXELRNN_FULL_MASK, v, 1);
            v += __shfl_xor_sync(PIXELRNN_FULL_MASK, v, 2);
            if (ld.kb == 0) {
                part_db[(pixelrnn_index_t)blockIdx.x * ld_m + o0 + ld.ob + 64 * h] = v;
            }
        }
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(max(taps*cin, 1) / 64),
// ceil(cout / 128)); `chunk` positions per split (a multiple of 16). Partials as
// masked_conv2d_bwd_weight_v2's with ld_m = gridDim.z * 128, ld_n = gridDim.y * 64, summed by
// masked_conv2d_bwd_weight_reduce_v1. Operands rounded to tf32.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_tf32_v1(const float* __restrict__ x, const float* __restrict__ dy,
                                 float* __restrict__ part, float* __restrict__ part_db, int n,
                                 int height, int width, int cin, int cout, int kh, int kw,
                                 int taps, pixelrnn_index_t chunk) {
    masked_conv2d_mma_weight<MCM_TF32>(x, dy, part, part_db, n, height, width, cin, cout, kh,
                                       kw, taps, chunk);
}

// Launch: as masked_conv2d_bwd_weight_tf32_v1; operands rounded to bf16.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_bf16_v1(const float* __restrict__ x, const float* __restrict__ dy,
                                 float* __restrict__ part, float* __restrict__ part_db, int n,
                                 int height, int width, int cin, int cout, int kh, int kw,
                                 int taps, pixelrnn_index_t chunk) {
    masked_conv2d_mma_weight<MCM_BF16>(x, dy, part, part_db, n, height, width, cin, cout, kh,
                                       kw, taps, chunk);
}
