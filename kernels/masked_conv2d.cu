// masked_conv2d.cu: masked (or plain) 2-D convolution, stride 1, "same" zero padding, NHWC
// activations, weights [cout, cin, kh, kw]; forward, backward (input, weight, bias) and the
// one-position forward of incremental sampling. CPU twins: src/backend/cpu/masked_conv2d.rs
// and src/backend/cpu/masked_conv2d_at.rs; host side: src/backend/cuda/masked_conv2d.rs and
// src/backend/cuda/masked_conv2d_at.rs.
//
// Versions:
//   fwd v1:        one thread per output element (position, feature), direct loops over the
//                  live taps only; the reference version.
//   fwd v2:        implicit GEMM: 64 positions x 64 output features per block of 256 threads
//                  (4x4 outputs per thread), K loop over live taps x cin in chunks of 16 staged
//                  in shared memory; plain fp32 FMA. The default before v3.
//   bwd_data v1:   one thread per input element, gathering over the taps and output features
//                  it feeds.
//   bwd_data v2:   implicit GEMM like fwd v2 with the roles swapped: 64 input positions x 64
//                  input features per block, K over live taps x cout.
//   fwd v3:        implicit GEMM in 128 positions x 128 features per block, 8x8 outputs per
//                  thread read as float4 from padded shared tiles, K (live taps x cin) in
//                  chunks of 8 register-staged into double-buffered shared tiles, from weights
//                  packed once per call by pack v1 (no mask test, no division in the K loop).
//                  The default (docs/kernels.md: the counters).
//   bwd_data v3:   fwd v3's GEMM with the roles swapped (dy gathered at -tap offsets, K = live
//                  taps x cout), from weights packed by pack_transposed v1.
//   pack_transposed v1: [cout, cin, kh, kw] -> [taps * cout, cin], masked entries 0 (bwd_data
//                  v3's packing), through a 32 x 32 shared transpose tile (coalesced both ways).
//   bwd_weight v1: one block per weight element reducing x * dy over all n*H*W positions
//                  (block reduction, no atomics); masked weights get exactly 0. With
//                  bwd_bias v1 for db. The reference version.
//   bwd_weight v2: implicit GEMM dw[o, (t, i)] = sum over positions p of dy[p, o] *
//                  x[p + tap t's offset, i]: M = cout, N = live taps x cin, K = positions;
//                  128x128 block tiles, 8x8 outputs per thread read as float4 from shared
//                  memory, K in chunks of 8 positions staged through registers into a
//                  double-buffered shared tile (coalesced rows of dy and of x gathered per
//                  tap); K split over position chunks, one partial tile per chunk, the bias
//                  gradient's partial column sums fused in. Then bwd_weight_reduce v1.
//   bwd_weight_reduce v1: the second pass of bwd_weight v2: sums the partials of every
//                  chunk in a fixed order (the same bits on every run and every schedule;
//                  no atomics), applies the mask (exact 0s) and writes dw [cout, cin, kh, kw]
//                  through a shared transpose (coalesced both ways), and db.
//   bwd_bias v1:   one block per output feature reducing dy over all positions (under
//                  bwd_weight v1; v2 computes db itself).
//   pack v1:       [cout, cin, kh, kw] -> [taps * cin, cout] with the centre tap's group mask
//                  applied (masked entries 0), one thread per packed element.
//   fwd_at v1:     one output position for the whole batch from the packed weight, one thread
//                  per (image, output feature): coalesced reads of the packed rows.
// bwd_weight has its own selection (MaskedConv2dWeight in src/backend/cuda/variants.rs); bwd_bias,
// pack and fwd_at have one version each, used whichever version of the op is selected.
//
// Live taps (src/backend/conv_spec.rs): the raster taps 0..taps-1 (the host passes `taps`:
// kh*kw unmasked, the centre included for masks A/B unless mask A with one group, which stops
// before it). Every tap before the centre connects all feature pairs; the centre connects
// output o and input i by the channel-group rule of `masked_conv2d_centre_allows`. Taps after
// the centre (masks A/B) and rows below it are never visited.
#include "common.cuh"

// Mask kinds as the host passes them (src/backend/cuda/masked_conv2d.rs, `mask_code`).
#define MASKED_CONV2D_NONE 0
#define MASKED_CONV2D_A 1
#define MASKED_CONV2D_B 2

