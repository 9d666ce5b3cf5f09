// masked_conv2d_packed.cu: the masked_conv2d kernels that run from weights packed once per
// call (the index of every version: kernels/masked_conv2d.cu's header): fwd and bwd_data v3,
// v4, v5 (the 128x128 implicit GEMM; v5 through cp.async), pack v1, v2 and pack_transposed
// v1 (their packings), fwd_at v1 (incremental sampling, from pack v1's layout). CPU twins:
// src/backend/cpu/masked_conv2d.rs and masked_conv2d_at.rs; host side:
// src/backend/cuda/masked_conv2d.rs and masked_conv2d_at.rs.
#include "cp_async.cuh"
#include "masked_conv2d.cuh"

// Tile of fwd v3 and bwd_data v3 (masked_conv2d_gemm3): 128 positions x 128 features per block
// of 256 threads, 8x8 outputs per thread through float4 shared reads (the micro-kernel of
// bwd_weight v2: 8 FLOPs per shared word), K = live taps x source features in chunks of 8,
// register-staged into double-buffered shared tiles. The weights come packed once per call,
// [live taps x source features, output features] with the mask applied, so the K loop has no
// mask test; the tap of each loader column is tracked incrementally (no division in the loop).
#define MASKED_CONV2D_G3_M 128
#define MASKED_CONV2D_G3_N 128
#define MASKED_CONV2D_G3_K 8
// Row pitch of the gathered tile: +4 floats keeps float4 alignment, and puts the stores of a
// warp (8 k x 4 positions) on 32 distinct banks (k * 132 + m = 4k + m mod 32).
#define MASKED_CONV2D_G3_PITCH (MASKED_CONV2D_G3_M + 4)
// Positions each thread gathers per chunk (at one k): 8 k x 128 positions over 256 threads.
#define MASKED_CONV2D_G3_A_LOADS (MASKED_CONV2D_G3_K * MASKED_CONV2D_G3_M / PIXELRNN_BLOCK)
// Packed-weight rows each thread loads per chunk (at one column).
#define MASKED_CONV2D_G3_B_LOADS (MASKED_CONV2D_G3_K * MASKED_CONV2D_G3_N / PIXELRNN_BLOCK)
// Stages of fwd v5 / bwd_data v5's cp.async pipeline: chunks in flight while one is multiplied
// (STAGES - 1 ahead). 4 stages of both tiles: 33 KB of static shared memory, 2 blocks per SM.
#define MASKED_CONV2D_G5_STAGES 4

// The gather position of K index kk = t * src_c + s, kept by one loader thread as it advances
// by 8 per chunk: the source feature s and the tap's kernel row and column (ky, kx).
struct MaskedConv2dTapCursor {
    int s, ky, kx;
};

PIXELRNN_DEVICE void masked_conv2d_cursor_advance(MaskedConv2dTapCursor& c, int step, int src_c,
                                                  int kw) {
    c.s += step;
    while (c.s >= src_c && src_c > 0) {
        c.s -= src_c;
        if (++c.kx == kw) {
            c.kx = 0;
            ++c.ky;
        }
    }
}

// What every 128x128 GEMM (v3, v4, v5) sets up before its first chunk: the block's tile
// (positions m0.., features q0..), this thread's 8x8 outputs (tx, ty), and its gathered-tile
// loader (k = kl at the positions pm + 32j, decoded once into map rows and columns; a row past
// the last position gets a row index far outside the map, so that every tap misses it; the
// tap cursor at kl, which may already pass a tap when src_c < 8).
struct MaskedConv2dG3Block {
    int tid, tx, ty, q0, k_total, kl, ml;
    pixelrnn_index_t positions, m0, pm;
    int yy[MASKED_CONV2D_G3_A_LOADS], xx[MASKED_CONV2D_G3_A_LOADS];
    MaskedConv2dTapCursor cur;
};

