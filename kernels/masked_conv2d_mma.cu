// masked_conv2d_mma.cu: tensor-core (mma.sync) versions of masked_conv2d's forward and input
// gradient, implicit GEMMs like fwd v3 / bwd_data v3 of kernels/masked_conv2d.cu, from the same
// packed weights (masked_conv2d_pack_v1: [taps * cin, cout]; masked_conv2d_pack_transposed_v1:
// [taps * cout, cin]; masked entries already 0, so no mask logic here). CPU twin: the CPU
// backend's masked_conv2d at the same precision (src/backend/cpu/masked_conv2d_precision.rs:
// the operands rounded, fp32 accumulation); host side: src/backend/cuda/masked_conv2d.rs
// (selected by the backend's precision, src/backend/precision.rs); weight gradient:
// kernels/masked_conv2d_mma_weight.cu.
//
// Versions:
//   fwd_tf32 v1:      y = conv(x, w) + b as out[m, q] = sum over kk = t*cin + i of x[m + off(t),
//                     i] * packed[kk, q]: 128 positions x 64 output features per block of 256
//                     threads (8 warps of 32 x 32, mma.m16n8k8 .tf32), K in chunks of 16,
//                     gathered and rounded to tf32 (cvt.rna) into double-buffered shared tiles
//                     (kernels/masked_conv2d_mma.cuh); fp32 accumulation, bias added in fp32.
//   fwd_bf16 v1:      the same with mma.m16n8k16 .bf16, operands rounded to bf16 (nearest even).
//   bwd_data_tf32 v1: dx from dy and the transposed packing (dy gathered at -tap offsets,
//                     K = live taps x cout), tf32 as fwd_tf32 v1.
//   bwd_data_bf16 v1: the same in bf16.
// The default precision is fp32 (fwd v3 / bwd_data v3); these run when the backend's precision
// is tf32 or bf16.
#include "common.cuh"
#include "masked_conv2d_mma.cuh"

// The loader of the forward and the input gradient: the gathered tile A[m][k] = src[(m + dir *
// off(tap of k)) * src_c + s] (0 outside the map, past the last position or past K), the packed
// tile B[q][k] = packed[k * out_c + q]. A: thread (ml = tid / 16, kl = tid % 16) loads rows
// ml + 16j, j < 8, at column kl: a warp reads 2 rows x 16 consecutive k (runs of 64 bytes when
// src_c >= 16). B: thread (qb = tid / 4, kb = tid % 4) loads k = 4j + kb, j < 4, at column qb:
// a warp reads 4 k x 8 consecutive q (one 32-byte sector each) and stores them into 32
// distinct banks of the [q][k] tile (pitch 20; 2-way for bf16's 24).
template <int P>
struct McmConvLoader {
    const float* __restrict__ src;
    const float* __restrict__ packed;
    int src_c, out_c, k_total, dir, height, width, kh, kw, q0;
    int kl, ml, qb, kb;
    int yy[8], xx[8];
    pixelrnn_index_t pos[8];
    float va[8], vb[4];

    PIXELRNN_DEVICE void load(pixelrnn_index_t k0) {
        const int kk = (int)k0 + kl;
        const bool k_ok = kk < k_total;
        const int tap = k_ok ? kk / src_c : 0;
        const int s = kk - tap * src_c;
        const int ky = tap / kw;
        const int tdy = dir * (ky - kh / 2), tdx = dir * (tap - ky * kw - kw / 2);
        const pixelrnn_index_t shift = (pixelrnn_index_t)tdy * width + tdx;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int iy = yy[j] + tdy, ix = xx[j] + tdx;
            const bool inside = k_ok && iy >= 0 && iy < height && ix >= 0 && ix < width;
            va[j] = inside ? src[(pos[j] + shift) * src_c + s] : 0.0f;
        }
        const int q = q0 + qb;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int k = (int)k0 + 4 * j + kb;
            vb[j] = k < k_total && q < out_c ? packed[(pixelrnn_index_t)k * out_c + q] : 0.0f;
        }
    }

    PIXELRNN_DEVICE void store(float (*As)[McmPrec<P>::PITCH], float (*Bs)[McmPrec<P>::PITCH]) {
#pragma unroll
        for (int j = 0; j < 8; ++j) As[ml + 16 * j][kl] = mcm_round<P>(va[j]);
#pragma unroll
        for (int j = 0; j < 4; ++j) Bs[qb][4 * j + kb] = mcm_round<P>(vb[j]);
    }
};