// Tile of the implicit-GEMM kernels: TILE_M positions x TILE_N features per block, K in chunks
// of TILE_K; each of the 256 threads owns a 4x4 micro-tile (rows ty + 16r, columns tx + 16c,
// so that shared reads and global writes of neighbouring lanes are neighbouring words).
#define MASKED_CONV2D_TILE_M 64
#define MASKED_CONV2D_TILE_N 64
#define MASKED_CONV2D_TILE_K 16
// +1 column of padding: the tile stores of a warp (16 k values x 2 rows) hit distinct banks.
#define MASKED_CONV2D_TILE_PAD (MASKED_CONV2D_TILE_M + 1)
// Row index of the tile rows past the last position: outside the map under every tap (the
// host limits kernel sizes and maps to far less than this), and no int overflow when a tap
// offset is added.
#define MASKED_CONV2D_FAR (1 << 29)

// Whether the centre tap connects output feature o to input feature i (ConvSpec::centre_allows):
// feature f is in channel group (f % block) % groups.
PIXELRNN_DEVICE bool masked_conv2d_centre_allows(int o, int i, int mask, int groups,
                                                 int out_block, int in_block) {
    if (mask == MASKED_CONV2D_NONE) return true;
    const int og = (o % out_block) % groups;
    const int ig = (i % in_block) % groups;
    return mask == MASKED_CONV2D_A ? og > ig : og >= ig;
}

// Whether weight [o, i, tap t] is live, for a tap t < taps (ConvSpec::allows).
PIXELRNN_DEVICE bool masked_conv2d_live(int t, int centre, int o, int i, int mask, int groups,
                                        int out_block, int in_block) {
    return t != centre ||
           masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*H*W*cout / 256), 65535)
// (grid-stride loop over the outputs).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_v1(const float* __restrict__ x, const float* __restrict__ w,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps, int mask, int groups,
                     int out_block, int in_block) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * height * width * cout;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int o = (int)(e % cout);
        const pixelrnn_index_t pos = e / cout;
        const int xx = (int)(pos % width);
        const int yy = (int)((pos / width) % height);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)width * height);
        float acc = b[o];
        for (int t = 0; t < taps; ++t) {
            const int ky = t / kw, kx = t - ky * kw;
            const int iy = yy + ky - cy, ix = xx + kx - cx;
            if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
            const float* xp = x + ((img * height + iy) * width + ix) * cin;
            const float* wp = w + (pixelrnn_index_t)o * cin * khw + t;  // w[o, 0, ky, kx]
            if (t == centre && mask != MASKED_CONV2D_NONE) {
                for (int i = 0; i < cin; ++i) {
                    if (masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block)) {
                        acc += xp[i] * wp[(pixelrnn_index_t)i * khw];
                    }
                }
            } else {
                for (int i = 0; i < cin; ++i) {
                    acc += xp[i] * wp[(pixelrnn_index_t)i * khw];
                }
            }
        }
        y[e] = acc;
    }
}

// One K chunk of the implicit GEMM: acc[r][c] += sum_k a[k][ty + 16r] * bt[k][tx + 16c].
PIXELRNN_DEVICE void masked_conv2d_tile_fma(
    float acc[4][4], const float (*a)[MASKED_CONV2D_TILE_PAD],
    const float (*bt)[MASKED_CONV2D_TILE_PAD], int tx, int ty) {
#pragma unroll
    for (int k = 0; k < MASKED_CONV2D_TILE_K; ++k) {
        float av[4], bv[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) av[r] = a[k][ty + 16 * r];
#pragma unroll
        for (int c = 0; c < 4; ++c) bv[c] = bt[k][tx + 16 * c];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] += av[r] * bv[c];
        }
    }
}