PIXELRNN_DEVICE MaskedConv2dG3Block masked_conv2d_g3_block(int src_c, int n, int height,
                                                          int width, int kw, int taps) {
    MaskedConv2dG3Block g;
    g.tid = threadIdx.x;
    g.tx = g.tid % 16;
    g.ty = g.tid / 16;
    g.positions = (pixelrnn_index_t)n * height * width;
    g.m0 = (pixelrnn_index_t)blockIdx.x * MASKED_CONV2D_G3_M;
    g.q0 = blockIdx.y * MASKED_CONV2D_G3_N;
    g.k_total = taps * src_c;
    g.kl = g.tid % MASKED_CONV2D_G3_K;
    g.ml = g.tid / MASKED_CONV2D_G3_K;
    g.pm = g.m0 + g.ml;
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
        const pixelrnn_index_t m = g.pm + 32 * j;
        const bool valid = m < g.positions;
        g.xx[j] = valid ? (int)(m % width) : 0;
        g.yy[j] = valid ? (int)((m / width) % height) : MASKED_CONV2D_FAR;
    }
    g.cur = {g.kl, 0, 0};
    masked_conv2d_cursor_advance(g.cur, 0, src_c, kw);
    return g;
}

// The gathered tile's chunk at K index k0 for one loader thread (k = k0 + kl at `cur`), as
// every 128x128 GEMM reads it: the tap's shift (dir * its offset, in rows and columns), one
// 64-bit base for the thread's 4 positions p = pm + 32j (32 rows of src_c floats apart), and
// whether k is inside K. Element j is src[(p + shift) * src_c + s] where
// masked_conv2d_g3_inside says so, else 0 (outside the map, past the last position, whose row
// is far outside, or past K).
struct MaskedConv2dG3Gather {
    const float* base;
    pixelrnn_index_t step;
    int sy, sx;
    bool k_ok;
};

PIXELRNN_DEVICE MaskedConv2dG3Gather masked_conv2d_g3_gather(
    const float* __restrict__ src, const MaskedConv2dG3Block& g, const MaskedConv2dTapCursor& cur,
    int k0, int dir, int width, int src_c, int kh, int kw) {
    MaskedConv2dG3Gather a;
    a.k_ok = k0 + g.kl < g.k_total;
    a.sy = dir * (cur.ky - kh / 2);
    a.sx = dir * (cur.kx - kw / 2);
    const pixelrnn_index_t shift = (pixelrnn_index_t)a.sy * width + a.sx;
    a.base = src + (g.pm + shift) * src_c + cur.s;
    a.step = (pixelrnn_index_t)32 * src_c;
    return a;
}

PIXELRNN_DEVICE bool masked_conv2d_g3_inside(const MaskedConv2dG3Gather& a,
                                             const MaskedConv2dG3Block& g, int j, int height,
                                             int width) {
    const int iy = g.yy[j] + a.sy, ix = g.xx[j] + a.sx;
    return a.k_ok && iy >= 0 && iy < height && ix >= 0 && ix < width;
}

// One chunk of both tiles into registers. Gathered tile: masked_conv2d_g3_gather's elements;
// a warp takes 8 consecutive k at 4 positions: 4 runs of 8 consecutive words (one sector each
// when src_c is a multiple of 8).
// Packed tile: rows k0 + kb + 2j at column q0 + qb (a warp: 32 consecutive words).
PIXELRNN_DEVICE void masked_conv2d_g3_load(
    const float* __restrict__ src, const float* __restrict__ packed,
    float av[MASKED_CONV2D_G3_A_LOADS], float bv[MASKED_CONV2D_G3_B_LOADS],
    const MaskedConv2dG3Block& g, const MaskedConv2dTapCursor& cur, int k0, int dir, int kb,
    int qf, bool q_ok, int height, int width, int src_c, int out_c, int kh, int kw) {
    const int k_total = g.k_total;
    const MaskedConv2dG3Gather a = masked_conv2d_g3_gather(src, g, cur, k0, dir, width, src_c, kh,
                                                           kw);
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
        av[j] = masked_conv2d_g3_inside(a, g, j, height, width) ? a.base[j * a.step] : 0.0f;
    }
    const int kr = k0 + kb;
    const float* b_base = packed + (pixelrnn_index_t)kr * out_c + qf;
    const pixelrnn_index_t b_step = (pixelrnn_index_t)(PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * out_c;
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
        const int k = kr + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j;
        bv[j] = k < k_total && q_ok ? b_base[j * b_step] : 0.0f;
    }
}