// out[m, q] (+ bias[q]) for the block's tile: positions blockIdx.x * 128.., features
// blockIdx.y * 64... Forward: src = x, dir = +1; input gradient: src = dy, dir = -1.
template <int P>
PIXELRNN_DEVICE void masked_conv2d_mma_conv(const float* __restrict__ src, int src_c, int dir,
                                            const float* __restrict__ packed,
                                            const float* __restrict__ bias,
                                            float* __restrict__ out, int out_c, int n,
                                            int height, int width, int kh, int kw, int taps) {
    const int tid = threadIdx.x;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t m0 = (pixelrnn_index_t)blockIdx.x * MCM_M;
    McmConvLoader<P> ld;
    ld.src = src;
    ld.packed = packed;
    ld.src_c = src_c;
    ld.out_c = out_c;
    ld.k_total = taps * src_c;
    ld.dir = dir;
    ld.height = height;
    ld.width = width;
    ld.kh = kh;
    ld.kw = kw;
    ld.q0 = blockIdx.y * MCM_N;
    ld.kl = tid % 16;
    ld.ml = tid / 16;
    ld.qb = tid / 4;
    ld.kb = tid % 4;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const pixelrnn_index_t p = m0 + ld.ml + 16 * j;
        ld.pos[j] = p;
        ld.xx[j] = (int)(p % width);
        ld.yy[j] = p < positions ? (int)((p / width) % height) : MCM_FAR;
    }
    float acc[2][4][4];
    mcm_gemm<P>(ld, 0, ld.k_total, acc);
    // Each thread holds pairs of adjacent columns (2t, 2t + 1): one 8-byte store per pair when
    // out_c is even (aligned; a warp then writes 8 rows x 32 contiguous bytes), else two.
    const bool pairs = (out_c & 1) == 0;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const pixelrnn_index_t m = m0 + mcm_row(mi, 2 * h);
                const int q = ld.q0 + mcm_col(ni, 0);  // even
                if (m >= positions || q >= out_c) continue;
                float* o = out + m * out_c + q;
                const float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
                if (pairs) {
                    const float2 bq = bias ? *reinterpret_cast<const float2*>(bias + q)
                                           : make_float2(0.0f, 0.0f);
                    *reinterpret_cast<float2*>(o) = make_float2(v0 + bq.x, v1 + bq.y);
                } else {
                    o[0] = v0 + (bias ? bias[q] : 0.0f);
                    if (q + 1 < out_c) o[1] = v1 + (bias ? bias[q + 1] : 0.0f);
                }
            }
        }
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 128), ceil(cout / 64)).
// y = conv(x, w) + b from `packed` = masked_conv2d_pack_v1(w), operands rounded to tf32.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_tf32_v1(const float* __restrict__ x, const float* __restrict__ packed,
                          const float* __restrict__ b, float* __restrict__ y, int n, int height,
                          int width, int cin, int cout, int kh, int kw, int taps) {
    masked_conv2d_mma_conv<MCM_TF32>(x, cin, 1, packed, b, y, cout, n, height, width, kh, kw,
                                     taps);
}

// Launch: as masked_conv2d_fwd_tf32_v1; operands rounded to bf16.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_bf16_v1(const float* __restrict__ x, const float* __restrict__ packed,
                          const float* __restrict__ b, float* __restrict__ y, int n, int height,
                          int width, int cin, int cout, int kh, int kw, int taps) {
    masked_conv2d_mma_conv<MCM_BF16>(x, cin, 1, packed, b, y, cout, n, height, width, kh, kw,
                                     taps);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 128), ceil(cin / 64)).
// dx from `packed` = masked_conv2d_pack_transposed_v1(w), operands rounded to tf32.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_tf32_v1(const float* __restrict__ dy, const float* __restrict__ packed,
                               float* __restrict__ dx, int n, int height, int width, int cin,
                               int cout, int kh, int kw, int taps) {
    masked_conv2d_mma_conv<MCM_TF32>(dy, cout, -1, packed, nullptr, dx, cin, n, height, width,
                                     kh, kw, taps);
}

// Launch: as masked_conv2d_bwd_data_tf32_v1; operands rounded to bf16.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_bf16_v1(const float* __restrict__ dy, const float* __restrict__ packed,
                               float* __restrict__ dx, int n, int height, int width, int cin,
                               int cout, int kh, int kw, int taps) {
    masked_conv2d_mma_conv<MCM_BF16>(dy, cout, -1, packed, nullptr, dx, cin, n, height, width,
                                     kh, kw, taps);
}