// The implicit GEMM of fwd v2 and bwd_data v2, written once: out[m, q] (+ bias[q]) = sum over
// live taps t and source features s of src[position m + dir * (tap t's offset), s] *
// w[o, i, t], where (o, i) = (q, s) for the forward (src = x, dir = +1) and (s, q) for the
// input gradient (src = dy, dir = -1: the outputs that read position m through tap t). Tile of
// this block: positions m0.. x features q0..; K dimension kk = t * src_c + s. Each thread loads
// 4 elements of each tile per chunk, all at the same kk = k0 + tx, so its 4 positions are
// decoded once, outside the K loop. `as`, `bs`: the block's two shared tiles.
PIXELRNN_DEVICE void masked_conv2d_gemm_tile(
    const float* src, int src_c, int dir, const float* w, const float* bias, float* out,
    int out_c, float (*as)[MASKED_CONV2D_TILE_PAD], float (*bs)[MASKED_CONV2D_TILE_PAD], int n,
    int height, int width, int cin, int kh, int kw, int taps, int mask, int groups,
    int out_block, int in_block) {
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t m0 = (pixelrnn_index_t)blockIdx.x * MASKED_CONV2D_TILE_M;
    const int q0 = blockIdx.y * MASKED_CONV2D_TILE_N;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const int k_total = taps * src_c;
    const bool forward = dir > 0;

    // The positions this thread loads: m0 + ty + 16r. A row past the end gets a row index so
    // far outside the map that every tap misses it and loads 0.
    pixelrnn_index_t img_r[4];
    int yy_r[4], xx_r[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const pixelrnn_index_t m = m0 + ty + 16 * r;
        const bool valid = m < positions;
        xx_r[r] = valid ? (int)(m % width) : 0;
        yy_r[r] = valid ? (int)((m / width) % height) : MASKED_CONV2D_FAR;
        img_r[r] = valid ? m / ((pixelrnn_index_t)width * height) : 0;
    }

    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
    }

    for (int k0 = 0; k0 < k_total; k0 += MASKED_CONV2D_TILE_K) {
        const int kk = k0 + tx;
        const bool k_valid = kk < k_total;
        const int t = k_valid ? kk / src_c : 0;
        const int sf = k_valid ? kk - t * src_c : 0;
        const int dy_t = dir * (t / kw - cy), dx_t = dir * (t % kw - cx);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int iy = yy_r[r] + dy_t, ix = xx_r[r] + dx_t;
            float v = 0.0f;
            if (k_valid && iy >= 0 && iy < height && ix >= 0 && ix < width) {
                v = src[((img_r[r] * height + iy) * width + ix) * src_c + sf];
            }
            as[tx][ty + 16 * r] = v;
        }
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int qf = q0 + ty + 16 * r;
            const int o = forward ? qf : sf, i = forward ? sf : qf;
            float v = 0.0f;
            if (k_valid && qf < out_c &&
                masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
                v = w[((pixelrnn_index_t)o * cin + i) * khw + t];
            }
            bs[tx][ty + 16 * r] = v;
        }
        __syncthreads();
        masked_conv2d_tile_fma(acc, as, bs, tx, ty);
        __syncthreads();  // the next chunk overwrites the tiles
    }

#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const pixelrnn_index_t m = m0 + ty + 16 * r;
        if (m >= positions) continue;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int qf = q0 + tx + 16 * c;
            if (qf < out_c) out[m * out_c + qf] = acc[r][c] + (bias != 0 ? bias[qf] : 0.0f);
        }
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 64), ceil(cout / 64)).
// Output tile: positions m0..m0+63 (flattened n*H*W) x features n0..n0+63, K over the live taps
// x cin: the x tile holds x[position shifted by tap t, i] (0 in the padding), the w tile
// w[o, i, t] (0 where the centre tap's group rule masks it); masked_conv2d_gemm_tile.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_v2(const float* __restrict__ x, const float* __restrict__ w,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps, int mask, int groups,
                     int out_block, int in_block) {
    __shared__ float xs[MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD];
    __shared__ float ws[MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD];
    masked_conv2d_gemm_tile(x, cin, 1, w, b, y, cout, xs, ws, n, height, width, cin, kh, kw,
                            taps, mask, groups, out_block, in_block);
}

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

// One chunk of both tiles into registers. Gathered tile: this thread's k = k0 + kl (at `cur`)
// at its 4 positions p = pm + 32j: src[(p + shift) * src_c + s], 0 outside the map, past the
// last position (its row is far outside) or past K. A warp takes 8 consecutive k at 4
// positions: 4 runs of 8 consecutive words (one sector each when src_c is a multiple of 8).
// Packed tile: rows k0 + kb + 2j at column q0 + qb (a warp: 32 consecutive words).
PIXELRNN_DEVICE void masked_conv2d_g3_load(
    const float* __restrict__ src, const float* __restrict__ packed,
    float av[MASKED_CONV2D_G3_A_LOADS], float bv[MASKED_CONV2D_G3_B_LOADS],
    const MaskedConv2dTapCursor& cur, int k0, int kl, int k_total,
    int dir, const int yy[MASKED_CONV2D_G3_A_LOADS], const int xx[MASKED_CONV2D_G3_A_LOADS],
    pixelrnn_index_t pm, int kb, int qf, bool q_ok,
    int height, int width, int src_c, int out_c, int kh, int kw) {
    const bool k_ok = k0 + kl < k_total;
    const int sy = dir * (cur.ky - kh / 2), sx = dir * (cur.kx - kw / 2);
    const pixelrnn_index_t shift = (pixelrnn_index_t)sy * width + sx;
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
        const int iy = yy[j] + sy, ix = xx[j] + sx;
        const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
        av[j] = k_ok && inside ? src[(pm + 32 * j + shift) * src_c + cur.s] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
        const int k = k0 + kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j;
        bv[j] = k < k_total && q_ok ? packed[(pixelrnn_index_t)k * out_c + qf] : 0.0f;
    }
}