// The accumulators start at the bias (read once, not kept for the epilogue), or at 0.
PIXELRNN_DEVICE void masked_conv2d_g3_start(float acc[8][8], const float* __restrict__ bias,
                                            int q0, int tx, int out_c) {
#pragma unroll
    for (int c = 0; c < 8; ++c) {
        const int q = q0 + (c < 4 ? 0 : 64) + 4 * tx + (c & 3);
        const float b0 = bias != 0 && q < out_c ? bias[q] : 0.0f;
#pragma unroll
        for (int r = 0; r < 8; ++r) acc[r][c] = b0;
    }
}

// The epilogue of every 128x128 GEMM: this thread's 8x8 outputs to out [positions, out_c].
PIXELRNN_DEVICE void masked_conv2d_g3_store(const float acc[8][8], float* __restrict__ out,
                                            pixelrnn_index_t m0, int q0, int tx, int ty,
                                            pixelrnn_index_t positions, int out_c) {
    // Rows 4ty.. and 64 + 4ty.., columns 4tx.. and 64 + 4tx..: float4 stores along the
    // feature row when it is 16-byte aligned (out_c a multiple of 4), else one word each.
    const bool vec = out_c % 4 == 0;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const pixelrnn_index_t m = m0 + (r < 4 ? 0 : 64) + 4 * ty + (r & 3);
        if (m >= positions) continue;
        float* row = out + m * out_c;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int q = q0 + 64 * h + 4 * tx;
            float v[4];
#pragma unroll
            for (int c = 0; c < 4; ++c) v[c] = acc[r][4 * h + c];
            if (vec && q < out_c) {
                *reinterpret_cast<float4*>(row + q) = make_float4(v[0], v[1], v[2], v[3]);
            } else if (!vec) {
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    if (q + c < out_c) row[q + c] = v[c];
                }
            }
        }
    }
}

// The implicit GEMM of fwd v3 and bwd_data v3, written once: out[m, q] (+ bias[q]) = sum over
// kk = t * src_c + s < taps * src_c of src[m + dir * (tap t's offset), s] * packed[kk * out_c
// + q]. Forward: src = x (src_c = cin), dir = +1, packed = masked_conv2d_pack_v1's [taps*cin,
// cout]. Input gradient: src = dy (src_c = cout), dir = -1 (the outputs that read position m
// through tap t), packed = masked_conv2d_pack_transposed_v1's [taps*cout, cin]. Tile of this
// block: positions blockIdx.x * 128.., features blockIdx.y * 128...
template <bool LEAN = false>
PIXELRNN_DEVICE void masked_conv2d_gemm3(const float* __restrict__ src, int src_c, int dir,
                                         const float* __restrict__ packed,
                                         const float* __restrict__ bias, float* __restrict__ out,
                                         int out_c, int n, int height, int width, int kh, int kw,
                                         int taps) {
    PIXELRNN_SHARED(float, as, [2][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_PITCH]);
    PIXELRNN_SHARED(float, bs, [2][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_N]);
    const MaskedConv2dG3Block g = masked_conv2d_g3_block(src_c, n, height, width, kw, taps);
    MaskedConv2dTapCursor cur = g.cur;
    // Packed-tile loader: column q0 + tid % 128, rows tid / 128 + 2j.
    const int qb = g.tid % MASKED_CONV2D_G3_N, kb = g.tid / MASKED_CONV2D_G3_N;
    const int qf = g.q0 + qb;
    const bool q_ok = qf < out_c;

    float acc[8][8];
    masked_conv2d_g3_start(acc, bias, g.q0, g.tx, out_c);
    float av[MASKED_CONV2D_G3_A_LOADS], bv[MASKED_CONV2D_G3_B_LOADS];
    int buf = 0;
    if (g.k_total > 0) {
        masked_conv2d_g3_load(src, packed, av, bv, g, cur, 0, dir, kb, qf, q_ok, height, width,
                              src_c, out_c, kh, kw);
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) as[0][g.kl][g.ml + 32 * j] = av[j];
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
            bs[0][kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j][qb] = bv[j];
        }
    }
    __syncthreads();
    for (int k0 = 0; k0 < g.k_total; k0 += MASKED_CONV2D_G3_K) {
        const bool more = k0 + MASKED_CONV2D_G3_K < g.k_total;
        if (more) {  // the next chunk's loads in flight during this chunk's FMAs
            masked_conv2d_cursor_advance(cur, MASKED_CONV2D_G3_K, src_c, kw);
            masked_conv2d_g3_load(src, packed, av, bv, g, cur, k0 + MASKED_CONV2D_G3_K, dir, kb,
                                  qf, q_ok, height, width, src_c, out_c, kh, kw);
        }
        if (LEAN) {
            // v4: one k at a time, so that fewer shared operands are in flight.
#pragma unroll 1
            for (int k = 0; k < MASKED_CONV2D_G3_K; ++k) {
                masked_conv2d_fma_8x8(acc, as[buf][k], bs[buf][k], g.tx, g.ty);
            }
        } else {
#pragma unroll
            for (int k = 0; k < MASKED_CONV2D_G3_K; ++k) {
                masked_conv2d_fma_8x8(acc, as[buf][k], bs[buf][k], g.tx, g.ty);
            }
        }
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
                as[buf ^ 1][g.kl][g.ml + 32 * j] = av[j];
            }
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
                bs[buf ^ 1][kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j][qb] = bv[j];
            }
        }
        __syncthreads();
        buf ^= 1;
    }

    masked_conv2d_g3_store(acc, out, g.m0, g.q0, g.tx, g.ty, g.positions, out_c);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 128), ceil(cout / 128)).