// The implicit GEMM of fwd v3 and bwd_data v3, written once: out[m, q] (+ bias[q]) = sum over
// kk = t * src_c + s < taps * src_c of src[m + dir * (tap t's offset), s] * packed[kk * out_c
// + q]. Forward: src = x (src_c = cin), dir = +1, packed = masked_conv2d_pack_v1's [taps*cin,
// cout]. Input gradient: src = dy (src_c = cout), dir = -1 (the outputs that read position m
// through tap t), packed = masked_conv2d_pack_transposed_v1's [taps*cout, cin]. Tile of this
// block: positions blockIdx.x * 128.., features blockIdx.y * 128...
PIXELRNN_DEVICE void masked_conv2d_gemm3(const float* __restrict__ src, int src_c, int dir,
                                         const float* __restrict__ packed,
                                         const float* __restrict__ bias, float* __restrict__ out,
                                         int out_c, int n, int height, int width, int kh, int kw,
                                         int taps) {
    __shared__ __align__(16) float as[2][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_PITCH];
    __shared__ __align__(16) float bs[2][MASKED_CONV2D_G3_K][MASKED_CONV2D_G3_N];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t m0 = (pixelrnn_index_t)blockIdx.x * MASKED_CONV2D_G3_M;
    const int q0 = blockIdx.y * MASKED_CONV2D_G3_N;
    const int k_total = taps * src_c;

    // Gathered-tile loader: k = tid % 8, positions m0 + tid / 8 + 32j (decoded once). A row
    // past the last position gets a row index far outside the map: every tap misses it.
    const int kl = tid % MASKED_CONV2D_G3_K, ml = tid / MASKED_CONV2D_G3_K;
    const pixelrnn_index_t pm = m0 + ml;
    int yy[MASKED_CONV2D_G3_A_LOADS], xx[MASKED_CONV2D_G3_A_LOADS];
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
        const pixelrnn_index_t m = pm + 32 * j;
        const bool valid = m < positions;
        xx[j] = valid ? (int)(m % width) : 0;
        yy[j] = valid ? (int)((m / width) % height) : MASKED_CONV2D_FAR;
    }
    MaskedConv2dTapCursor cur = {kl, 0, 0};
    masked_conv2d_cursor_advance(cur, 0, src_c, kw);  // kl may already pass a tap (src_c < 8)
    // Packed-tile loader: column q0 + tid % 128, rows tid / 128 + 2j.
    const int qb = tid % MASKED_CONV2D_G3_N, kb = tid / MASKED_CONV2D_G3_N;
    const int qf = q0 + qb;
    const bool q_ok = qf < out_c;

    // The accumulators start at the bias (read once, not kept for the epilogue).
    float acc[8][8];
#pragma unroll
    for (int c = 0; c < 8; ++c) {
        const int q = q0 + (c < 4 ? 0 : 64) + 4 * tx + (c & 3);
        const float b0 = bias != 0 && q < out_c ? bias[q] : 0.0f;
#pragma unroll
        for (int r = 0; r < 8; ++r) acc[r][c] = b0;
    }
    float av[MASKED_CONV2D_G3_A_LOADS], bv[MASKED_CONV2D_G3_B_LOADS];
    int buf = 0;
    if (k_total > 0) {
        masked_conv2d_g3_load(src, packed, av, bv, cur, 0, kl, k_total, dir, yy, xx, pm, kb, qf,
                              q_ok, height, width, src_c, out_c, kh, kw);
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) as[0][kl][ml + 32 * j] = av[j];
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
            bs[0][kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j][qb] = bv[j];
        }
    }
    __syncthreads();
    for (int k0 = 0; k0 < k_total; k0 += MASKED_CONV2D_G3_K) {
        const bool more = k0 + MASKED_CONV2D_G3_K < k_total;
        if (more) {  // the next chunk's loads in flight during this chunk's FMAs
            masked_conv2d_cursor_advance(cur, MASKED_CONV2D_G3_K, src_c, kw);
            masked_conv2d_g3_load(src, packed, av, bv, cur, k0 + MASKED_CONV2D_G3_K, kl,
                                  k_total, dir, yy, xx, pm, kb, qf, q_ok, height, width, src_c,
                                  out_c, kh, kw);
        }
#pragma unroll
        for (int k = 0; k < MASKED_CONV2D_G3_K; ++k) {
            const float4 a0 = *reinterpret_cast<const float4*>(&as[buf][k][4 * ty]);
            const float4 a1 = *reinterpret_cast<const float4*>(&as[buf][k][64 + 4 * ty]);
            const float4 b0 = *reinterpret_cast<const float4*>(&bs[buf][k][4 * tx]);
            const float4 b1 = *reinterpret_cast<const float4*>(&bs[buf][k][64 + 4 * tx]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < 8; ++r) {
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += a[r] * b[c];
            }
        }
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_G3_A_LOADS; ++j) {
                as[buf ^ 1][kl][ml + 32 * j] = av[j];
            }
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_G3_B_LOADS; ++j) {
                bs[buf ^ 1][kb + (PIXELRNN_BLOCK / MASKED_CONV2D_G3_N) * j][qb] = bv[j];
            }
        }
        __syncthreads();
        buf ^= 1;
    }

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

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*H*W*cin / 256), 65535)
// (grid-stride loop over the input elements). dx[p, i] = sum over live taps t and outputs o of
// dy[p - (tap t's offset), o] * w[o, i, t]: the outputs that read input p through tap t.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_v1(const float* __restrict__ dy, const float* __restrict__ w,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps, int mask, int groups,
                          int out_block, int in_block) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * height * width * cin;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const pixelrnn_index_t o_stride = (pixelrnn_index_t)cin * khw;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int i = (int)(e % cin);
        const pixelrnn_index_t pos = e / cin;
        const int ix = (int)(pos % width);
        const int iy = (int)((pos / width) % height);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)width * height);
        float acc = 0.0f;
        for (int t = 0; t < taps; ++t) {
            const int ky = t / kw, kx = t - ky * kw;
            const int yy = iy - ky + cy, xx = ix - kx + cx;
            if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
            const float* dyp = dy + ((img * height + yy) * width + xx) * cout;
            const float* wp = w + (pixelrnn_index_t)i * khw + t;  // w[0, i, ky, kx]
            if (t == centre && mask != MASKED_CONV2D_NONE) {
                for (int o = 0; o < cout; ++o) {
                    if (masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block)) {
                        acc += dyp[o] * wp[o * o_stride];
                    }
                }
            } else {
                for (int o = 0; o < cout; ++o) {
                    acc += dyp[o] * wp[o * o_stride];
                }
            }
        }
        dx[e] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 64), ceil(cin / 64)).
// The transpose of fwd v2 (masked_conv2d_gemm_tile with dir = -1): tile of input positions
// m0.. x input features n0.., K dimension kk = t * cout + o; the dy tile holds
// dy[position - (tap t's offset), o] (0 outside the map), the w tile w[o, i, t] (0 where
// masked).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_v2(const float* __restrict__ dy, const float* __restrict__ w,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps, int mask, int groups,
                          int out_block, int in_block) {
    __shared__ float ds[MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD];
    __shared__ float ws[MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD];
    masked_conv2d_gemm_tile(dy, cout, -1, w, 0, dx, cin, ds, ws, n, height, width, cin, kh, kw,
                            taps, mask, groups, out_block, in_block);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cout * cin * kh * kw (one block per weight
// element). dw[o, i, ky, kx] = sum over positions p of x[p + tap offset, i] * dy[p, o]; a
// masked weight (or a tap outside the live prefix) is written as exactly 0 by the whole block,
// which leaves before the reduction's barriers.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_v1(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ dw, int n, int height, int width, int cin,
                            int cout, int kh, int kw, int taps, int mask, int groups,
                            int out_block, int in_block) {
    __shared__ float scratch[PIXELRNN_WARP];
    const int khw = kh * kw;
    const pixelrnn_index_t e = blockIdx.x;
    const int t = (int)(e % khw);
    const int i = (int)((e / khw) % cin);
    const int o = (int)(e / ((pixelrnn_index_t)khw * cin));
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx;
    if (t >= taps || !masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
        if (threadIdx.x == 0) dw[e] = 0.0f;
        return;
    }
    const int ky = t / kw, kx = t - ky * kw;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        const int xx = (int)(p % width);
        const int yy = (int)((p / width) % height);
        const int iy = yy + ky - cy, ix = xx + kx - cx;
        if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
        // Same image: the input position is p shifted by the tap's offset.
        const pixelrnn_index_t q = p + (pixelrnn_index_t)(ky - cy) * width + (kx - cx);
        acc += x[q * cin + i] * dy[p * cout + o];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) dw[e] = acc;
}