// y = conv(x, w) + b from `packed` = masked_conv2d_pack_v1(w) ([taps * cin, cout], masked
// entries 0): masked_conv2d_gemm3 with src = x, dir = +1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_v3(const float* __restrict__ x, const float* __restrict__ packed,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm3(x, cin, 1, packed, b, y, cout, n, height, width, kh, kw, taps);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 128), ceil(cin / 128)).
// dx from `packed` = masked_conv2d_pack_transposed_v1(w) ([taps * cout, cin], masked entries
// 0): masked_conv2d_gemm3 with src = dy, dir = -1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_v3(const float* __restrict__ dy, const float* __restrict__ packed,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm3(dy, cout, -1, packed, 0, dx, cin, n, height, width, kh, kw, taps);
}

// fwd v4 and bwd_data v4: v3's kernels (the same masked_conv2d_gemm3, launch and bits) held
// to 128 registers by __launch_bounds__(256, 2), so that two blocks fit an SM: 16 warps per SM
// where v3's 151-153 registers leave room for one block, 8 warps (docs/kernels.md).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_fwd_v4(const float* __restrict__ x, const float* __restrict__ packed,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm3<true>(x, cin, 1, packed, b, y, cout, n, height, width, kh, kw, taps);
}

PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_data_v4(const float* __restrict__ dy, const float* __restrict__ packed,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm3<true>(dy, cout, -1, packed, 0, dx, cin, n, height, width, kh, kw, taps);
}

// One chunk of both tiles of fwd v5 / bwd_data v5 issued as cp.async copies into one stage,
// the elements and the zeros of masked_conv2d_g3_load (a copy whose element is 0 there is a
// zero-fill here, reading nothing; its source is the buffer's base, never an address past
// it). Packed tile: one 16-byte copy per thread (row tid / 32, columns 4 (tid % 32)..: a warp
// copies one row, 512 contiguous bytes) when out_c is a multiple of 4, so that every row is
// 16-byte aligned; else g3_load's 4 word copies.
PIXELRNN_DEVICE void masked_conv2d_g5_issue(
    const float* __restrict__ src, const float* __restrict__ packed,
    float (*as)[MASKED_CONV2D_G3_PITCH], float (*bs)[MASKED_CONV2D_G3_N],
    const MaskedConv2dG3Block& g, const MaskedConv2dTapCursor& cur, int k0, int dir, int height,
    int width, int src_c, int out_c, int kh, int kw) {
    const int k_total = g.k_total, tid = g.tid, q0 = g.q0;
    const MaskedConv2dG3Gather a = masked_conv2d_g3_gather(src, g, cur, k0, dir, width, src_c, kh,
                                                           kw);
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
        const bool ok = masked_conv2d_g3_inside(a, g, j, height, width);
        pixelrnn_cp_async_f32(&as[g.kl][g.ml + 32 * j], ok ? a.base + j * a.step : src, ok);
    }
    if (out_c % 4 == 0) {
        const int row = tid / 32, col = 4 * (tid % 32);
        const int k = k0 + row, q = q0 + col;
        const bool ok = k < k_total && q < out_c;
        const float* from = packed + (pixelrnn_index_t)k * out_c + q;
        pixelrnn_cp_async_f32x4(&bs[row][col], ok ? from : packed, ok);
    } else {
        const int qb = tid % MASKED_CONV2D_G3_N, kb = tid / MASKED_CONV2D_G3_N;
        const bool q_ok = q0 + qb < out_c;
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
            const int r = kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j, k = k0 + r;
            const bool ok = k < k_total && q_ok;
            const float* from = packed + (pixelrnn_index_t)k * out_c + q0 + qb;
            pixelrnn_cp_async_f32(&bs[r][qb], ok ? from : packed, ok);
        }
    }
}