// Tile of bwd_weight v2: WG_M output features x WG_N (live tap, input feature) columns per
// block of 256 threads, each thread an 8x8 micro-tile (rows 4ty..4ty+3 and 64+4ty..64+4ty+3,
// columns 4tx.. and 64+4tx.. with tx = tid % 16, ty = tid / 16): per position k a thread reads
// 4 float4 (16 words) from shared memory for 64 FMAs, 8 FLOPs per word. The float4 reads of a
// warp (16 tx x 2 ty) cover 64 consecutive words of the x tile (2 wavefronts, the minimum for
// 16-byte loads) and 2 float4 of the dy tile (broadcast). WG_K positions per shared chunk.
#define MASKED_CONV2D_WG_M 128
#define MASKED_CONV2D_WG_N 128
#define MASKED_CONV2D_WG_K 8
// Each thread loads WG_LOADS rows of each tile per chunk, at one column: tid % 128.
#define MASKED_CONV2D_WG_LOADS (MASKED_CONV2D_WG_K * MASKED_CONV2D_WG_N / PIXELRNN_BLOCK)
#define MASKED_CONV2D_WG_ROW_STEP (PIXELRNN_BLOCK / MASKED_CONV2D_WG_N)
// The bias sums meet in two halves (row0 = 0, 1): masked_conv2d_bwd_weight_v2's epilogue.
static_assert(MASKED_CONV2D_WG_ROW_STEP == 2, "two loader rows per column");

// Moves a loader row (yy, xx) of one image forward by `step` positions in raster order (the
// image index is not tracked: a tap that stays inside the map stays in the same image, so the
// shifted position is the flattened one plus the tap's flat offset).
PIXELRNN_DEVICE void masked_conv2d_wg_advance(int& yy, int& xx, int step, int height,
                                              int width) {
    xx += step;
    while (xx >= width) {
        xx -= width;
        if (++yy == height) yy = 0;
    }
}

// One chunk of both tiles into registers: rows p = pk + row0 + WG_ROW_STEP * j of dy (at the
// thread's output feature o) and of x shifted by the thread's column's tap (at its input
// feature i); 0 past the split's end, outside the map, or past the matrix edge. Lanes of a
// warp share the row and take consecutive columns: consecutive words of dy, and consecutive
// words of x within one tap (taps of one kernel row are one position apart, so even a tile
// that spans several taps of a small cin reads runs of consecutive words).
PIXELRNN_DEVICE void masked_conv2d_wg_load(
    const float* __restrict__ x, const float* __restrict__ dy, float dv[MASKED_CONV2D_WG_LOADS],
    float xv[MASKED_CONV2D_WG_LOADS], pixelrnn_index_t pk, pixelrnn_index_t p_end, int row0,
    const int yy[MASKED_CONV2D_WG_LOADS], const int xx[MASKED_CONV2D_WG_LOADS], int o,
    bool o_ok, int i, bool col_ok, int tap_dy, int tap_dx, pixelrnn_index_t tap_shift,
    int height, int width, int cin, int cout) {
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
        const pixelrnn_index_t p = pk + row0 + MASKED_CONV2D_WG_ROW_STEP * j;
        const bool in = p < p_end;
        dv[j] = in && o_ok ? dy[p * cout + o] : 0.0f;
        const int iy = yy[j] + tap_dy, ix = xx[j] + tap_dx;
        const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
        xv[j] = in && col_ok && inside ? x[(p + tap_shift) * cin + i] : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(max(taps*cin, 1) / 128),
// ceil(cout / 128)). Block (s, bn, bm) reduces positions [s*chunk, min((s+1)*chunk, n*H*W))
// (chunk a multiple of WG_K) into the partial tile
//   part[(s * ld_m + o) * ld_n + c] = sum over its positions p of dy[p, o] * x[p + off(t), i]
// for o in bm*128.. and columns c = t*cin + i in bn*128.. (ld_m = gridDim.z*128, ld_n =
// gridDim.y*128: every block writes its whole tile, zeros past the edges, so the buffer is
// fully written), and the blocks of bn = 0 the bias partials part_db[s * ld_m + o] = sum of
// dy[p, o]. Every partial is one thread's sum in position order: no atomics, the same bits on
// every schedule. masked_conv2d_bwd_weight_reduce_v1 finishes dw and db. The centre tap's
// masked pairs are computed here like the others and zeroed by the reduction; the taps after
// the centre are not columns at all.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_weight_v2(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ part, float* __restrict__ part_db, int n,
                            int height, int width, int cin, int cout, int kh, int kw, int taps,
                            pixelrnn_index_t chunk) {
    __shared__ __align__(16) float dys[2][MASKED_CONV2D_WG_K][MASKED_CONV2D_WG_M];
    __shared__ __align__(16) float xs[2][MASKED_CONV2D_WG_K][MASKED_CONV2D_WG_N];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end =
        p_begin + chunk < positions ? p_begin + chunk : positions;
    const int o0 = blockIdx.z * MASKED_CONV2D_WG_M;
    const int c0 = blockIdx.y * MASKED_CONV2D_WG_N;
    const int ld_m = gridDim.z * MASKED_CONV2D_WG_M, ld_n = gridDim.y * MASKED_CONV2D_WG_N;
    const bool bias_block = blockIdx.y == 0;

    // The loader's fixed column (decoded once: no division in the K loop) and first row.
    const int col = tid % MASKED_CONV2D_WG_N, row0 = tid / MASKED_CONV2D_WG_N;
    const int o_ld = o0 + col;
    const bool o_ok = o_ld < cout;
    const int c_ld = c0 + col;
    const bool col_ok = c_ld < taps * cin;
    const int t = col_ok ? c_ld / cin : 0;
    const int i_ld = col_ok ? c_ld - t * cin : 0;
    const int tap_dy = t / kw - kh / 2, tap_dx = t % kw - kw / 2;
    const pixelrnn_index_t tap_shift = (pixelrnn_index_t)tap_dy * width + tap_dx;
    int yy[MASKED_CONV2D_WG_LOADS], xx[MASKED_CONV2D_WG_LOADS];
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
        const pixelrnn_index_t p = p_begin + row0 + MASKED_CONV2D_WG_ROW_STEP * j;
        xx[j] = (int)(p % width);
        yy[j] = (int)((p / width) % height);
    }

    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; ++r) {
#pragma unroll
        for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;
    }
    // The bias blocks' column sums of dy, from the values each thread loads itself (no shared
    // reads): rows row0, row0 + 2, .. of column col; the two halves meet after the loop.
    float bias_acc = 0.0f;

    float dv[MASKED_CONV2D_WG_LOADS], xv[MASKED_CONV2D_WG_LOADS];
    int buf = 0;
    if (p_begin < p_end) {
        masked_conv2d_wg_load(x, dy, dv, xv, p_begin, p_end, row0, yy, xx, o_ld, o_ok, i_ld,
                              col_ok, tap_dy, tap_dx, tap_shift, height, width, cin, cout);
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) bias_acc += dv[j];
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
            dys[0][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = dv[j];
            xs[0][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = xv[j];
        }
    }
    __syncthreads();
    for (pixelrnn_index_t pk = p_begin; pk < p_end; pk += MASKED_CONV2D_WG_K) {
        // Software pipeline: the next chunk's global loads are in flight during this chunk's
        // FMAs, then land in the other buffer (read by nobody until the barrier below).
        const bool more = pk + MASKED_CONV2D_WG_K < p_end;
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
                masked_conv2d_wg_advance(yy[j], xx[j], MASKED_CONV2D_WG_K, height, width);
            }
            masked_conv2d_wg_load(x, dy, dv, xv, pk + MASKED_CONV2D_WG_K, p_end, row0, yy, xx,
                                  o_ld, o_ok, i_ld, col_ok, tap_dy, tap_dx, tap_shift, height,
                                  width, cin, cout);
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) bias_acc += dv[j];
        }
#pragma unroll
        for (int k = 0; k < MASKED_CONV2D_WG_K; ++k) {
            const float4 a0 = *reinterpret_cast<const float4*>(&dys[buf][k][4 * ty]);
            const float4 a1 = *reinterpret_cast<const float4*>(&dys[buf][k][64 + 4 * ty]);
            const float4 b0 = *reinterpret_cast<const float4*>(&xs[buf][k][4 * tx]);
            const float4 b1 = *reinterpret_cast<const float4*>(&xs[buf][k][64 + 4 * tx]);
            const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int r = 0; r < 8; ++r) {
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[r][c] += av[r] * bv[c];
            }
        }
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
                dys[buf ^ 1][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = dv[j];
                xs[buf ^ 1][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = xv[j];
            }
        }
        __syncthreads();
        buf ^= 1;
    }

    // The whole tile, as float4 rows: a warp stores 2 rows x 256 contiguous bytes.
    float* tile = part + ((pixelrnn_index_t)blockIdx.x * ld_m + o0) * ld_n + c0;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int m = (r < 4 ? 0 : 64) + 4 * ty + (r & 3);
        float* row = tile + (pixelrnn_index_t)m * ld_n;
        *reinterpret_cast<float4*>(row + 4 * tx) =
            make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        *reinterpret_cast<float4*>(row + 64 + 4 * tx) =
            make_float4(acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
    }
    if (bias_block) {  // uniform over the block: the barrier is safe
        // The last loop iteration ended with a barrier: dys is free. Half 1 hands its sums to
        // half 0, which adds them in a fixed order.
        if (row0 == 1) dys[0][0][col] = bias_acc;
        __syncthreads();
        if (row0 == 0) {
            part_db[(pixelrnn_index_t)blockIdx.x * ld_m + o0 + col] = bias_acc + dys[0][0][col];
        }
    }
}