// One step of gemm5's issue side: the chunk at K index `issued`, when there is one, into stage
// (as, bs), the cursor and `issued` moved past it, and its group committed (empty past the last
// chunk, so that the waits' counts hold).
PIXELRNN_DEVICE void masked_conv2d_g5_issue_next(
    const float* __restrict__ src, const float* __restrict__ packed,
    float (*as)[MASKED_CONV2D_G3_PITCH], float (*bs)[MASKED_CONV2D_G3_N],
    const MaskedConv2dG3Block& g, MaskedConv2dTapCursor& cur, int& issued, int dir, int height,
    int width, int src_c, int out_c, int kh, int kw) {
    if (issued < g.k_total) {
        masked_conv2d_g5_issue(src, packed, as, bs, g, cur, issued, dir, height, width, src_c,
                               out_c, kh, kw);
        masked_conv2d_cursor_advance(cur, MASKED_CONV2D_G3_K, src_c, kw);
        issued += MASKED_CONV2D_G3_K;
    }
    pixelrnn_cp_async_commit();
}

// The GEMM of masked_conv2d_gemm3 (the same operands, tile, micro-kernel and FMA order, so the
// same bits) with the tiles staged by cp.async in a MASKED_CONV2D_G5_STAGES-deep pipeline
// instead of through registers: no staging registers, and STAGES - 1 chunks of global loads in
// flight behind the FMAs instead of one. Per chunk c: wait until this thread's copies of
// chunk c have landed, a barrier (everyone's have; and everyone is done with chunk c - 1's
// stage), issue chunk c + STAGES - 1 into that freed stage, then multiply chunk c.
PIXELRNN_DEVICE void masked_conv2d_gemm5(const float* __restrict__ src, int src_c, int dir,
                                         const float* __restrict__ packed,
                                         const float* __restrict__ bias, float* __restrict__ out,
                                         int out_c, int n, int height, int width, int kh, int kw,
                                         int taps) {
    PIXELRNN_SHARED(float, as,
                    [MASKED_CONV2D_G5_STAGES][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_PITCH]);
    PIXELRNN_SHARED(float, bs, [MASKED_CONV2D_G5_STAGES][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_N]);
    const MaskedConv2dG3Block g = masked_conv2d_g3_block(src_c, n, height, width, kw, taps);
    MaskedConv2dTapCursor cur = g.cur;  // at the next chunk to issue
    float acc[8][8];
    masked_conv2d_g3_start(acc, bias, g.q0, g.tx, out_c);

    int issued = 0;  // K index of the next chunk to issue
#pragma unroll
    for (int s = 0; s < MASKED_CONV2D_G5_STAGES - 1; ++s) {
        masked_conv2d_g5_issue_next(src, packed, as[s], bs[s], g, cur, issued, dir, height, width,
                                    src_c, out_c, kh, kw);
    }
    int read = 0, write = MASKED_CONV2D_G5_STAGES - 1;
    for (int k0 = 0; k0 < g.k_total; k0 += MASKED_CONV2D_G3_K) {
        pixelrnn_cp_async_wait<MASKED_CONV2D_G5_STAGES - 2>();
        __syncthreads();
        masked_conv2d_g5_issue_next(src, packed, as[write], bs[write], g, cur, issued, dir,
                                    height, width, src_c, out_c, kh, kw);
        // Not unrolled, as v4: unrolled by 2 or more the forward spills at 128 registers
        // (ptxas, sm_90); rolled it takes 123, the input gradient 122, no spills.
#pragma unroll 1
        for (int k = 0; k < MASKED_CONV2D_G3_K; ++k) {
            masked_conv2d_fma_8x8(acc, as[read][k], bs[read][k], g.tx, g.ty);
        }
        read = read + 1 == MASKED_CONV2D_G5_STAGES ? 0 : read + 1;
        write = write + 1 == MASKED_CONV2D_G5_STAGES ? 0 : write + 1;
    }
    masked_conv2d_g3_store(acc, out, g.m0, g.q0, g.tx, g.ty, g.positions, out_c);
}