// Taps and input features per block of the reduction (its shared transpose tile).
#define MASKED_CONV2D_WR_TILE 32

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim = (cout * max(ceil(cin / 32), 1),
// ceil(kh*kw / 32)).
// Block (o, i-chunk i0.., tap chunk t0..) finishes dw[o, i, t] for its 32 x 32 (or fewer)
// (i, t): the sum over s = 0, 1, .., splits-1 in that order of part[(s * ld_m + o) * ld_n +
// t*cin + i] (the partials of masked_conv2d_bwd_weight_v2), exactly 0 where the weight is
// masked or the tap is not live. Reads go along the partial rows (c = t*cin + i consecutive),
// writes along dw (t fastest, then i): through a shared tile [i][t] of odd row stride
// (conflict-free columns). The blocks of i-chunk 0 and tap chunk 0 also write db[o], the sum
// over s of part_db[s * ld_m + o] in the same order.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_reduce_v1(const float* __restrict__ part,
                                   const float* __restrict__ part_db, float* __restrict__ dw,
                                   float* __restrict__ db, int splits, int ld_m, int ld_n,
                                   int cin, int kh, int kw, int taps, int mask, int groups,
                                   int out_block, int in_block) {
    __shared__ float tile[MASKED_CONV2D_WR_TILE * (MASKED_CONV2D_WR_TILE + 1)];
    // cin = 0 still has one block per output feature: it writes db.
    const int ichunks = max(1, pixelrnn_ceil_div(cin, MASKED_CONV2D_WR_TILE));
    const int o = blockIdx.x / ichunks;
    const int i0 = (blockIdx.x - o * ichunks) * MASKED_CONV2D_WR_TILE;
    const int t0 = blockIdx.y * MASKED_CONV2D_WR_TILE;
    const int khw = kh * kw, centre = (kh / 2) * kw + kw / 2;
    const int ic = min(MASKED_CONV2D_WR_TILE, cin - i0);
    const int tc = min(MASKED_CONV2D_WR_TILE, khw - t0);
    const int stride = tc | 1;  // odd: the 32 rows of one tap column hit 32 banks
    const pixelrnn_index_t plane = (pixelrnn_index_t)ld_m * ld_n;
    for (int j = threadIdx.x; j < ic * tc; j += blockDim.x) {
        const int tl = j / ic, il = j - tl * ic;
        const int t = t0 + tl, i = i0 + il;
        float v = 0.0f;
        if (t < taps && masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
            const float* p = part + (pixelrnn_index_t)o * ld_n + t * cin + i;
            for (int s = 0; s < splits; ++s) v += p[s * plane];
        }
        tile[il * stride + tl] = v;
    }
    if (threadIdx.x == 0 && i0 == 0 && t0 == 0) {
        float b = 0.0f;
        for (int s = 0; s < splits; ++s) b += part_db[(pixelrnn_index_t)s * ld_m + o];
        db[o] = b;
    }
    __syncthreads();
    float* out = dw + ((pixelrnn_index_t)o * cin + i0) * khw + t0;
    for (int j = threadIdx.x; j < ic * tc; j += blockDim.x) {
        const int il = j / tc, tl = j - il * tc;
        out[(pixelrnn_index_t)il * khw + tl] = tile[il * stride + tl];
    }
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
    __shared__ float tile[MASKED_CONV2D_WR_TILE * (MASKED_CONV2D_WR_TILE + 1)];
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

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cout (one block per output feature).
// db[o] = sum over all positions of dy[p, o].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_bias_v1(const float* __restrict__ dy, float* __restrict__ db,
                          pixelrnn_index_t positions, int cout) {
    __shared__ float scratch[PIXELRNN_WARP];
    const int o = blockIdx.x;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        acc += dy[p * cout + o];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) db[o] = acc;
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