// fwd v5 and bwd_data v5: masked_conv2d_gemm5 (v3's launch, operands and bits) at two resident
// blocks per SM, as v4.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_fwd_v5(const float* __restrict__ x, const float* __restrict__ packed,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm5(x, cin, 1, packed, b, y, cout, n, height, width, kh, kw, taps);
}

PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_data_v5(const float* __restrict__ dy, const float* __restrict__ packed,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps) {
    masked_conv2d_gemm5(dy, cout, -1, packed, 0, dx, cin, n, height, width, kh, kw, taps);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim = (ceil(cout*cin / 32), ceil(taps / 32)).
// packed[(t * cout + o) * cin + i] = w[o, i, t], or 0 where masked: the transposed product's
// weights for bwd_data v3. With r = o * cin + i this is the transpose of w viewed as a
// [cout*cin, kh*kw] matrix (restricted to the live taps), done through a 32 x 32 shared tile of
// odd row stride: block (r-chunk r0.., tap chunk t0..) reads its rows of w whole (t0.. up to 32
// taps, the dead ones too, so that the reads are one contiguous run when kh*kw <= 32) and writes
// 32 consecutive r per live tap.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_pack_transposed_v1(const float* __restrict__ w, float* __restrict__ packed,
                                 int cin, int cout, int kh, int kw, int taps, int mask,
                                 int groups, int out_block, int in_block) {
    PIXELRNN_SHARED(float, tile, [MASKED_CONV2D_WR_TILE * (MASKED_CONV2D_WR_TILE + 1)]);
    const int khw = kh * kw;
    const int centre = (kh / 2) * kw + kw / 2;
    const int rows = cout * cin;
    const int r0 = blockIdx.x * MASKED_CONV2D_WR_TILE, t0 = blockIdx.y * MASKED_CONV2D_WR_TILE;
    const int rc = min(MASKED_CONV2D_WR_TILE, rows - r0);
    const int tc = min(MASKED_CONV2D_WR_TILE, khw - t0);  // read width (dead taps included)
    const int tw = min(MASKED_CONV2D_WR_TILE, taps - t0);  // written taps
    const int stride = tc | 1;  // odd: the 32 rows of one tap column hit 32 banks
    const float* in = w + (pixelrnn_index_t)r0 * khw + t0;
    for (int j = threadIdx.x; j < rc * tc; j += blockDim.x) {
        const int rl = j / tc, tl = j - rl * tc;
        tile[rl * stride + tl] = in[(pixelrnn_index_t)rl * khw + tl];
    }
    __syncthreads();
    for (int j = threadIdx.x; j < rc * tw; j += blockDim.x) {
        const int tl = j / rc, rl = j - tl * rc;
        const int r = r0 + rl, t = t0 + tl;
        const int o = r / cin, i = r - o * cin;
        packed[(pixelrnn_index_t)t * rows + r] =
            masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)
                ? tile[rl * stride + tl]
                : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(taps*cin*cout / 256), 65535)
// (grid-stride). packed[(t * cin + i) * cout + o] = w[o, i, t], or 0 where masked: the layout
// of the CPU twin, so that fwd_at reads the weights of one (tap, input) row for neighbouring
// output features from neighbouring words.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_pack_v1(const float* __restrict__ w, float* __restrict__ packed, int cin,
                      int cout, int kh, int kw, int taps, int mask, int groups, int out_block,
                      int in_block) {
    const int khw = kh * kw;
    const int centre = (kh / 2) * kw + kw / 2;
    const pixelrnn_index_t total = (pixelrnn_index_t)taps * cin * cout;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int o = (int)(e % cout);
        const pixelrnn_index_t row = e / cout;
        const int i = (int)(row % cin);
        const int t = (int)(row / cin);
        packed[e] = masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)
                        ? w[((pixelrnn_index_t)o * cin + i) * khw + t]
                        : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim = (ceil(cin*kh*kw / 32), ceil(cout / 32)).
// pack v1's result (packed[(t * cin + i) * cout + o] = w[o, i, t], or 0 where masked) as a
// transpose of w viewed as a [cout, cin*kh*kw] matrix (column c = i * kh*kw + t) through a
// 32 x 33 shared tile: a warp reads 32 consecutive columns of one row o (the dead taps too,
// so that the run is contiguous: full sectors when cin*kh*kw is a multiple of 8) and writes
// 32 consecutive o of one packed row (t, i) for the live taps (full sectors when cout is a
// multiple of 8). The odd pitch puts both the row stores and the column loads of a warp on
// 32 distinct banks.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_pack_v2(const float* __restrict__ w, float* __restrict__ packed, int cin,
                      int cout, int kh, int kw, int taps, int mask, int groups, int out_block,
                      int in_block) {
    PIXELRNN_SHARED(float, tile, [MASKED_CONV2D_WR_TILE][MASKED_CONV2D_WR_TILE + 1]);
    const int khw = kh * kw;
    const int centre = (kh / 2) * kw + kw / 2;
    const int cols = cin * khw;
    const int c0 = blockIdx.x * MASKED_CONV2D_WR_TILE, o0 = blockIdx.y * MASKED_CONV2D_WR_TILE;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    const int c = c0 + lane;
    for (int r = warp; r < MASKED_CONV2D_WR_TILE; r += warps) {
        const int o = o0 + r;
        if (o < cout && c < cols) tile[r][lane] = w[(pixelrnn_index_t)o * cols + c];
    }
    __syncthreads();
    const int o = o0 + lane;
    for (int r = warp; r < MASKED_CONV2D_WR_TILE; r += warps) {
        const int cc = c0 + r;
        const int i = cc / khw, t = cc - i * khw;
        if (cc >= cols || t >= taps || o >= cout) continue;  // past the row, a dead tap
        // Read whatever the mask says, so that the warp's shared load stays one request.
        const float v = tile[lane][r];
        packed[((pixelrnn_index_t)t * cin + i) * cout + o] =
            masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block) ? v : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*cout / 256), 65535)
// (grid-stride). y[img, o] = b[o] + sum over live taps t inside the map and inputs i of
// x[img, pi + ky - kh/2, pj + kx - kw/2, i] * packed[(t * cin + i) * cout + o]: the output of
// fwd at position (pi, pj) only.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_at_v1(const float* __restrict__ x, const float* __restrict__ packed,
                        const float* __restrict__ b, float* __restrict__ y, int n, int height,
                        int width, int cin, int cout, int kh, int kw, int taps, int pi,
                        int pj) {
    const int cy = kh / 2, cx = kw / 2;
    const pixelrnn_index_t total = (pixelrnn_index_t)n * cout;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int o = (int)(e % cout);
        const pixelrnn_index_t img = e / cout;
        float acc = b[o];
        for (int t = 0; t < taps; ++t) {
            const int ky = t / kw, kx = t - ky * kw;
            const int iy = pi + ky - cy, ix = pj + kx - cx;
            if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
            const float* xp = x + ((img * height + iy) * width + ix) * cin;
            const float* wp = packed + (pixelrnn_index_t)t * cin * cout + o;
            for (int i = 0; i < cin; ++i) {
                acc += xp[i] * wp[(pixelrnn_index_t)i * cout];
            }
        }
        y[e] = acc;
    }
}
